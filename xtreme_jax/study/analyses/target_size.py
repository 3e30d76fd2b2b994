"""Question 3: the gain from intermediate training vs the number of target training examples."""
from __future__ import annotations

import math

import numpy as np

from xtreme_jax.study import fits, stats
from xtreme_jax.study.analyses.common import (SCRIPT_CAVEAT, cell_scores, errorbars, fmt, key_of, languages, levels_of,
                                              matrix, paired_examples, point_of, script_split, seeds_of, significance,
                                              size_of)

# "The gain has vanished" is an equivalence claim: the gain lies within +-MARGIN points of 0 (TOST,
# 5%). One point of zero-shot accuracy is about the seed-to-seed spread of XNLI fine-tuning, the
# smallest difference a reader would act on; analysis.equivalence_margin sets another.
MARGIN = 1.0


def _vanishes(x, g, sizes_est, margin):
    """(fitted, measured): the smallest size where the fitted gain's 90% band lies inside +-margin,
    and the smallest measured size whose gain TOST finds equivalent to 0."""
    grid = np.geomspace(x.min(), x.max(), 200)
    _, lo, hi, _ = fits.band(x, g, fits.loglinear, fits.predict_loglinear, grid, level=0.90)
    inside = np.flatnonzero(np.isfinite(lo) & (lo > -margin) & (hi < margin))
    measured = next((xx for xx, e in zip(x, sizes_est) if e["equivalence"]["equivalent"]), math.nan)
    return (float(grid[inside[0]]) if len(inside) else math.nan), float(measured)


def _by_script(col, arm_sel: dict, base_sel: dict, size_f: str, sizes: list, seeds: list, header: list) -> tuple:
    """The zero-shot gain at each size (`header`: the sizes' column names) per group of languages by
    script (common.script_split); `arm_sel` / `base_sel`: the factor levels of the two arms' runs."""
    scores, out, lines = script_split(col, "Zero-shot gain")
    if not scores:
        return out, lines
    per = out["gain_by_size"] = {}
    for g, sc in scores.items():
        G = matrix(sc, col, arm_sel, size_f, sizes, seeds) - matrix(sc, col, base_sel, size_f, sizes, seeds)
        per[g] = {s: stats.mean_estimate(G[:, j]) for j, s in enumerate(sizes)}
    stats.adjust([e for by in per.values() for e in by.values()],
                 f"script-group gains, {len(per)} groups x {len(sizes)} sizes")
    lines += ["", "| script group | languages | " + " | ".join(header) + " |", "|---|---:|" + "---:|" * len(sizes)]
    for g, by in per.items():
        lines.append(f"| {g} | {len(out['groups'][g])} | " +
                     " | ".join(fmt(by[s], 1) + significance(by[s]) for s in sizes) + " |")
    return out, lines + ["", "\\* = p < 0.05 after Holm's adjustment over the table. " + SCRIPT_CAVEAT, ""]


