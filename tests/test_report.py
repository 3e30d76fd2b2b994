"""xtreme_jax.report: exact tables, CSV round trips, PNGs, deltas, atomic writes, CLI."""
import csv
import json
import math
import os
import stat
import subprocess

import ml_collections
import numpy as np
import pytest
from PIL import Image

from xtreme_jax import report

RESULTS = {
    "xnli": {"en": {"accuracy": 84.1}, "de": {"accuracy": 78.25}, "sw": {"accuracy": 65.0}},
    "panx": {"de": {"f1": 79.5, "precision": 80.0, "recall": 79.0},
             "en": {"f1": 83.0, "precision": 82.0, "recall": 84.0}},
    "xquad": {"en": {"exact_match": 70.0, "f1": 80.0}, "de": {"exact_match": 60.0, "f1": 75.0}},
}
BASELINE = {
    "xnli": {"en": {"accuracy": 83.0}, "de": {"accuracy": 76.0}, "fr": {"accuracy": 77.0}},
    "panx": {"en": {"f1": 82.0}, "de": {"f1": 80.0}},
    "tatoeba": {"de": {"accuracy": 90.0}},
}


def no_temp_files(directory):
    return [n for n in os.listdir(directory) if n.endswith(".tmp")] == []


# --------------------------------------------------------------------------- metrics

def test_primary_metric_defaults_override_and_fallback():
    table = report.task_table(RESULTS)
    assert {t: r["metric"] for t, r in table.items()} == {
        "xnli": "accuracy", "panx": "f1", "xquad": ("exact_match", "f1")}
    assert table["xquad"]["langs"] == {"en": 75.0, "de": 67.5}  # (EM + F1) / 2
    assert table["xnli"]["average"] == (84.1 + 78.25 + 65.0) / 3
    assert list(table["panx"]["langs"]) == ["en", "de"]  # English first
    # Caller's choice: one name for every task, or per task.
    assert report.task_table(RESULTS, "precision")["panx"]["langs"] == {"en": 82.0, "de": 80.0}
    assert report.task_table(RESULTS, {"panx": "recall"})["panx"]["average"] == 81.5
    assert report.task_table(RESULTS, {"panx": "recall"})["xnli"]["metric"] == "accuracy"
    # Unknown task, or a default the data lacks: the first metric.
    odd = {"mytask": {"en": {"loss": 1.5, "acc": 90.0}}, "mlqa": {"en": {"em": 50.0, "f1": 60.0}}}
    assert {t: r["metric"] for t, r in report.task_table(odd).items()} == {"mytask": "loss", "mlqa": "em"}
    assert report.primary_value("xquad", {"exact_match": 1.0, "f1": 2.0}) == (("exact_match", "f1"), 1.5)
    assert report.metric_label(("exact_match", "f1")) == "(exact_match+f1)/2"


@pytest.mark.parametrize("bad,message", [
    ({}, "non-empty dict"),
    ({"xnli": {}}, "results['xnli'] must be a non-empty dict"),
    ({"xnli": {"en": 84.1}}, "results['xnli']['en'] must be"),
    ({"xnli": {"en": {"accuracy": "84"}}}, "results['xnli']['en']['accuracy'] = '84' is not a number"),
    ({"xnli": {"en": {"accuracy": True}}}, "is not a number"),
])
def test_bad_results_are_named(bad, message, tmp_path):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        report.write_tables(tmp_path, bad)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- tables

def test_tables_exact(tmp_path):
    paths = report.write_tables(tmp_path, RESULTS)
    assert set(paths) == {"markdown", "csv", "csv_long"}
    assert open(paths["markdown"]).read() == """\
# Results

Primary metric per task; avg is over the languages present.

| task | metric | avg | en | de | sw |
|---|---:|---:|---:|---:|---:|
| xnli | accuracy | 75.8 | 84.1 | 78.2 | 65.0 |
| panx | f1 | 81.2 | 83.0 | 79.5 | – |
| xquad | (exact_match+f1)/2 | 71.2 | 75.0 | 67.5 | – |

## xnli

| language | accuracy |
|---|---:|
| en | 84.1 |
| de | 78.2 |
| sw | 65.0 |

## panx

| language | f1 | precision | recall |
|---|---:|---:|---:|
| en | 83.0 | 82.0 | 84.0 |
| de | 79.5 | 80.0 | 79.0 |

## xquad

| language | exact_match | f1 |
|---|---:|---:|
| en | 70.0 | 80.0 |
| de | 60.0 | 75.0 |
"""
    assert open(paths["csv"]).read() == (
        "task,metric,average,en,de,sw\n"
        f"xnli,accuracy,{(84.1 + 78.25 + 65.0) / 3!r},84.1,78.25,65.0\n"
        "panx,f1,81.25,83.0,79.5,\n"
        "xquad,(exact_match+f1)/2,71.25,75.0,67.5,\n")


