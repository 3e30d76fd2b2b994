"""Question 1: scaling of English intermediate + target training vs direct translate-train fine-tuning."""
from __future__ import annotations

import math

import numpy as np

from xtreme_jax.study import fits, stats
from xtreme_jax.study.analyses.common import (cell_scores, errorbars, fmt, levels_of, matrix, seeds_of, significance,
                                              size_of)


# A scaling fit against compute needs compute to vary: at tiny scale every point trains the same
# number of steps, and an exponent fitted over a 1.05x range of compute is noise read as a law.
MIN_COMPUTE_SPAN = 2.0


def _span(x) -> float:
    x = np.asarray(x, float)
    x = x[np.isfinite(x) & (x > 0)]
    return float(x.max() / x.min()) if len(x) else math.nan


def _fits(x, Y, floor: bool) -> dict:
    out = {"loglinear": fits.fit_with_ci(x, Y, fits.loglinear),
           "powerlaw_error": fits.fit_with_ci(x, 100 - Y, fits.powerlaw)}
    if floor:
        out["powerlaw_error_floor"] = fits.fit_with_ci(x, 100 - Y, fits.powerlaw_floor)
    return out


def measured_overlap(x1, x2) -> tuple[float, float]:
    """The x range where both arms were measured (a crossover outside it is an extrapolation of at
    least one of the two curves)."""
    return max(np.nanmin(x1), np.nanmin(x2)), min(np.nanmax(x1), np.nanmax(x2))


def _factorial(col, study, seeds, sizes, sc, other) -> dict:
    """The 2x2 {intermediate: none / yes} x {target languages: English / all}: per size, the two
    main effects and their interaction, paired by seed (t intervals), Holm over the table."""
    a = study.analysis
    cells = dict(zip(("none_en", "inter_en", "none_all", "inter_all"), a.factorial))
    M = {k: matrix(sc, col, {**other, a.arm: arm}, a.size, sizes, seeds) for k, arm in cells.items()}
    effects = {"intermediate": ((M["inter_en"] - M["none_en"]) + (M["inter_all"] - M["none_all"])) / 2,
               "target_languages": ((M["none_all"] - M["none_en"]) + (M["inter_all"] - M["inter_en"])) / 2,
               "interaction": (M["inter_all"] - M["none_all"]) - (M["inter_en"] - M["none_en"])}
    out = {name: {s: stats.mean_estimate(E[:, j]) for j, s in enumerate(sizes)} for name, E in effects.items()}
    stats.adjust([e for by in out.values() for e in by.values()], f"2x2 effects, 3 x {len(sizes)} sizes")
    return out


