"""xtreme_jax.report as a package: the primary-metric rule (task registry, then a logged first
metric), and `python -m xtreme_jax.report` on a bad input file (one `error:` line, exit 2)."""
import json
import logging
import os
import subprocess
import sys

import pytest

from xtreme_jax import report
from xtreme_jax.report import metrics
from xtreme_jax.tasks import REGISTRY

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QA = ("exact_match", "f1")


def test_primary_metric_of_every_benchmark_task_comes_from_the_registry():
    # DESIGN §3: the metric each XTREME / XTREME-R task is scored by
    expected = {"xnli": "accuracy", "pawsx": "accuracy", "xcopa": "accuracy", "tatoeba": "accuracy",
                "udpos": "f1", "panx": "f1", "bucc2018": "f1", "xquad": QA, "mlqa": QA, "tydiqa": QA,
                "mewslix": "map@20", "lareqa": "map@20"}
    assert {t: metrics.registry_spec(t) for t in expected} == expected
    # every registered task has one, so none falls back (a new scorer name must be added)
    assert all(metrics.registry_spec(t) is not None for t in REGISTRY)
    # a task the old table did not know gets its registry metric too: SQuAD is QA
    assert report.task_table({"squad": {"en": {"exact_match": 70.0, "f1": 80.0}}})["squad"]["metric"] == QA
    assert metrics.registry_spec("no_such_task") is None


def test_registered_metric_without_result_keys_is_an_error(monkeypatch):
    monkeypatch.delitem(metrics.RESULT_KEYS, "map@20")
    with pytest.raises(ValueError, match="^task 'lareqa': metric 'map@20' has no result keys; add it to "
                                         r"xtreme_jax.report.metrics.RESULT_KEYS$"):
        report.task_table({"lareqa": {"ar": {"map@20": 50.0}}})


def test_fallback_to_the_first_metric_is_logged_once_per_task(caplog, monkeypatch):
    monkeypatch.setattr(metrics, "_warned", set())
    odd = {"mytask_x": {"en": {"loss": 1.5, "acc": 90.0}}, "mlqa": {"en": {"em": 50.0, "f1": 60.0}}}
    with caplog.at_level(logging.WARNING, logger="xtreme_jax.report.metrics"):
        first = report.task_table(odd)
        report.task_table(odd)
    assert {t: r["metric"] for t, r in first.items()} == {"mytask_x": "loss", "mlqa": "em"}
    assert [r.getMessage() for r in caplog.records] == [
        "report: task 'mytask_x' is not in the task registry; its primary metric is its first one, 'loss' "
        "(pass metric= to choose)",
        "report: task 'mlqa' has no (exact_match+f1)/2 in its results; its primary metric is its first one, "
        "'em' (pass metric= to choose)"]
    # the caller's choice is not a fallback: nothing logged
    caplog.clear()
    assert report.task_table(odd, {"mytask_x": "acc", "mlqa": "f1"})["mytask_x"]["average"] == 90.0
    assert caplog.records == []


def _cli(*args):
    p = subprocess.run([sys.executable, "-m", "xtreme_jax.report", *map(str, args)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def test_cli_bad_input_is_one_error_line_naming_the_file(tmp_path):
    good = report.write_results_json(tmp_path / "results.json", {"xnli": {"en": {"accuracy": 80.0}}},
                                      {"git_commit": "x"})
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(open(good, "rb").read()[:40])
    shape = tmp_path / "shape.json"
    shape.write_text(json.dumps({"results": {"xnli": ["en", 80.0]}}))
    cases = {truncated: f"error: {truncated}: not a results.json (",
             shape: f"error: {shape}: results['xnli'] must be a non-empty dict",
             tmp_path / "missing.json": "error: "}
    for path, start in cases.items():
        code, out, err = _cli(path, "--out", tmp_path / "out")
        assert code == 2 and out == "", (path, err)
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(start) and str(path) in lines[0], err
    code, _, err = _cli("--compare", good, truncated, "--out", tmp_path / "cmp")
    assert code == 2 and err.startswith(f"error: {truncated}: not a results.json") and len(err.splitlines()) == 1
    assert not os.path.exists(tmp_path / "out") and not os.path.exists(tmp_path / "cmp")
    code, out, err = _cli(good, "--out", tmp_path / "ok")
    assert code == 0 and err == "" and "heatmap: " in out
