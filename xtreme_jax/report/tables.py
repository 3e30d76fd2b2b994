"""Markdown and CSV tables of one run (results.md, results.csv, results_long.csv)."""
from __future__ import annotations

import csv
import io
import math
import os
from typing import Mapping

from etils import epath

from xtreme_jax.files import write_atomic
from xtreme_jax.report.metrics import MetricArg, check_results, lang_order, metric_label, task_table


def csv_text(rows) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def fmt(v, digits: int, signed: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def md_table(header, rows) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def markdown_tables(results, metric: MetricArg = None, digits: int = 1, *, unscored: Mapping | None = None,
                    notes: Mapping | None = None) -> str:
    """Task x language table of primary metrics (with averages), then all metrics per task.
    Notes (how to read a task's scores) and the languages without a score come right below."""
    check_results(results, allow_empty=bool(unscored))
    table = task_table(results, metric) if results else {}
    langs = lang_order({lg for r in table.values() for lg in r["langs"]})
    rows = [[t + (" *" if t in (notes or {}) else ""), metric_label(r["metric"]), fmt(r["average"], digits)]
            + [fmt(r["langs"].get(lg), digits) for lg in langs] for t, r in table.items()]
    lines = ["# Results", "", "Primary metric per task; avg is over the languages present.", ""]
    lines += md_table(["task", "metric", "avg", *langs], rows) if rows else ["No scores."]
    lines += ["", "## Notes", ""] + [f"- **{t}** *: {n}" for t, n in notes.items()] if notes else []
    lines += ["", "## Not scored (predictions only)", ""] + md_table(
        ["task", "language", "reason"], [[t, lg, r] for t, by in unscored.items() for lg, r in by.items()]
    ) if unscored else []
    for task, by_lang in results.items():
        names = list(dict.fromkeys(m for ms in by_lang.values() for m in ms))
        lines += ["", f"## {task}", ""]
        lines += md_table(["language", *names],
                          [[lg] + [fmt(by_lang[lg].get(m), digits) for m in names]
                           for lg in lang_order(by_lang)])
    return "\n".join(lines) + "\n"


def write_tables(out_dir, results, metric: MetricArg = None, digits: int = 1, *,
                 unscored: Mapping | None = None, notes: Mapping | None = None) -> dict[str, str]:
    """Writes results.md, results.csv (wide, primary metric) and results_long.csv (every value).

    results_long.csv rows are task,language,metric,value with repr() floats, so reading it back
    gives the input exactly.
    """
    out_dir = os.fspath(out_dir)
    markdown = markdown_tables(results, metric, digits, unscored=unscored, notes=notes)
    table = task_table(results, metric) if results else {}
    langs = lang_order({lg for r in table.values() for lg in r["langs"]})
    wide = [["task", "metric", "average", *langs]]
    for t, r in table.items():
        cells = [r["langs"].get(lg) for lg in langs]
        wide.append([t, metric_label(r["metric"]), "" if r["average"] is None else repr(r["average"])]
                    + ["" if v is None else repr(v) for v in cells])
    long = [["task", "language", "metric", "value"]]
    long += [[t, lg, m, repr(float(v))] for t, by_lang in results.items()
             for lg in lang_order(by_lang) for m, v in by_lang[lg].items()]
    paths = {"markdown": os.path.join(out_dir, "results.md"),
             "csv": os.path.join(out_dir, "results.csv"),
             "csv_long": os.path.join(out_dir, "results_long.csv")}
    write_atomic(paths["markdown"], markdown)
    write_atomic(paths["csv"], csv_text(wide))
    write_atomic(paths["csv_long"], csv_text(long))
    return paths


def read_long_csv(path) -> dict:
    """Inverse of results_long.csv: {task: {lang: {metric: float}}}."""
    out: dict = {}
    text = epath.Path(path).read_bytes().decode("utf-8")
    for row in csv.DictReader(io.StringIO(text, newline="")):
        out.setdefault(row["task"], {}).setdefault(row["language"], {})[row["metric"]] = float(row["value"])
    return out