def test_csv_parses_back_to_the_input(tmp_path):
    awkward = {"xnli": {"en": {"accuracy": 0.1 + 0.2}, "de": {"accuracy": 1 / 3}},
               "panx": {"ja": {"f1": 12.345678901234567, "precision": 1e-12, "recall": 99}}}
    paths = report.write_tables(tmp_path, awkward)
    assert report.read_long_csv(paths["csv_long"]) == awkward  # bit-exact floats
    with open(paths["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["task"], float(r["de"] or "nan")) for r in rows][0] == ("xnli", 1 / 3)
    assert float(rows[1]["ja"]) == 12.345678901234567 and rows[1]["en"] == ""


def test_results_json(tmp_path):
    cfg = ml_collections.ConfigDict({"model": {"name": "xlm-roberta-large"}, "lr": 1e-5, "mesh": (-1, 1, 1)})
    res = {**RESULTS, "tydiqa": {"sw": {"exact_match": float("nan"), "f1": np.float32(50.0)}}}
    path = report.write_results_json(tmp_path / "run" / "results.json", res,
                                     {"config": cfg, "checkpoint_step": np.int64(1200), "seeds": [0, 1]})
    text = open(path).read()
    assert "NaN" not in text  # strict JSON
    doc = json.loads(text)
    assert doc["results"]["xnli"] == RESULTS["xnli"]
    assert doc["results"]["tydiqa"]["sw"] == {"exact_match": None, "f1": 50.0}
    meta = doc["metadata"]
    assert meta["config"] == {"model": {"name": "xlm-roberta-large"}, "lr": 1e-5, "mesh": [-1, 1, 1]}
    assert meta["checkpoint_step"] == 1200 and meta["seeds"] == [0, 1]
    assert meta["git_commit"] == report.git_commit() and "written_at" in meta
    assert doc["summary"]["xquad"] == {"metric": "(exact_match+f1)/2", "average": 71.25, "languages": 2,
                                       "scored": True}
    assert doc["unscored"] == {} and doc["notes"] == {}
    # Read back: null becomes NaN again; a caller's git_commit wins.
    results, _ = report.read_results(path)
    assert results["xnli"] == RESULTS["xnli"] and math.isnan(results["tydiqa"]["sw"]["exact_match"])
    path = report.write_results_json(tmp_path / "r2.json", RESULTS, {"git_commit": "abc"})
    assert report.read_results(path) == (RESULTS, {"git_commit": "abc", "written_at": json.load(open(path))["metadata"]["written_at"]})


def test_git_commit(tmp_path):
    assert report.git_commit(tmp_path) is None  # not a repository
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=os.path.dirname(report.__file__),
                          capture_output=True, text=True)
    expected = head.stdout.strip() if head.returncode == 0 else None
    assert report.git_commit() == expected


# --------------------------------------------------------------------------- plots

def test_heatmap_png(tmp_path):
    path = report.plot_heatmap(tmp_path / "heat.png", RESULTS, figsize=(6, 3), dpi=100)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (600, 300)
    import matplotlib.image
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (300, 600) and pixels.std() > 0.05  # not a blank image
    # The default size grows with the number of languages.
    many = {"panx": {f"l{i:02d}": {"f1": float(i)} for i in range(20)}}
    with Image.open(report.plot_heatmap(tmp_path / "wide.png", many)) as im:
        wide = im.size
    with Image.open(report.plot_heatmap(tmp_path / "small.png", RESULTS)) as im:
        small = im.size
    assert wide[0] > 1.5 * small[0]
    assert no_temp_files(tmp_path)


def test_heatmap_does_not_touch_pyplot_state(tmp_path):
    import matplotlib
    backend = matplotlib.get_backend()
    report.plot_heatmap(tmp_path / "h.png", RESULTS)
    assert matplotlib.get_backend() == backend


# --------------------------------------------------------------------------- comparisons

def test_compare_runs_exact():
    comp = report.compare_runs(RESULTS, BASELINE, names=("X-STILTs", "XLM-R"))
    assert list(comp) == ["xnli", "panx"]  # tasks in both runs only
    assert comp["xnli"] == {
        "metric": "accuracy",
        "languages": {"en": {"X-STILTs": 84.1, "XLM-R": 83.0, "delta": 84.1 - 83.0},
                      "de": {"X-STILTs": 78.25, "XLM-R": 76.0, "delta": 2.25}},
        # Averages over common languages only (not sw, not fr).
        "average": {"X-STILTs": (84.1 + 78.25) / 2, "XLM-R": 79.5, "delta": (84.1 + 78.25) / 2 - 79.5},
        "missing": ["fr", "sw"]}
    assert comp["panx"]["languages"]["de"]["delta"] == -0.5
    assert comp["panx"]["missing"] == []


def test_compare_runs_errors():
    with pytest.raises(ValueError, match="two different labels"):
        report.compare_runs(RESULTS, BASELINE, names=("a", "a"))
    other = {"xquad": {"en": {"f1": 80.0}}}  # no exact_match: falls back to f1
    with pytest.raises(ValueError, match="different primary metrics"):
        report.compare_runs(RESULTS, other)
    assert report.compare_runs(RESULTS, other, metric="f1")["xquad"]["average"]["delta"] == 0.0


def test_write_comparison(tmp_path):
    paths = report.write_comparison(tmp_path, RESULTS, BASELINE, names=("STILTs", "base"))
    assert set(paths) == {"markdown", "csv", "plot_xnli", "plot_panx"}
    with open(paths["csv"], newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["task", "language", "metric", "STILTs", "base", "delta"]
    assert rows[1:] == [
        ["xnli", "en", "accuracy", "84.1", "83.0", repr(84.1 - 83.0)],
        ["xnli", "de", "accuracy", "78.25", "76.0", "2.25"],
        ["xnli", "avg", "accuracy", repr((84.1 + 78.25) / 2), "79.5", repr((84.1 + 78.25) / 2 - 79.5)],
        ["panx", "en", "f1", "83.0", "82.0", "1.0"],
        ["panx", "de", "f1", "79.5", "80.0", "-0.5"],
        ["panx", "avg", "f1", "81.25", "81.0", "0.25"]]
    md = open(paths["markdown"]).read()
    assert "| xnli | accuracy | 81.2 | 79.5 | +1.7 | 2/2 |" in md
    assert "| panx | f1 | 81.2 | 81.0 | +0.2 | 1/2 |" in md
    assert "| de | 79.5 | 80.0 | -0.5 |" in md
    assert "Not compared (in one run only): tatoeba, xquad" in md
    assert "In one run only: fr, sw" in md
    for task in ("xnli", "panx"):
        assert paths[f"plot_{task}"] == str(tmp_path / f"comparison_{task}.png")
        with Image.open(paths[f"plot_{task}"]) as im:
            assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
    with Image.open(report.plot_comparison(tmp_path / "c.png", "xnli", report.compare_runs(RESULTS, BASELINE),
                                           figsize=(4, 2.5), dpi=50)) as im:
        assert im.size == (200, 125)
    with pytest.raises(ValueError, match="share no task"):
        report.write_comparison(tmp_path / "none", {"a": {"en": {"x": 1.0}}}, {"b": {"en": {"x": 1.0}}})


# --------------------------------------------------------------------------- atomic writes

def test_failed_replace_keeps_old_file(tmp_path, monkeypatch):
    path = report.write_results_json(tmp_path / "results.json", RESULTS, {"git_commit": "old"})
    before = open(path).read()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(report.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        report.write_results_json(path, BASELINE, {"git_commit": "new"})
    assert open(path).read() == before and no_temp_files(tmp_path)


def test_crash_mid_write_keeps_old_file(tmp_path, monkeypatch):
    """The bytes go to a temp file; killing the write half-way never touches the real file."""
    report.write_tables(tmp_path, RESULTS)
    before = {n: open(tmp_path / n).read() for n in os.listdir(tmp_path)}
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, f):
            self.f = f
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.f.close()
        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise KeyboardInterrupt  # even BaseException cleans up
        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(report.os, "fdopen", lambda *a, **k: HalfWriter(real_fdopen(*a, **k)))
    with pytest.raises(KeyboardInterrupt):
        report.write_tables(tmp_path, BASELINE)
    with pytest.raises(KeyboardInterrupt):
        report.plot_heatmap(tmp_path / "heatmap.png", BASELINE)
    assert {n: open(tmp_path / n).read() for n in os.listdir(tmp_path)} == before


def test_render_error_writes_nothing(tmp_path):
    path = report.write_results_json(tmp_path / "results.json", RESULTS, {"git_commit": "x"})
    before = open(path).read()
    with pytest.raises(TypeError, match="cannot write object"):
        report.write_results_json(path, RESULTS, {"config": object()})
    assert open(path).read() == before and no_temp_files(tmp_path)


def test_file_modes(tmp_path):
    path = report.write_results_json(tmp_path / "r.json", RESULTS, {"git_commit": "x"})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644  # not mkstemp's 0600
    os.chmod(path, 0o640)
    report.write_results_json(path, RESULTS, {"git_commit": "y"})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


# --------------------------------------------------------------------------- CLI

def test_cli(tmp_path, capsys):
    a = report.write_results_json(tmp_path / "a" / "results.json", RESULTS, {"git_commit": "a"})
    b = tmp_path / "b.json"
    b.write_text(json.dumps(BASELINE))  # a bare results dict works too
    assert report.main(["--compare", a, str(b), "--out", str(tmp_path / "cmp"), "--names", "ours", "theirs"]) == 0
    assert sorted(os.listdir(tmp_path / "cmp")) == [
        "comparison.csv", "comparison.md", "comparison_panx.png", "comparison_xnli.png"]
    assert "# ours vs theirs" in open(tmp_path / "cmp" / "comparison.md").read()
    assert report.main([a, "--out", str(tmp_path / "one")]) == 0
    assert sorted(os.listdir(tmp_path / "one")) == ["heatmap.png", "results.csv", "results.md", "results_long.csv"]
    assert "heatmap: " in capsys.readouterr().out
    with pytest.raises(SystemExit):
        report.main(["--out", str(tmp_path)])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"results": {"xnli": {"en": {"accuracy": "high"}}}}))
    with pytest.raises(ValueError, match="bad.json: results"):
        report.main([str(bad), "--out", str(tmp_path / "x")])