def direct(col, study) -> dict:
    a = study.analysis
    seeds = seeds_of(col)
    size_f, arm_f = a.size, a.arm
    arms = list(a.arms)
    sizes = sorted(levels_of(col, size_f), key=lambda s: size_of(s, a.full_size))
    sc = cell_scores(col)
    other = {f: levels_of(col, f)[0] for f in col.factors if f not in (size_f, arm_f)}
    # x: total target training examples of the point (n per language x its training languages)
    examples, hours = {}, {}
    for r in col.rows:
        examples[(r[arm_f], r[size_f])] = col.train_examples.get(r["point"], math.nan)
        hours.setdefault((r[arm_f], r[size_f]), []).append(r["accelerator_hours"])
    est, lines, plots, curves, lines_floor = {}, [], {}, {}, []
    for arm in arms:
        Y = matrix(sc, col, {**other, arm_f: arm}, size_f, sizes, seeds)
        xs = np.array([examples.get((arm, s), math.nan) for s in sizes], float)
        hs = np.array([np.mean(hours.get((arm, s), [math.nan])) for s in sizes], float)
        floor = len(sizes) >= 4   # err = E + A x^-alpha needs a 4th level for its floor E
        est[arm] = {
            "score_by_size": {s: stats.mean_estimate(Y[:, j]) for j, s in enumerate(sizes)},
            "examples": {s: float(xs[j]) for j, s in enumerate(sizes)},
            "accelerator_hours": {s: float(hs[j]) for j, s in enumerate(sizes)},
            "vs_examples": _fits(xs, Y, floor),
            "vs_compute": (_fits(hs, Y, floor) if _span(hs) >= MIN_COMPUTE_SPAN else
                           {"not_fitted": f"compute varies only {_span(hs):.2f}x across the sizes "
                                          f"(a fit needs >= {MIN_COMPUTE_SPAN:g}x)"})}
        curves[arm] = (xs, hs, Y)
    (xa, ha, Ya), (xb, hb, Yb) = curves[arms[0]], curves[arms[1]]

    def crossover(x1, x2):
        n1 = len(x1)
        return lambda xx, yy: {"x": fits.loglinear_crossover(fits.loglinear(x1, yy[:n1]), fits.loglinear(x2, yy[n1:]))}
    both = np.concatenate([Ya, Yb], 1)
    est["crossover_examples"] = fits.fit_with_ci(np.concatenate([xa, xb]), both, crossover(xa, xb),
                                                 positive=("x",))["x"]
    compute_fitted = all("not_fitted" not in est[arm]["vs_compute"] for arm in arms[:2])
    est["crossover_compute_hours"] = (fits.fit_with_ci(np.concatenate([ha, hb]), both, crossover(ha, hb),
                                                       positive=("x",))["x"]
                                      if compute_fitted else {"not_fitted": "compute does not vary enough in an arm"})
    lo_x, hi_x = measured_overlap(xa, xb)
    cx = est["crossover_examples"]["value"]
    est["crossover_examples"]["within_measured_range"] = bool(cx is not None and lo_x <= cx <= hi_x)
    est["crossover_examples"]["measured_by_both_arms"] = [float(lo_x), float(hi_x)]
    if len(a.get("factorial", ()) or ()) == 4:
        est["factorial"] = _factorial(col, study, seeds, sizes, sc, other)
    lines += ["| arm | n per language | training examples | acc-hours | zero-shot score |", "|---|---:|---:|---:|---:|"]
    for arm in arms:
        for s in sizes:
            lines.append(f"| {arm} | {s} | {est[arm]['examples'][s]:.0f} | {est[arm]['accelerator_hours'][s]:.3g} | "
                         f"{fmt(est[arm]['score_by_size'][s], 1)} |")
    lines += ["", "| arm | slope b of score = a + b ln(examples) | error power law exponent alpha (examples) | "
              "alpha (compute) |", "|---|---:|---:|---:|"]
    for arm in arms:
        vc = est[arm]["vs_compute"]
        fl = est[arm]["vs_examples"].get("powerlaw_error_floor")
        if fl:
            lines_floor.append(f"| {arm} | {fmt(fl['alpha'], 3)} | {fmt(fl['floor'], 2)} |")
        lines.append(f"| {arm} | {fmt(est[arm]['vs_examples']['loglinear']['b'], 3)} | "
                     f"{fmt(est[arm]['vs_examples']['powerlaw_error']['alpha'], 3)} | "
                     f"{'not fitted: ' + vc['not_fitted'] if 'not_fitted' in vc else fmt(vc['powerlaw_error']['alpha'], 3)} |")
    if lines_floor:
        lines += ["", "| arm | alpha of err = E + A x^-alpha (examples) | error floor E (points) |", "|---|---:|---:|",
                  *lines_floor]
    if "factorial" in est:
        f = est["factorial"]
        lines += ["", "2x2 effects per size (paired by seed; * = p < 0.05 after Holm over the table):", "",
                  "| n per language | intermediate (main) | target languages (main) | interaction |", "|---:|---:|---:|---:|"]
        for s in sizes:
            lines.append(f"| {s} | " + " | ".join(fmt(f[k][s]) + significance(f[k][s]) for k in
                                                  ("intermediate", "target_languages", "interaction")) + " |")
    c = est["crossover_examples"]
    lines += ["", f"Crossover of the two log-linear fits: {fmt(c, 0)} training examples "
              f"({'inside' if c['within_measured_range'] else 'outside'} the range both arms measured, {lo_x:.0f}-{hi_x:.0f}; "
              f"defined in {100 * (c.get('defined') or 0):.0f}% of leave-one-seed-out fits); in compute: "
              + (f"{fmt(est['crossover_compute_hours'], 4)} accelerator-hours." if compute_fitted else
                 "not fitted (compute does not vary enough in an arm)."), ""]

    def plot_x(ax, which):
        for k, arm in enumerate(arms):
            xs, hs, Y = curves[arm]
            xv = xs if which == "examples" else hs
            errorbars(ax, xv, [est[arm]["score_by_size"][s] for s in sizes], color=f"C{k}", label=arm)
            if which == "examples" or "not_fitted" not in est[arm]["vs_compute"]:
                p = fits.loglinear(xv, np.nanmean(Y, 0))
                g = np.geomspace(np.nanmin(xv), np.nanmax(xv), 100)
                ax.plot(g, fits.predict_loglinear(p, g), color=f"C{k}", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("target training examples" if which == "examples" else "accelerator-hours (whole chain)")
        ax.set_ylabel("zero-shot score (avg over non-English languages)")
        ax.legend(fontsize=8)
    plots["score_vs_examples.png"] = lambda ax: plot_x(ax, "examples")
    plots["score_vs_compute.png"] = lambda ax: plot_x(ax, "compute")
    headline = {f"alpha_{arm}": est[arm]["vs_examples"]["powerlaw_error"]["alpha"] for arm in arms}
    headline["crossover_examples"] = est["crossover_examples"]
    return {"estimates": est, "headline": headline, "lines": lines, "plots": plots}
