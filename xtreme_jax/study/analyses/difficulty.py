"""Question 2: zero-shot gain vs an operational difficulty of each intermediate task."""
from __future__ import annotations

import math

import numpy as np

from xtreme_jax.study import stats
from xtreme_jax.study.analyses.common import cell_scores, chance, errorbars, fmt, key_of, levels_of, matrix, point_of, seeds_of


def difficulty_of(curve: list, p_chance: float) -> float:
    """Mean over the intermediate phase's dev evaluations of the error normalized by the error of
    chance: 1 = never better than chance, 0 = perfect from the first evaluation (an area above the
    learning curve, so a task learnt late counts as harder than one learnt early)."""
    if not curve:
        return math.nan
    s = np.array([v for _, v in curve], float)
    return float(np.mean(np.clip((1 - s) / max(1 - p_chance, 1e-9), 0, None)))


def difficulty(col, study) -> dict:
    a = study.analysis
    seeds = seeds_of(col)
    enc_f, task_f, base = a.encoder, a.task, a.baseline
    encoders = levels_of(col, enc_f)
    tasks = [t for t in levels_of(col, task_f) if t != base]
    sc = cell_scores(col)
    point = point_of(col)
    other = {f: levels_of(col, f)[0] for f in col.factors if f not in (enc_f, task_f)}
    est, lines, plots, data = {}, [], {}, {}
    for enc in encoders:
        S = matrix(sc, col, {**other, enc_f: enc}, task_f, tasks + [base], seeds)
        gain = S[:, :-1] - S[:, -1:]
        diff = np.full_like(gain, np.nan)
        for i, sd in enumerate(seeds):
            for j, t in enumerate(tasks):
                p = point.get((key_of(col, {**other, enc_f: enc, task_f: t}), sd))
                if p is None:
                    continue
                curve = col.curves.get(p, {})
                heads = curve.get("intermediate_heads", {})
                names = col.points.get(p, {}).get("intermediate_tasks", [])
                p_chance = float(np.mean([chance(n, heads) for n in names])) if names else 0.0
                diff[i, j] = difficulty_of(curve.get("intermediate", []), p_chance)
        data[enc] = (diff, gain)
        est[enc] = {"difficulty": {t: stats.mean_estimate(diff[:, j]) for j, t in enumerate(tasks)},
                    "gain": {t: stats.mean_estimate(gain[:, j]) for j, t in enumerate(tasks)},
                    "spearman_difficulty_gain": stats.spearman_estimate(diff, gain),
                    "gain_ranking_stability": stats.ranking_stability(gain)}
    if len(encoders) >= 2:
        (d0, g0), (d1, g1) = data[encoders[0]], data[encoders[1]]
        stat = lambda a0, b0, a1, b1: (stats.spearman(np.nanmean(a1, 0), np.nanmean(b1, 0))  # noqa: E731
                                       - stats.spearman(np.nanmean(a0, 0), np.nanmean(b0, 0)))
        v, ci, dist = stats.bootstrap([d0, g0, d1, g1], stat)
        est["spearman_difference"] = stats.estimate(v, ci, len(seeds), "seed", of=f"{encoders[1]} - {encoders[0]}",
                                                    defined=stats.defined_fraction(dist))
    lines += ["Difficulty = mean normalized dev error over the intermediate phase's evaluations (1 = chance "
              "throughout, 0 = perfect from the first evaluation). Gain = zero-shot score minus the run "
              "without intermediate training, same encoder and seed.", "",
              "| encoder | task | difficulty | zero-shot gain |", "|---|---|---:|---:|"]
    for enc in encoders:
        for t in tasks:
            lines.append(f"| {enc} | {t} | {fmt(est[enc]['difficulty'][t], 3)} | {fmt(est[enc]['gain'][t], 2)} |")
    lines += ["", "| encoder | Spearman(difficulty, gain) | gain ranking stability across seeds (leave-one-out "
              "Spearman) | Kendall's W |", "|---|---:|---:|---:|"]
    for enc in encoders:
        r, s = est[enc]["spearman_difficulty_gain"], est[enc]["gain_ranking_stability"]
        lines.append(f"| {enc} | {fmt(r)} | {fmt(s)} | {s['kendall_w'] if s['kendall_w'] is None else round(s['kendall_w'], 3)} |")
    if "spearman_difference" in est:
        lines += ["", f"Difference of the Spearman correlations ({est['spearman_difference']['of']}): "
                  f"{fmt(est['spearman_difference'])}"]
    lines.append("")

    def plot(ax):
        for k, enc in enumerate(encoders):
            dv = [est[enc]["difficulty"][t]["value"] or np.nan for t in tasks]
            errorbars(ax, dv, [est[enc]["gain"][t] for t in tasks], color=f"C{k}", ls="none", label=enc)
            for t, xx, e in zip(tasks, dv, [est[enc]["gain"][t] for t in tasks]):
                ax.annotate(t, (xx, e["value"] or 0), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("intermediate-task difficulty (normalized dev error, area)")
        ax.set_ylabel("zero-shot gain (points)")
        ax.legend(fontsize=8)
    plots["gain_vs_difficulty.png"] = plot
    headline = {enc: est[enc]["spearman_difficulty_gain"] for enc in encoders}
    return {"estimates": est, "headline": headline, "lines": lines, "plots": plots}
