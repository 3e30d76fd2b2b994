"""Run reports: results.json, Markdown/CSV tables, a heatmap, and two-run comparisons.

Results are nested dicts ``{task: {language: {metric: value}}}`` with values in percent, as the
scorers return them. Each task has one primary metric (the rule is in report/metrics.py: the
caller's choice, else the task registry's, else the task's first metric, logged), used for
averages, heatmaps and comparisons; QA tasks use (exact_match + f1) / 2 as XTREME does.

Every file is rendered in memory first and then written atomically (temp file in the same
directory + os.replace; a single object upload on gs://), so a crash or a bad value never
leaves a half-written report behind (xtreme_jax.files.write_atomic).

One module per concern:
  metrics.py     the primary metric of a task, the task x language table, results' shape
  results.py     results.json written and read back; git_commit
  tables.py      results.md, results.csv, results_long.csv
  plots.py       heatmap and comparison PNGs
  comparison.py  two runs: deltas, comparison.md/.csv/.png
  cli.py         python -m xtreme_jax.report RESULTS.json --out DIR
                 python -m xtreme_jax.report --compare A.json B.json --out DIR [--names X-STILTs XLM-R]
"""
from __future__ import annotations

import os
from typing import Mapping

from xtreme_jax.report.cli import main
from xtreme_jax.report.comparison import compare_runs, comparison_markdown, write_comparison, zero_shot_average
from xtreme_jax.report.metrics import (RESULT_KEYS, MetricArg, MetricSpec, check_results, metric_label,
                                       primary_spec, primary_value, spec_value, task_table)
from xtreme_jax.report.plots import plot_comparison, plot_heatmap
from xtreme_jax.report.results import git_commit, read_results, write_results_json
from xtreme_jax.report.tables import markdown_tables, read_long_csv, write_tables

__all__ = ["RESULT_KEYS", "MetricArg", "MetricSpec", "check_results", "compare_runs", "comparison_markdown",
           "git_commit", "main", "markdown_tables", "metric_label", "plot_comparison", "plot_heatmap",
           "primary_spec", "primary_value", "read_long_csv", "read_results", "spec_value", "task_table",
           "write_comparison", "write_report", "write_results_json", "write_tables", "zero_shot_average"]


def write_report(out_dir, results, metadata: Mapping | None = None, metric: MetricArg = None, *,
                 unscored: Mapping | None = None, notes: Mapping | None = None) -> dict[str, str]:
    """Tables + heatmap (none without any score) + results.json, written last: a reader that
    finds results.json finds the rest (what a run's evaluate phase writes)."""
    out_dir = os.fspath(out_dir)
    paths = write_tables(out_dir, results, metric, unscored=unscored, notes=notes)
    if results:
        paths["heatmap"] = plot_heatmap(os.path.join(out_dir, "heatmap.png"), results, metric)
    paths["json"] = write_results_json(os.path.join(out_dir, "results.json"), results, metadata, metric=metric,
                                       unscored=unscored, notes=notes)
    return paths
