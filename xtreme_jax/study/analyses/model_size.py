"""Question 4: semantic minus syntactic intermediate-task gain as the encoder grows."""
from __future__ import annotations

import math

import numpy as np

from xtreme_jax.study import fits, stats
from xtreme_jax.study.analyses.common import cell_scores, errorbars, fmt, levels_of, matrix, seeds_of


def model_size(col, study) -> dict:
    a = study.analysis
    seeds = seeds_of(col)
    size_f, task_f, base = a.size, a.task, a.baseline
    params = {}
    for r in col.rows:
        params.setdefault(r[size_f], col.points.get(r["point"], {}).get("params", math.nan))
    sizes = sorted(levels_of(col, size_f), key=lambda s: params.get(s, 0))
    groups = {"syntactic": list(a.syntactic), "semantic": list(a.semantic)}
    sc = cell_scores(col)
    other = {f: levels_of(col, f)[0] for f in col.factors if f not in (size_f, task_f)}
    G = {}
    for g, tasks in groups.items():
        per = []
        for t in tasks:
            w = matrix(sc, col, {**other, task_f: t}, size_f, sizes, seeds)
            wo = matrix(sc, col, {**other, task_f: base}, size_f, sizes, seeds)
            per.append(w - wo)
        G[g] = fits._colmean(np.stack(per))   # seeds x sizes: mean gain of the group (NaN where none)
    diff = G["semantic"] - G["syntactic"]
    est = {g: {s: stats.mean_estimate(G[g][:, j]) for j, s in enumerate(sizes)} for g in G}
    est["semantic_minus_syntactic"] = {s: stats.mean_estimate(diff[:, j]) for j, s in enumerate(sizes)}
    # per seed: (semantic - syntactic) at the largest size minus at the smallest; t over seeds
    est["difference_in_differences"] = dict(stats.mean_estimate(diff[:, -1] - diff[:, 0]),
                                            of=f"(semantic - syntactic gain) at {sizes[-1]} minus at {sizes[0]}")
    if all(math.isfinite(params.get(s, math.nan)) for s in sizes):
        lp = np.log10([float(params[s]) for s in sizes])
        est["slope_per_decade_of_parameters"] = fits.fit_with_ci(
            lp, diff, lambda x, y: {"slope": np.polyfit(x[np.isfinite(y)], y[np.isfinite(y)], 1)[0]
                                    if np.isfinite(y).sum() >= 2 else math.nan})["slope"]
    lines = ["Gain = zero-shot score with the intermediate task minus without, same size and seed; each group "
             "averages its tasks (syntactic: " + ", ".join(groups["syntactic"]) + "; semantic: " +
             ", ".join(groups["semantic"]) + ").", "",
             "| size | syntactic gain | semantic gain | semantic - syntactic |", "|---|---:|---:|---:|"]
    for s in sizes:
        lines.append(f"| {s} | {fmt(est['syntactic'][s])} | {fmt(est['semantic'][s])} | "
                     f"{fmt(est['semantic_minus_syntactic'][s])} |")
    lines += ["", f"Difference in differences ({est['difference_in_differences']['of']}): "
              f"{fmt(est['difference_in_differences'])}"]
    if "slope_per_decade_of_parameters" in est:
        lines[-1] += (f"; slope of (semantic - syntactic) per decade of parameters: "
                      f"{fmt(est['slope_per_decade_of_parameters'])}")
    lines.append("")

    def plot(ax):
        xs = np.arange(len(sizes))
        for k, g in enumerate(("syntactic", "semantic")):
            errorbars(ax, xs + 0.05 * k, [est[g][s] for s in sizes], color=f"C{k}", label=f"{g} gain")
        errorbars(ax, xs + 0.1, [est["semantic_minus_syntactic"][s] for s in sizes], color="C2", ls="--",
                   label="semantic - syntactic")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(xs, [f"{s}\n{params[s]:.2g}" for s in sizes])
        ax.set_xlabel("model size (parameters)")
        ax.set_ylabel("zero-shot gain (points)")
        ax.legend(fontsize=8)
    return {"estimates": est, "headline": {"difference_in_differences": est["difference_in_differences"]},
            "lines": lines, "plots": {"gain_vs_model_size.png": plot}}
