"""Run reports: results.json, Markdown/CSV tables, a heatmap, and two-run comparisons.

Results are nested dicts ``{task: {language: {metric: value}}}`` with values in percent, as the
scorers return them. Each task has one primary metric (PRIMARY_METRIC; the caller may override
it) used for averages, heatmaps and comparisons; QA tasks use (exact_match + f1) / 2 as XTREME
does.

Every file is rendered in memory first and then written atomically (temp file in the same
directory + os.replace; a single object upload on gs://), so a crash or a bad value never
leaves a half-written report behind (xtreme_jax.files.write_atomic).

CLI:
  python -m xtreme_jax.report RESULTS.json --out DIR          tables + heatmap
  python -m xtreme_jax.report --compare A.json B.json --out DIR [--names X-STILTs XLM-R]
"""
from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import math
import numbers
import os
import re
import subprocess
from typing import Mapping, Sequence, Union

from etils import epath

from xtreme_jax.files import write_atomic

# A metric spec is one metric name, or a tuple of names whose mean is the score.
MetricSpec = Union[str, tuple]
MetricArg = Union[None, str, tuple, Mapping[str, MetricSpec]]

_QA = ("exact_match", "f1")
PRIMARY_METRIC: dict[str, MetricSpec] = {
    "xnli": "accuracy", "pawsx": "accuracy", "xcopa": "accuracy", "tatoeba": "accuracy",
    "udpos": "f1", "panx": "f1", "bucc2018": "f1",
    "xquad": _QA, "mlqa": _QA, "tydiqa": _QA,
    "mewslix": "map@20", "lareqa": "map@20",
}


# --------------------------------------------------------------------------- metrics

def _spec(task: str, metrics: Mapping[str, float], metric: MetricArg = None) -> MetricSpec:
    """The metric spec for `task`: caller's choice, else the default table, else the first metric.

    The fallback also covers a default that does not fit the data (say QA scored as "em"), so a
    report is always produced rather than failing at the end of a run.
    """
    if isinstance(metric, Mapping):
        metric = metric.get(task)
    if metric is not None:
        return metric
    spec = PRIMARY_METRIC.get(task)
    names = (spec,) if isinstance(spec, str) else spec
    if names and all(n in metrics for n in names):
        return spec
    return next(iter(metrics))


def metric_label(spec: MetricSpec) -> str:
    return spec if isinstance(spec, str) else "(" + "+".join(spec) + ")/" + str(len(spec))


def spec_value(spec: MetricSpec, metrics: Mapping[str, float]):
    """Value of `spec` in one language's metrics; None when a metric is missing."""
    names = (spec,) if isinstance(spec, str) else tuple(spec)
    if not all(n in metrics for n in names):
        return None
    return sum(float(metrics[n]) for n in names) / len(names)


def primary_value(task: str, metrics: Mapping[str, float], metric: MetricArg = None):
    """(spec, value) of the primary metric of one language's metrics."""
    spec = _spec(task, metrics, metric)
    return spec, spec_value(spec, metrics)


def _lang_order(langs) -> list[str]:
    # English first: it is the training language, every other column is zero-shot.
    langs = set(langs)
    return (["en"] if "en" in langs else []) + sorted(langs - {"en"})


def check_results(results, *, allow_empty: bool = False) -> None:
    """Raises ValueError naming the offending entry unless results is task -> lang -> metric -> number.
    `allow_empty`: no task at all is fine (an evaluation whose every language had no gold labels)."""
    if not isinstance(results, Mapping) or not (results or allow_empty):
        raise ValueError("results must be a non-empty dict {task: {language: {metric: value}}}")
    for task, by_lang in results.items():
        if not isinstance(by_lang, Mapping) or not by_lang:
            raise ValueError(f"results[{task!r}] must be a non-empty dict {{language: {{metric: value}}}}")
        for lang, metrics in by_lang.items():
            if not isinstance(metrics, Mapping) or not metrics:
                raise ValueError(f"results[{task!r}][{lang!r}] must be a non-empty dict {{metric: value}}")
            for name, v in metrics.items():
                if isinstance(v, bool) or not isinstance(v, numbers.Real):
                    raise ValueError(f"results[{task!r}][{lang!r}][{name!r}] = {v!r} is not a number")


