"""Question 2: zero-shot gain vs an operational difficulty of each intermediate task.

With analysis.across_format set (full scale: the nine X-STILTs tasks) the Spearman correlation, its
encoder contrast, the ranking stability and the script split are over those tasks only (the
within-format ones, e.g. MNLI easy/hard, are subsets or variants of them); unset: every task. With
analysis.within_format set, difficulty_within.py adds the within-format contrasts."""
from __future__ import annotations

import math

import numpy as np

from xtreme_jax.study import stats
from xtreme_jax.study.analyses.common import (SCRIPT_CAVEAT, cell_scores, chance, errorbars, fmt, key_of, levels_of,
                                              matrix, point_of, script_split, seeds_of, significance)
from xtreme_jax.study.analyses.difficulty_within import within_format


class NotAScore(ValueError):
    """A learning curve whose dev values are not scores in [0, 1] (e.g. -loss): no difficulty."""


def difficulty_of(curve: list, p_chance: float) -> float:
    """Mean over the intermediate phase's dev evaluations of the error normalized by the error of
    chance: 1 = never better than chance, 0 = perfect from the first evaluation (an area above the
    learning curve, so a task learnt late counts as harder than one learnt early).

    The dev values must be scores in [0, 1]: a run whose validator recorded something else (span
    tasks once recorded -loss as dev/score) raises NotAScore, never a loss read as an error."""
    if not curve:
        return math.nan
    s = np.array([v for _, v in curve], float)
    bad = s[~((s >= 0) & (s <= 1))]
    if len(bad):
        raise NotAScore(f"dev/score {bad[0]:.4g} is not a score in [0, 1] (a loss?): no difficulty from this curve")
    return float(np.mean(np.clip((1 - s) / max(1 - p_chance, 1e-9), 0, None)))


def _spearman_contrast(data: dict, first: list, second: list):
    """Mean Spearman(difficulty, gain) of the `first` encoders minus that of the `second`, over the
    seeds (rows of every matrix, the same seeds for all encoders)."""
    order = first + second
    blocks = [m for e in order for m in data[e]]
    widths = [m.shape[1] for m in blocks]
    cuts = np.cumsum([0] + widths)

    def stat(B):
        m = stats._nanmean0
        r = [stats.spearman(m(B[:, cuts[2 * i]:cuts[2 * i + 1]]), m(B[:, cuts[2 * i + 1]:cuts[2 * i + 2]]))
             for i in range(len(order))]
        return np.mean(r[:len(first)]) - np.mean(r[len(first):])
    return np.concatenate(blocks, 1), stat


def _by_script(col, data: dict, fixed: dict, task_f: str, tasks: list, base: str, seeds: list) -> tuple[dict, list]:
    """The zero-shot gain per group of languages by writing script (common.script_split), averaged
    over the intermediate tasks, per encoder; its Spearman correlation with difficulty across tasks;
    Latin minus non-Latin paired by seed. `fixed`: {encoder: the other factors' levels of its runs}."""
    scores, out, lines = script_split(col, "Zero-shot gain")
    if not scores:
        return out, lines
    encs = out["encoders"] = {}
    for enc, labels in fixed.items():
        per, mean_gain = {}, {}
        for name, sc in scores.items():
            S = matrix(sc, col, labels, task_f, tasks + [base], seeds)
            gain = S[:, :-1] - S[:, -1:]
            mean_gain[name] = gain.mean(1)      # a seed missing a task has no mean over the tasks
            per[name] = {"languages": out["groups"][name], "gain": stats.mean_estimate(mean_gain[name]),
                         "gain_by_task": {t: stats.mean_estimate(gain[:, j]) for j, t in enumerate(tasks)},
                         "spearman_difficulty_gain": stats.spearman_estimate(data[enc][0], gain) if len(tasks) >= 3
                         else None}
        if "Latin" in per and "non-Latin" in per:
            per["latin_minus_non_latin"] = stats.paired_delta(mean_gain["Latin"], mean_gain["non-Latin"])
        encs[enc] = per
    stats.adjust([encs[e][g]["gain"] for e in encs for g in scores],
                 f"script-group gains, {len(encs)} encoders x {len(scores)} groups")
    diffs = [encs[e]["latin_minus_non_latin"] for e in encs if "latin_minus_non_latin" in encs[e]]
    stats.adjust(diffs, f"Latin - non-Latin gains, {len(diffs)} encoders")
    lines += ["Gain = the group's zero-shot score minus the run without intermediate training (same encoder and "
              f"seed), averaged over the {len(tasks)} intermediate tasks; 95% t intervals over {len(seeds)} seeds.", "",
              "| encoder | script group | languages | mean gain over tasks | Spearman(difficulty, gain) |",
              "|---|---|---:|---:|---:|"]
    for e, per in encs.items():
        for g in scores:
            r = per[g]["spearman_difficulty_gain"]
            lines.append(f"| {e} | {g} | {len(out['groups'][g])} | {fmt(per[g]['gain'])}{significance(per[g]['gain'])} "
                         f"| {fmt(r) if r else '– (fewer than 3 tasks)'} |")
        if "latin_minus_non_latin" in per:
            d = per["latin_minus_non_latin"]
            lines.append(f"| {e} | Latin − non-Latin | | {fmt(d)}{significance(d)} | |")
    return out, lines + ["", "\\* = different from 0 at 5% after Holm's adjustment over the table's group gains "
                         "(and, apart, over its Latin − non-Latin differences).", "", SCRIPT_CAVEAT, ""]


