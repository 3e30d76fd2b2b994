"""Question 3: the gain from intermediate training vs the number of target training examples."""
from __future__ import annotations

import math

import numpy as np

from xtreme_jax.study import fits, stats
from xtreme_jax.study.analyses.common import cell_scores, errorbars, fmt, key_of, languages, levels_of, matrix, paired_examples, point_of, seeds_of, size_of


def target_size(col, study) -> dict:
    a = study.analysis
    size_f, arm_f, base = a.size, a.arm, a.baseline
    seeds = seeds_of(col)
    sizes = sorted(levels_of(col, size_f), key=lambda s: size_of(s, a.full_size))
    x = np.array([size_of(s, a.full_size) for s in sizes])
    arms = [l for l in levels_of(col, arm_f) if l != base]
    other = {f: levels_of(col, f)[0] for f in col.factors if f not in (size_f, arm_f)}
    langs = languages(col)
    est, lines, plots = {}, [], {}
    point = point_of(col)
    for arm in arms:
        e = est[arm] = {"per_size": {}, "per_language": {}}
        gains = {}
        for which in ["zero-shot"] + langs:
            sc = cell_scores(col, which)
            with_ = matrix(sc, col, {**other, arm_f: arm}, size_f, sizes, seeds)
            without = matrix(sc, col, {**other, arm_f: base}, size_f, sizes, seeds)
            gains[which] = with_ - without
        g = gains["zero-shot"]
        for j, s in enumerate(sizes):
            e["per_size"][s] = {"gain": stats.mean_estimate(g[:, j]),
                                "with": stats.mean_estimate(matrix(cell_scores(col), col, {**other, arm_f: arm}, size_f, sizes, seeds)[:, j]),
                                "without": stats.mean_estimate(matrix(cell_scores(col), col, {**other, arm_f: base}, size_f, sizes, seeds)[:, j])}
            pa = [point.get((key_of(col, {**other, arm_f: arm, size_f: s}), sd)) for sd in seeds]
            pb = [point.get((key_of(col, {**other, arm_f: base, size_f: s}), sd)) for sd in seeds]
            tl = sorted({(r["task"], r["language"]) for r in col.rows if r["language"] != "en"})
            pe = paired_examples(col, pa, pb, tl) if None not in pa + pb else None
            if pe:
                e["per_size"][s]["gain_paired_examples"] = pe
        fit = fits.fit_with_ci(x, g, fits.loglinear, derived={"zero_gain_size": fits.zero_crossing})
        grid = np.geomspace(x.min(), x.max(), 200)
        v, lo, hi = fits.band(x, g, fits.loglinear, fits.predict_loglinear, grid)
        first = fits.first_where_ci_includes_zero(grid, lo, hi)
        measured_first = next((float(size_of(s, a.full_size)) for s in sizes
                               if e["per_size"][s]["gain"]["ci95"][0] is not None
                               and e["per_size"][s]["gain"]["ci95"][0] <= 0 <= e["per_size"][s]["gain"]["ci95"][1]),
                              math.nan)
        e["fit"] = {"model": "gain = a + b ln(n)", **fit,
                    "first_size_ci_includes_zero": {"fitted": stats._num(first), "measured": stats._num(measured_first)}}
        for l in langs:
            e["per_language"][l] = {"gain_by_size": {s: stats.mean_estimate(gains[l][:, j]) for j, s in enumerate(sizes)},
                                    "fit": fits.fit_with_ci(x, gains[l], fits.loglinear)}
        lines += [f"### Intermediate `{arm}` vs `{base}`: zero-shot gain by target training size", "",
                  "| n | with | without | gain [95% CI over seeds] | gain, paired over test examples |", "|---:|---:|---:|---:|---:|"]
        for s in sizes:
            ps = e["per_size"][s]
            lines.append(f"| {int(size_of(s, a.full_size))} | {fmt(ps['with'], 1)} | {fmt(ps['without'], 1)} | "
                         f"{fmt(ps['gain'])} | {fmt(ps['gain_paired_examples']) if 'gain_paired_examples' in ps else '–'} |")
        lines += ["", f"Fit gain(n) = a + b ln n: b = {fmt(fit['b'], 3)}; the fitted gain reaches 0 at n = "
                  f"{fmt(fit['zero_gain_size'], 0)}; the fitted gain's 95% band first includes 0 at n = "
                  f"{first:.0f}" if math.isfinite(first) else
                  f"Fit gain(n) = a + b ln n: b = {fmt(fit['b'], 3)}; the fitted gain's 95% band excludes 0 "
                  "over the whole measured range", "",
                  "Per language, gain at each size (mean [95% CI]):", "",
                  "| language | " + " | ".join(str(int(size_of(s, a.full_size))) for s in sizes) + " |",
                  "|---|" + "---:|" * len(sizes)]
        for l in langs:
            lines.append(f"| {l} | " + " | ".join(fmt(e["per_language"][l]["gain_by_size"][s], 1) for s in sizes) + " |")
        lines.append("")

        def plot(ax, arm=arm, e=e, g=g, grid=grid, v=v, lo=lo, hi=hi):
            errorbars(ax, x, [e["per_size"][s]["gain"] for s in sizes], label="zero-shot avg (mean, 95% CI)")
            ax.plot(grid, v, color="C1", label="fit a + b ln n")
            ax.fill_between(grid, lo, hi, color="C1", alpha=0.2, label="95% band")
            for k, l in enumerate(langs):
                ax.plot(x, [e["per_language"][l]["gain_by_size"][s]["value"] or np.nan for s in sizes], lw=0.8,
                        alpha=0.6, ls="--", label=l)
            ax.axhline(0, color="k", lw=0.8)
            ax.set_xscale("log")
            ax.set_xlabel("target training examples (English)")
            ax.set_ylabel(f"gain from intermediate `{arm}` (points)")
            ax.legend(fontsize=7)
        plots[f"gain_vs_size_{arm}.png"] = plot
    head = est[arms[0]]
    headline = {"gain_at_smallest": head["per_size"][sizes[0]]["gain"],
                "first_size_ci_includes_zero": head["fit"]["first_size_ci_includes_zero"],
                "zero_gain_size": head["fit"]["zero_gain_size"]}
    return {"estimates": est, "headline": headline, "lines": lines, "plots": plots}