def task_table(results, metric: MetricArg = None) -> dict:
    """{task: {"metric": spec, "langs": {lang: value}, "average": mean over present langs}}."""
    check_results(results)
    out = {}
    for task, by_lang in results.items():
        # One spec per task, chosen on the union of its metric names, so that every
        # language of a task is scored the same way.
        union = {m: 0.0 for ms in by_lang.values() for m in ms}
        spec = _spec(task, union, metric)
        langs = {}
        for lang in _lang_order(by_lang):
            v = spec_value(spec, by_lang[lang])
            if v is not None:
                langs[lang] = v
        finite = [v for v in langs.values() if math.isfinite(v)]
        avg = sum(finite) / len(finite) if finite else None
        out[task] = {"metric": spec, "langs": langs, "average": avg}
    return out


# --------------------------------------------------------------------------- file helpers

def _csv_text(rows) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


# --------------------------------------------------------------------------- results.json

def git_commit(repo_dir=None) -> str | None:
    """HEAD commit of the repository holding this package (or repo_dir); None if unknown."""
    repo_dir = repo_dir or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "-C", os.fspath(repo_dir), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if re.fullmatch(r"[0-9a-f]{40,64}", sha) else None


def _jsonable(x):
    """Plain JSON types; NaN/inf become null so that strict readers (jq, JS) can load the file."""
    if hasattr(x, "to_dict") and callable(x.to_dict):  # ml_collections.ConfigDict
        x = x.to_dict()
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):  # numpy scalars and arrays
        return _jsonable(x.tolist())
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if x is None or isinstance(x, (str, int, bool)):
        return x
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    raise TypeError(f"cannot write {type(x).__name__} value {x!r} to JSON")