def difficulty(col, study) -> dict:
    a = study.analysis
    seeds = seeds_of(col)
    enc_f, task_f, base = a.encoder, a.task, a.baseline
    encoders = levels_of(col, enc_f)
    tasks = [t for t in levels_of(col, task_f) if t != base]
    # the across-format correlation's tasks (full scale: the nine; unset: every task), so that the
    # within-format ones (MNLI easy/hard are subsets of MNLI) do not enter it
    across = [t for t in tasks if t in a.across_format] if a.get("across_format") else tasks
    cols = [tasks.index(t) for t in across]
    sc = cell_scores(col)
    point = point_of(col)
    other = {f: levels_of(col, f)[0] for f in col.factors if f not in (enc_f, task_f)}
    est, lines, plots, data, everything, skipped = {}, [], {}, {}, {}, []
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
                try:
                    diff[i, j] = difficulty_of(curve.get("intermediate", []), p_chance)
                except NotAScore as err:
                    skipped.append({"point": p, "encoder": enc, "task": t, "seed": sd, "reason": str(err)})
        everything[enc] = (diff, gain)
        data[enc] = (diff[:, cols], gain[:, cols])
        est[enc] = {"difficulty": {t: stats.mean_estimate(diff[:, j]) for j, t in enumerate(tasks)},
                    "gain": {t: stats.mean_estimate(gain[:, j]) for j, t in enumerate(tasks)},
                    "spearman_difficulty_gain": stats.spearman_estimate(*data[enc]),
                    "gain_ranking_stability": stats.ranking_stability(data[enc][1])}
    stats.adjust([est[e]["gain"][t] for e in encoders for t in tasks],
                 f"task gains, {len(encoders)} encoders x {len(tasks)} tasks")
    if skipped:
        est["skipped"] = skipped
    # The question's contrast: English-only encoders against the multilingual one(s), by their
    # declared roles (never by label order).
    english = [e for e in a.get("english_only", ()) or () if e in data]
    multi = [e for e in a.get("multilingual", ()) or () if e in data]
    if english and multi:
        B, stat = _spearman_contrast(data, english, multi)
        v, lo, hi, _, defined = stats.jackknife(B, stat)
        est["spearman_difference"] = stats.estimate(
            v[0], (max(lo[0], -2), min(hi[0], 2)), len(seeds), "seed", method="jackknife t",
            of=f"mean over English-only ({', '.join(english)}) - multilingual ({', '.join(multi)})",
            defined=stats._num(defined[0]))
    lines += ["Difficulty = mean normalized dev error over the intermediate phase's evaluations (1 = chance "
              "throughout, 0 = perfect from the first evaluation). Gain = zero-shot score minus the run "
              "without intermediate training, same encoder and seed.", "",
              "| encoder | task | difficulty | zero-shot gain |", "|---|---|---:|---:|"]
    for enc in encoders:
        for t in tasks:
            g = est[enc]["gain"][t]
            lines.append(f"| {enc} | {t} | {fmt(est[enc]['difficulty'][t], 3)} | {fmt(g, 2)}{significance(g)} |")
    lines += ["", "\\* = gain different from 0 at 5% after Holm's adjustment over every (encoder, task) gain."]
    if skipped:
        lines += ["", f"**{len(skipped)} learning curve(s) skipped**: their dev values are not scores in [0, 1], so "
                  "no difficulty is computed from them (a loss is not an error rate). First: "
                  f"{skipped[0]['encoder']} / {skipped[0]['task']} seed {skipped[0]['seed']}: {skipped[0]['reason']}."]
    if a.get("across_format"):
        est["across_format"] = {"tasks": across, "missing": [t for t in a.across_format if t not in tasks],
                                "left_out": [t for t in tasks if t not in across]}
        lines += ["", f"Spearman correlations, ranking stability and the script split over the {len(across)} "
                  f"across-format tasks ({', '.join(across)}); left out of them: "
                  f"{', '.join(est['across_format']['left_out']) or 'none'}."
                  + (f" Not collected: {', '.join(est['across_format']['missing'])}." if est["across_format"]["missing"]
                     else "")]
    lines += ["", "| encoder | Spearman(difficulty, gain) | gain ranking stability across seeds (leave-one-out "
              "Spearman) | Kendall's W |", "|---|---:|---:|---:|"]
    for enc in encoders:
        r, s = est[enc]["spearman_difficulty_gain"], est[enc]["gain_ranking_stability"]
        lines.append(f"| {enc} | {fmt(r)} | {fmt(s)} | {s['kendall_w'] if s['kendall_w'] is None else round(s['kendall_w'], 3)} |")
    est["by_script"], script_lines = _by_script(col, data, {e: {**other, enc_f: e} for e in encoders}, task_f,
                                                across, base, seeds)
    if "spearman_difference" in est:
        lines += ["", f"Difference of the Spearman correlations ({est['spearman_difference']['of']}): "
                  f"{fmt(est['spearman_difference'])}"]
    lines += script_lines   # opens with a blank line
    if a.get("within_format"):
        est["within_format"], within_lines = within_format(everything, tasks, dict(a.within_format), english, multi)
        lines += within_lines

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
    if "spearman_difference" in est:
        headline["english_only_minus_multilingual"] = est["spearman_difference"]
    return {"estimates": est, "headline": headline, "lines": lines, "plots": plots}
