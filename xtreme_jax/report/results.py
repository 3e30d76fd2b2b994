"""results.json: written atomically with its summary and metadata, read back (NaN <-> null)."""
from __future__ import annotations

import datetime
import json
import math
import os
import re
import subprocess
from typing import Mapping

from etils import epath

from xtreme_jax.files import write_atomic
from xtreme_jax.report.metrics import MetricArg, check_results, metric_label, task_table


def git_commit(repo_dir=None) -> str | None:
    """HEAD commit of the repository holding this package (or repo_dir); None if unknown."""
    repo_dir = repo_dir or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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


def _null_to_nan(x):
    # null (a NaN when written) reads back as NaN so that tables show it as missing; anything
    # that is not a dict is left for check_results to name.
    if isinstance(x, dict):
        return {k: _null_to_nan(v) for k, v in x.items()}
    return math.nan if x is None else x


def read_results(path) -> tuple[dict, dict]:
    """(results, metadata) from a results.json, or from a bare {task: {lang: {metric: v}}} file.
    A file that is not JSON, or not results, is a ValueError naming it."""
    path = os.fspath(path)
    try:
        doc = json.loads(epath.Path(path).read_bytes())  # bytes: UTF-8 whatever the locale
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a results.json ({e}); is it truncated? write it again "
                         "(xtreme_jax.report.write_results_json or the evaluate phase)") from None
    if isinstance(doc, dict) and "results" in doc:
        results, meta = doc["results"], doc.get("metadata", {})
        if not results and doc.get("unscored"):
            raise ValueError(f"{path}: no scores: every language was evaluated without gold labels "
                             f"({', '.join(sorted(doc['unscored']))}); see its \"unscored\" entries")
    else:
        results, meta = doc, {}
    results = _null_to_nan(results)
    try:
        check_results(results)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return results, meta
