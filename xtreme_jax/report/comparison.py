"""Two runs compared: per-language deltas of the primary metric, as Markdown, CSV and plots."""
from __future__ import annotations

import os
import re
from typing import Mapping, Sequence

from xtreme_jax.files import write_atomic
from xtreme_jax.report.metrics import MetricArg, lang_order, metric_label, task_table
from xtreme_jax.report.plots import plot_comparison
from xtreme_jax.report.tables import csv_text, fmt, md_table


def compare_runs(results_a, results_b, names: Sequence[str] = ("X-STILTs", "XLM-R"),
                 metric: MetricArg = None) -> dict:
    """Per-language deltas (a - b) of the primary metric, for tasks present in both runs.

    Returns {task: {"metric": spec, "languages": {lang: {name_a: a, name_b: b, "delta": a - b}},
    "average": {name_a, name_b, "delta"} over the common languages, "missing": langs in only one
    run}}. Averages use only common languages, so the delta compares like with like.
    """
    name_a, name_b = names
    if name_a == name_b or "delta" in names:
        raise ValueError(f"names must be two different labels other than 'delta', got {names!r}")
    ta, tb = task_table(results_a, metric), task_table(results_b, metric)
    out = {}
    for task in [t for t in ta if t in tb]:
        la, lb = ta[task]["langs"], tb[task]["langs"]
        if ta[task]["metric"] != tb[task]["metric"]:
            raise ValueError(f"{task}: the runs have different primary metrics "
                             f"({metric_label(ta[task]['metric'])} vs {metric_label(tb[task]['metric'])}); "
                             "pass metric= to choose one both have")
        common = [lg for lg in lang_order(la) if lg in lb]
        rows = {lg: {name_a: la[lg], name_b: lb[lg], "delta": la[lg] - lb[lg]} for lg in common}
        avg = None
        if common:
            a = sum(la[lg] for lg in common) / len(common)
            b = sum(lb[lg] for lg in common) / len(common)
            avg = {name_a: a, name_b: b, "delta": a - b}
        out[task] = {"metric": ta[task]["metric"], "languages": rows, "average": avg,
                     "missing": lang_order(set(la) ^ set(lb))}
    return out


TRAIN_LANGUAGE = "en"  # the recipe trains in English: every other language is zero-shot


def zero_shot_average(entry: Mapping, names: Sequence[str]) -> dict | None:
    """The zero-shot average of one compare_runs() task: over the common languages other than
    English, {name_a, name_b, "delta", "languages": n}; None when English is all there is. The one
    definition the console table (ablation.gain_table), comparison.md and the plots use."""
    rows = [r for lg, r in entry["languages"].items() if lg != TRAIN_LANGUAGE]
    if not rows:
        return None
    out = {k: sum(r[k] for r in rows) / len(rows) for k in (*names, "delta")}
    return {**out, "languages": len(rows)}


def comparison_markdown(comparison: Mapping, names: Sequence[str], digits: int = 1,
                        skipped: Sequence[str] = (), note: str = "") -> str:
    a, b = names
    lines = [f"# {a} vs {b}", "", f"Δ = {a} − {b}; avg: over the languages both runs have (English included); "
             f"zero-shot: over those other than English, the transfer the recipe is for.", ""]
    rows = []
    for task, e in comparison.items():
        avg = e["average"] or {}
        zs = zero_shot_average(e, names) or {}
        better = sum(r["delta"] > 0 for r in e["languages"].values())
        rows.append([task, metric_label(e["metric"]), fmt(avg.get(a), digits), fmt(avg.get(b), digits),
                     fmt(avg.get("delta"), digits, True), f"{better}/{len(e['languages'])}",
                     fmt(zs.get("delta"), digits, True), str(zs.get("languages", 0))])
    lines += md_table(["task", "metric", a, b, "Δ", "languages improved", "zero-shot Δ", "zero-shot languages"], rows)
    if note:
        lines += ["", note]
    if skipped:
        lines += ["", "Not compared (in one run only): " + ", ".join(skipped)]
    for task, e in comparison.items():
        lines += ["", f"## {task} ({metric_label(e['metric'])})", ""]
        body = [[lg, fmt(r[a], digits), fmt(r[b], digits), fmt(r["delta"], digits, True)]
                for lg, r in e["languages"].items()]
        if e["average"]:
            avg = e["average"]
            body.append(["**avg**", fmt(avg[a], digits), fmt(avg[b], digits), fmt(avg["delta"], digits, True)])
        zs = zero_shot_average(e, names)
        if zs:
            body.append([f"**zero-shot** ({zs['languages']})", fmt(zs[a], digits), fmt(zs[b], digits),
                         fmt(zs["delta"], digits, True)])
        lines += md_table(["language", a, b, "Δ"], body)
        if e["missing"]:
            lines += ["", "In one run only: " + ", ".join(e["missing"])]
    return "\n".join(lines) + "\n"


def write_comparison(out_dir, results_a, results_b, names: Sequence[str] = ("X-STILTs", "XLM-R"),
                     metric: MetricArg = None, digits: int = 1, note: str = "") -> dict[str, str]:
    """Writes comparison.md, comparison.csv and comparison_<task>.png; returns {kind: path}.
    `note`: what the comparison can and cannot show (say, one seed), under the table and the plots."""
    out_dir = os.fspath(out_dir)
    names = tuple(names)
    comp = compare_runs(results_a, results_b, names, metric)
    if not comp:
        raise ValueError(f"the two runs share no task (a: {sorted(results_a)}, b: {sorted(results_b)})")
    skipped = sorted(set(results_a) ^ set(results_b))
    rows = [["task", "language", "metric", names[0], names[1], "delta"]]
    for task, e in comp.items():
        items = list(e["languages"].items()) + ([("avg", e["average"])] if e["average"] else [])
        rows += [[task, lg, metric_label(e["metric"]), repr(r[names[0]]), repr(r[names[1]]), repr(r["delta"])]
                 for lg, r in items]
    paths = {"markdown": os.path.join(out_dir, "comparison.md"),
             "csv": os.path.join(out_dir, "comparison.csv")}
    write_atomic(paths["markdown"], comparison_markdown(comp, names, digits, skipped, note))
    write_atomic(paths["csv"], csv_text(rows))
    for task in comp:
        paths[f"plot_{task}"] = plot_comparison(
            os.path.join(out_dir, f"comparison_{re.sub(r'[^A-Za-z0-9_.-]+', '_', task)}.png"), task, comp, names,
            note=note, zero_shot=zero_shot_average(comp[task], names))
    return paths