def write_results_json(path, results, metadata: Mapping | None = None, *, metric: MetricArg = None,
                       unscored: Mapping | None = None, notes: Mapping | None = None) -> str:
    """Writes {"results", "summary", "metadata"} (+ "unscored", "notes" when given) to `path`.

    metadata: run facts such as config (dict or ConfigDict), checkpoint_step, seeds. git_commit
    and written_at are filled in when absent. unscored: {task: {lang: reason}} of languages that
    got predictions but no score (no gold labels): "unscored" holds {"scored": false, "reason"} per
    language, the task's summary their list. notes: {task: how to read its scores}.
    """
    unscored, notes = dict(unscored or {}), dict(notes or {})
    check_results(results, allow_empty=bool(unscored))
    meta = dict(metadata or {})
    meta.setdefault("git_commit", git_commit())
    meta.setdefault("written_at", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    summary = {t: {"metric": metric_label(r["metric"]), "average": r["average"], "languages": len(r["langs"]),
                   "scored": True} for t, r in (task_table(results, metric) if results else {}).items()}
    for task, langs in unscored.items():
        summary.setdefault(task, {"scored": False, "languages": 0})["unscored_languages"] = sorted(langs)
    for task in set(notes) & set(summary):
        summary[task]["note"] = notes[task]
    doc = {"results": _jsonable(results), "summary": _jsonable(summary), "notes": dict(notes),
           "unscored": {t: {lg: {"scored": False, "reason": r} for lg, r in langs.items()}
                        for t, langs in unscored.items()}, "metadata": _jsonable(meta)}
    return write_atomic(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def read_results(path) -> tuple[dict, dict]:
    """(results, metadata) from a results.json, or from a bare {task: {lang: {metric: v}}} file."""
    path = os.fspath(path)
    doc = json.loads(epath.Path(path).read_bytes())  # bytes: UTF-8 whatever the locale
    if isinstance(doc, dict) and "results" in doc:
        results, meta = doc["results"], doc.get("metadata", {})
        if not results and doc.get("unscored"):
            raise ValueError(f"{path}: no scores: every language was evaluated without gold labels "
                             f"({', '.join(sorted(doc['unscored']))}); see its \"unscored\" entries")
    else:
        results, meta = doc, {}
    # null (a NaN when written) reads back as NaN so that tables show it as missing.
    results = {t: {lg: {m: (math.nan if v is None else v) for m, v in ms.items()}
                   for lg, ms in by_lang.items()} for t, by_lang in results.items()}
    try:
        check_results(results)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return results, meta


# --------------------------------------------------------------------------- tables

def _fmt(v, digits: int, signed: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _md_table(header, rows) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def markdown_tables(results, metric: MetricArg = None, digits: int = 1, *, unscored: Mapping | None = None,
                    notes: Mapping | None = None) -> str:
    """Task x language table of primary metrics (with averages), then all metrics per task.
    Notes (how to read a task's scores) and the languages without a score come right below."""
    check_results(results, allow_empty=bool(unscored))
    table = task_table(results, metric) if results else {}
    langs = _lang_order({lg for r in table.values() for lg in r["langs"]})
    rows = [[t + (" *" if t in (notes or {}) else ""), metric_label(r["metric"]), _fmt(r["average"], digits)]
            + [_fmt(r["langs"].get(lg), digits) for lg in langs] for t, r in table.items()]
    lines = ["# Results", "", "Primary metric per task; avg is over the languages present.", ""]
    lines += _md_table(["task", "metric", "avg", *langs], rows) if rows else ["No scores."]
    lines += ["", "## Notes", ""] + [f"- **{t}** *: {n}" for t, n in notes.items()] if notes else []
    lines += ["", "## Not scored (predictions only)", ""] + _md_table(
        ["task", "language", "reason"], [[t, lg, r] for t, by in unscored.items() for lg, r in by.items()]
    ) if unscored else []
    for task, by_lang in results.items():
        names = list(dict.fromkeys(m for ms in by_lang.values() for m in ms))
        lines += ["", f"## {task}", ""]
        lines += _md_table(["language", *names],
                           [[lg] + [_fmt(by_lang[lg].get(m), digits) for m in names]
                            for lg in _lang_order(by_lang)])
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
    langs = _lang_order({lg for r in table.values() for lg in r["langs"]})
    wide = [["task", "metric", "average", *langs]]
    for t, r in table.items():
        cells = [r["langs"].get(lg) for lg in langs]
        wide.append([t, metric_label(r["metric"]), "" if r["average"] is None else repr(r["average"])]
                    + ["" if v is None else repr(v) for v in cells])
    long = [["task", "language", "metric", "value"]]
    long += [[t, lg, m, repr(float(v))] for t, by_lang in results.items()
             for lg in _lang_order(by_lang) for m, v in by_lang[lg].items()]
    paths = {"markdown": os.path.join(out_dir, "results.md"),
             "csv": os.path.join(out_dir, "results.csv"),
             "csv_long": os.path.join(out_dir, "results_long.csv")}
    write_atomic(paths["markdown"], markdown)
    write_atomic(paths["csv"], _csv_text(wide))
    write_atomic(paths["csv_long"], _csv_text(long))
    return paths


def read_long_csv(path) -> dict:
    """Inverse of results_long.csv: {task: {lang: {metric: float}}}."""
    out: dict = {}
    text = epath.Path(path).read_bytes().decode("utf-8")
    for row in csv.DictReader(io.StringIO(text, newline="")):
        out.setdefault(row["task"], {}).setdefault(row["language"], {})[row["metric"]] = float(row["value"])
    return out


# --------------------------------------------------------------------------- plots

def _save_png(path, fig, dpi: int) -> str:
    # No pyplot: an Agg canvas per figure leaves global matplotlib state (and any
    # interactive backend of the caller) alone, and is safe from threads.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return write_atomic(path, buf.getvalue())


def _axes(fig, left: float, right: float, bottom: float, top: float):
    """Axes with fixed margins in inches. Cheaper than constrained layout (which measures every
    text twice), and the image keeps exactly the size asked for."""
    w, h = fig.get_size_inches()
    l, r, b, t = left / w, right / w, bottom / h, top / h
    return fig.add_axes((l, b, max(0.05, 1 - l - r), max(0.05, 1 - b - t)))


def plot_heatmap(path, results, metric: MetricArg = None, *, title: str | None = None,
                 figsize: tuple[float, float] | None = None, dpi: int = 100) -> str:
    """Task x language heatmap of the primary metric; missing cells grey. Returns path.

    The image is exactly figsize * dpi pixels (default: grows with the number of languages).
    """
    import numpy as np
    from matplotlib.figure import Figure
    import matplotlib

    table = task_table(results, metric)
    tasks = list(table)
    langs = _lang_order({lg for r in table.values() for lg in r["langs"]})
    grid = np.array([[table[t]["langs"].get(lg, np.nan) for lg in langs] for t in tasks], float)
    grid[~np.isfinite(grid)] = np.nan
    ylabels = [f"{t}\n{metric_label(table[t]['metric'])}" for t in tasks]
    rotate = len(langs) > 12
    left = 0.2 + 0.065 * max(len(line) for y in ylabels for line in y.split("\n"))
    bottom = 0.25 + (0.09 * max(map(len, langs)) if rotate else 0.2)
    right, top = 1.1, 0.4
    figsize = figsize or (max(5.0, left + right + 0.42 * len(langs)), bottom + top + 0.5 * len(tasks))
    fig = Figure(figsize=figsize)
    ax = _axes(fig, left, right, bottom, top)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
    finite = grid[np.isfinite(grid)]
    # Percent scale when the values are percentages, so runs are comparable by eye.
    lo, hi = (0.0, 100.0) if finite.size and finite.min() >= 0 and finite.max() <= 100 else (
        (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
    ax.set_xticks(range(len(langs)), langs, rotation=90 if rotate else 0)
    ax.set_yticks(range(len(tasks)), ylabels, fontsize=8)
    if len(langs) <= 60:
        for i, j in zip(*np.nonzero(np.isfinite(grid))):
            v = grid[i, j]
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7,
                    color="black" if v > lo + 0.6 * (hi - lo) else "white")
    w, h = fig.get_size_inches()
    cax = fig.add_axes((1 - 0.85 / w, bottom / h, 0.15 / w, max(0.05, 1 - (bottom + top) / h)))
    fig.colorbar(im, cax=cax)
    ax.set_title(title or "Zero-shot results by task and language", fontsize=10)
    return _save_png(path, fig, dpi)


# --------------------------------------------------------------------------- comparisons

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
        common = [lg for lg in _lang_order(la) if lg in lb]
        rows = {lg: {name_a: la[lg], name_b: lb[lg], "delta": la[lg] - lb[lg]} for lg in common}
        avg = None
        if common:
            a = sum(la[lg] for lg in common) / len(common)
            b = sum(lb[lg] for lg in common) / len(common)
            avg = {name_a: a, name_b: b, "delta": a - b}
        out[task] = {"metric": ta[task]["metric"], "languages": rows, "average": avg,
                     "missing": _lang_order(set(la) ^ set(lb))}
    return out


def plot_comparison(path, task: str, comparison: Mapping, names: Sequence[str] = ("X-STILTs", "XLM-R"),
                    *, figsize: tuple[float, float] | None = None, dpi: int = 100) -> str:
    """Bar plot of the per-language delta of one task from compare_runs(), average bar last."""
    from matplotlib.figure import Figure

    entry = comparison[task]
    langs = list(entry["languages"])
    deltas = [entry["languages"][lg]["delta"] for lg in langs]
    if entry["average"] is not None:
        langs, deltas = langs + ["avg"], deltas + [entry["average"]["delta"]]
    rotate = len(langs) > 15
    bottom = 0.25 + (0.09 * max(map(len, langs), default=1) if rotate else 0.2)
    fig = Figure(figsize=figsize or (max(4.0, 1.2 + 0.38 * len(langs)), 3.6))
    ax = _axes(fig, 0.8, 0.15, bottom, 0.35)
    colors = ["tab:green" if d >= 0 else "tab:red" for d in deltas]
    if langs and langs[-1] == "avg":
        colors[-1] = "tab:blue"
    ax.bar(range(len(langs)), deltas, color=colors)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(langs)), langs, rotation=90 if rotate else 0)
    ax.set_ylabel(f"Δ {metric_label(entry['metric'])}")
    ax.set_title(f"{task}: {names[0]} − {names[1]}", fontsize=10)
    return _save_png(path, fig, dpi)


def comparison_markdown(comparison: Mapping, names: Sequence[str], digits: int = 1,
                        skipped: Sequence[str] = ()) -> str:
    a, b = names
    lines = [f"# {a} vs {b}", "", f"Δ = {a} − {b}; averages over the languages both runs have.", ""]
    rows = []
    for task, e in comparison.items():
        avg = e["average"] or {}
        better = sum(r["delta"] > 0 for r in e["languages"].values())
        rows.append([task, metric_label(e["metric"]), _fmt(avg.get(a), digits), _fmt(avg.get(b), digits),
                     _fmt(avg.get("delta"), digits, True), f"{better}/{len(e['languages'])}"])
    lines += _md_table(["task", "metric", a, b, "Δ", "languages improved"], rows)
    if skipped:
        lines += ["", "Not compared (in one run only): " + ", ".join(skipped)]
    for task, e in comparison.items():
        lines += ["", f"## {task} ({metric_label(e['metric'])})", ""]
        body = [[lg, _fmt(r[a], digits), _fmt(r[b], digits), _fmt(r["delta"], digits, True)]
                for lg, r in e["languages"].items()]
        if e["average"]:
            avg = e["average"]
            body.append(["**avg**", _fmt(avg[a], digits), _fmt(avg[b], digits), _fmt(avg["delta"], digits, True)])
        lines += _md_table(["language", a, b, "Δ"], body)
        if e["missing"]:
            lines += ["", "In one run only: " + ", ".join(e["missing"])]
    return "\n".join(lines) + "\n"


def write_comparison(out_dir, results_a, results_b, names: Sequence[str] = ("X-STILTs", "XLM-R"),
                     metric: MetricArg = None, digits: int = 1) -> dict[str, str]:
    """Writes comparison.md, comparison.csv and comparison_<task>.png; returns {kind: path}."""
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
    write_atomic(paths["markdown"], comparison_markdown(comp, names, digits, skipped))
    write_atomic(paths["csv"], _csv_text(rows))
    for task in comp:
        paths[f"plot_{task}"] = plot_comparison(
            os.path.join(out_dir, f"comparison_{re.sub(r'[^A-Za-z0-9_.-]+', '_', task)}.png"), task, comp, names)
    return paths


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


# --------------------------------------------------------------------------- CLI

def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m xtreme_jax.report", description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="?", help="results.json of one run: write tables and a heatmap")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="two results.json files: A - B")
    p.add_argument("--names", nargs=2, default=None, metavar=("NAME_A", "NAME_B"),
                   help="labels of A and B (default: X-STILTs XLM-R)")
    p.add_argument("--metric", default=None, help="metric for every task instead of the defaults")
    p.add_argument("--out", required=True, help="output folder")
    args = p.parse_args(argv)
    if bool(args.results) == bool(args.compare):
        p.error("give either RESULTS.json or --compare A.json B.json")
    if args.compare:
        (ra, _), (rb, _) = read_results(args.compare[0]), read_results(args.compare[1])
        paths = write_comparison(args.out, ra, rb, tuple(args.names or ("X-STILTs", "XLM-R")), args.metric)
    else:
        results, _ = read_results(args.results)
        paths = write_tables(args.out, results, args.metric)
        paths["heatmap"] = plot_heatmap(os.path.join(args.out, "heatmap.png"), results, args.metric)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