def test_write_report(tmp_path):
    paths = report.write_report(tmp_path, RESULTS, {"checkpoint_step": 5})
    assert sorted(os.listdir(tmp_path)) == ["heatmap.png", "results.csv", "results.json", "results.md",
                                            "results_long.csv"]
    assert set(paths) == {"json", "markdown", "csv", "csv_long", "heatmap"}


def test_unscored_languages_and_notes(tmp_path):
    """Languages predicted without gold labels are recorded as such, also when no task has a score."""
    unscored = {"pawsx": {"de": "pawsx/de: no labels", "en": "pawsx/en: no labels"}, "xnli": {"sw": "no labels"}}
    notes = {"xnli": "read with care"}
    paths = report.write_report(tmp_path, {"xnli": RESULTS["xnli"]}, {"git_commit": "x"}, unscored=unscored, notes=notes)
    doc = json.load(open(paths["json"]))
    assert doc["summary"]["pawsx"] == {"scored": False, "languages": 0, "unscored_languages": ["de", "en"]}
    assert doc["summary"]["xnli"]["unscored_languages"] == ["sw"] and doc["summary"]["xnli"]["note"] == "read with care"
    assert doc["unscored"]["pawsx"]["de"] == {"scored": False, "reason": "pawsx/de: no labels"}
    md = open(paths["markdown"]).read()
    assert "| xnli * | accuracy |" in md and "- **xnli** *: read with care" in md
    assert "| pawsx | en | pawsx/en: no labels |" in md
    # Nothing scored at all: the report is still written (no heatmap), and says so.
    only = tmp_path / "only"
    paths = report.write_report(only, {}, {"git_commit": "x"}, unscored={"pawsx": unscored["pawsx"]})
    assert sorted(os.listdir(only)) == ["results.csv", "results.json", "results.md", "results_long.csv"]
    assert "No scores." in open(paths["markdown"]).read()
    with pytest.raises(ValueError, match="no scores: every language was evaluated without gold labels"):
        report.read_results(paths["json"])
    with pytest.raises(ValueError, match="non-empty dict"):  # no results and nothing unscored: a bug
        report.write_report(tmp_path / "none", {}, {})