def target_size(col, study) -> dict:
    a = study.analysis
    size_f, arm_f, base = a.size, a.arm, a.baseline
    margin = float(a.get("equivalence_margin", MARGIN))
    seeds = seeds_of(col)
    sizes = sorted(levels_of(col, size_f), key=lambda s: size_of(s, a.full_size))
    x = np.array([size_of(s, a.full_size) for s in sizes])
    arms = [l for l in levels_of(col, arm_f) if l != base]
    other = {f: levels_of(col, f)[0] for f in col.factors if f not in (size_f, arm_f)}
    langs = languages(col)
    est, lines, plots = {}, [], {}
    point = point_of(col)
    tl = sorted({(r["task"], r["language"]) for r in col.rows if r["language"] != "en"})
    for arm in arms:
        e = est[arm] = {"per_size": {}, "per_language": {}}
        gains = {}
        for which in ["zero-shot"] + langs:
            sc = cell_scores(col, which)
            gains[which] = (matrix(sc, col, {**other, arm_f: arm}, size_f, sizes, seeds)
                            - matrix(sc, col, {**other, arm_f: base}, size_f, sizes, seeds))
        g = gains["zero-shot"]
        sc = cell_scores(col)
        for j, s in enumerate(sizes):
            gain = stats.mean_estimate(g[:, j])
            e["per_size"][s] = {"gain": gain, "equivalence": stats.tost(gain, margin),
                                "with": stats.mean_estimate(matrix(sc, col, {**other, arm_f: arm}, size_f, sizes, seeds)[:, j]),
                                "without": stats.mean_estimate(matrix(sc, col, {**other, arm_f: base}, size_f, sizes, seeds)[:, j])}
            pa = [point.get((key_of(col, {**other, arm_f: arm, size_f: s}), sd)) for sd in seeds]
            pb = [point.get((key_of(col, {**other, arm_f: base, size_f: s}), sd)) for sd in seeds]
            pe = paired_examples(col, pa, pb, tl) if None not in pa + pb else None
            if pe:
                e["per_size"][s]["gain_seeds_and_items"] = pe
        fit = fits.fit_with_ci(x, g, fits.loglinear, derived={"zero_gain_size": fits.zero_crossing},
                               positive=("zero_gain_size",))
        fitted, measured = _vanishes(x, g, [e["per_size"][s] for s in sizes], margin)
        e["fit"] = {"model": "gain = a + b ln(n)", **fit}
        e["gain_vanishes"] = {"margin": margin, "test": "TOST, 5% (90% interval inside +-margin)",
                              "fitted_size": stats._num(fitted), "measured_size": stats._num(measured)}
        family = []
        for l in langs:
            by = {s: stats.mean_estimate(gains[l][:, j]) for j, s in enumerate(sizes)}
            family += by.values()
            e["per_language"][l] = {"gain_by_size": by, "fit": fits.fit_with_ci(x, gains[l], fits.loglinear)}
        stats.adjust(family, f"per-language gains of {arm}, {len(langs)} languages x {len(sizes)} sizes")
        lines += [f"### Intermediate `{arm}` vs `{base}`: zero-shot gain by target training size", "",
                  f"| n | with | without | gain [95% t CI over seeds] | equivalent to 0 within +-{margin:g} (TOST p) | "
                  "gain, over seeds and test items |", "|---:|---:|---:|---:|---:|---:|"]
        for s in sizes:
            ps = e["per_size"][s]
            q = ps["equivalence"]
            eq = "–" if q["equivalent"] is None else f"{'yes' if q['equivalent'] else 'no'} ({q['p']:.3g})"
            lines.append(f"| {int(size_of(s, a.full_size))} | {fmt(ps['with'], 1)} | {fmt(ps['without'], 1)} | "
                         f"{fmt(ps['gain'])} | {eq} | "
                         f"{fmt(ps['gain_seeds_and_items']) if 'gain_seeds_and_items' in ps else '–'} |")
        v = e["gain_vanishes"]
        lines += ["", f"Fit gain(n) = a + b ln n: b = {fmt(fit['b'], 3)}; the fitted gain reaches 0 at n = "
                  f"{fmt(fit['zero_gain_size'], 0)}. The gain vanishes (equivalent to 0 within +-{margin:g} points, "
                  "TOST at 5%): " + (f"fitted curve from n = {v['fitted_size']:.0f}" if v["fitted_size"] else
                                     "nowhere on the fitted curve in the measured range")
                  + "; " + (f"first measured size n = {v['measured_size']:.0f}." if v["measured_size"] else
                            "at no measured size."), "",
                  "Per language, gain at each size (mean [95% CI]; * = p < 0.05 after Holm's adjustment over "
                  "the whole table):", "",
                  "| language | " + " | ".join(str(int(size_of(s, a.full_size))) for s in sizes) + " |",
                  "|---|" + "---:|" * len(sizes)]
        for l in langs:
            by = e["per_language"][l]["gain_by_size"]
            lines.append(f"| {l} | " + " | ".join(fmt(by[s], 1) + significance(by[s]) for s in sizes) + " |")
        e["by_script"], script_lines = _by_script(col, {**other, arm_f: arm}, {**other, arm_f: base}, size_f, sizes,
                                                  seeds, [str(int(size_of(s, a.full_size))) for s in sizes])
        lines += script_lines   # opens with a blank line
        grid = np.geomspace(x.min(), x.max(), 200)
        bv, blo, bhi, _ = fits.band(x, g, fits.loglinear, fits.predict_loglinear, grid)

        def plot(ax, arm=arm, e=e, grid=grid, v=bv, lo=blo, hi=bhi):
            errorbars(ax, x, [e["per_size"][s]["gain"] for s in sizes], label="zero-shot avg (mean, 95% CI)")
            ax.plot(grid, v, color="C1", label="fit a + b ln n")
            ax.fill_between(grid, lo, hi, color="C1", alpha=0.2, label="95% band")
            ax.axhspan(-margin, margin, color="0.85", alpha=0.5, label=f"equivalence margin +-{margin:g}")
            for l in langs:
                ax.plot(x, [e["per_language"][l]["gain_by_size"][s]["value"] or np.nan for s in sizes], lw=0.8,
                        alpha=0.6, ls="--", label=l)
            ax.axhline(0, color="k", lw=0.8)
            ax.set_xscale("log")
            ax.set_xlabel("target training examples (English)")
            ax.set_ylabel(f"gain from intermediate `{arm}` (points)")
            ax.legend(fontsize=7)
        plots[f"gain_vs_size_{arm}.png"] = plot
    head = est[arms[0]]
    headline = {"gain_at_smallest": head["per_size"][sizes[0]]["gain"], "gain_vanishes": head["gain_vanishes"],
                "zero_gain_size": head["fit"]["zero_gain_size"]}
    return {"estimates": est, "headline": headline, "lines": lines, "plots": plots}
