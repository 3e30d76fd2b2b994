"""Question 1: scaling of English intermediate + target training vs direct translate-train fine-tuning."""
from __future__ import annotations

import math

import numpy as np

from xtreme_jax.study import fits, stats
from xtreme_jax.study.analyses.common import cell_scores, errorbars, fmt, levels_of, matrix, seeds_of, size_of


# A scaling fit against compute needs compute to vary: at tiny scale every point trains the same
# number of steps, and an exponent fitted over a 1.05x range of compute is noise read as a law.
MIN_COMPUTE_SPAN = 2.0


def _span(x) -> float:
    x = np.asarray(x, float)
    x = x[np.isfinite(x) & (x > 0)]
    return float(x.max() / x.min()) if len(x) else math.nan


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
    est, lines, plots, curves = {}, [], {}, {}
    for arm in arms:
        Y = matrix(sc, col, {**other, arm_f: arm}, size_f, sizes, seeds)
        xs = np.array([examples.get((arm, s), math.nan) for s in sizes], float)
        hs = np.array([np.mean(hours.get((arm, s), [math.nan])) for s in sizes], float)
        est[arm] = {
            "score_by_size": {s: stats.mean_estimate(Y[:, j]) for j, s in enumerate(sizes)},
            "examples": {s: float(xs[j]) for j, s in enumerate(sizes)},
            "accelerator_hours": {s: float(hs[j]) for j, s in enumerate(sizes)},
            "vs_examples": {"loglinear": fits.fit_with_ci(xs, Y, fits.loglinear),
                            "powerlaw_error": fits.fit_with_ci(xs, 100 - Y, fits.powerlaw)},
            "vs_compute": ({"loglinear": fits.fit_with_ci(hs, Y, fits.loglinear),
                            "powerlaw_error": fits.fit_with_ci(hs, 100 - Y, fits.powerlaw)}
                           if _span(hs) >= MIN_COMPUTE_SPAN else
                           {"not_fitted": f"compute varies only {_span(hs):.2f}x across the sizes "
                                          f"(a fit needs >= {MIN_COMPUTE_SPAN:g}x)"})}
        curves[arm] = (xs, hs, Y)
    (xa, ha, Ya), (xb, hb, Yb) = curves[arms[0]], curves[arms[1]]

    def crossover(x1, x2):
        n1 = len(x1)
        return lambda xx, yy: {"x": fits.loglinear_crossover(fits.loglinear(x1, yy[:n1]), fits.loglinear(x2, yy[n1:]))}
    both = np.concatenate([Ya, Yb], 1)
    est["crossover_examples"] = fits.fit_with_ci(np.concatenate([xa, xb]), both, crossover(xa, xb))["x"]
    compute_fitted = all("not_fitted" not in est[arm]["vs_compute"] for arm in arms)
    est["crossover_compute_hours"] = (fits.fit_with_ci(np.concatenate([ha, hb]), both, crossover(ha, hb))["x"]
                                      if compute_fitted else {"not_fitted": "compute does not vary enough in an arm"})
    lo_x, hi_x = np.nanmin(np.concatenate([xa, xb])), np.nanmax(np.concatenate([xa, xb]))
    cx = est["crossover_examples"]["value"]
    est["crossover_examples"]["within_measured_range"] = bool(cx is not None and lo_x <= cx <= hi_x)
    lines += ["| arm | n per language | training examples | acc-hours | zero-shot score |", "|---|---:|---:|---:|---:|"]
    for arm in arms:
        for s in sizes:
            lines.append(f"| {arm} | {s} | {est[arm]['examples'][s]:.0f} | {est[arm]['accelerator_hours'][s]:.3g} | "
                         f"{fmt(est[arm]['score_by_size'][s], 1)} |")
    lines += ["", "| arm | slope b of score = a + b ln(examples) | error power law exponent alpha (examples) | "
              "alpha (compute) |", "|---|---:|---:|---:|"]
    for arm in arms:
        vc = est[arm]["vs_compute"]
        lines.append(f"| {arm} | {fmt(est[arm]['vs_examples']['loglinear']['b'], 3)} | "
                     f"{fmt(est[arm]['vs_examples']['powerlaw_error']['alpha'], 3)} | "
                     f"{'not fitted: ' + vc['not_fitted'] if 'not_fitted' in vc else fmt(vc['powerlaw_error']['alpha'], 3)} |")
    c = est["crossover_examples"]
    lines += ["", f"Crossover of the two log-linear fits: {fmt(c, 0)} training examples "
              f"({'inside' if c['within_measured_range'] else 'outside'} the measured range {lo_x:.0f}-{hi_x:.0f}; "
              f"defined in {100 * (c.get('defined') or 0):.0f}% of bootstrap resamples); in compute: "
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
