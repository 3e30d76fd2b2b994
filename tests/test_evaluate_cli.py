"""Evaluating a checkpoint (`python -m xtreme_jax.evaluate`, phases.evaluate_checkpoint): one results
folder per checkpoint, replaced whole; a run directory names its phases; the model and tokenizer
come from the run; default languages follow the benchmark; splits without labels are predicted,
not scored; scores that are not comparable to the benchmark's say so."""
import importlib.util
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from xtreme_jax import config as C
from xtreme_jax import report, sharding
from xtreme_jax.checkpoint import save_model
from xtreme_jax.config import ConfigError
from xtreme_jax.evaluation import TaskResult, output
from xtreme_jax.files import write_json
from xtreme_jax.models.encoder import preset
from xtreme_jax.phases import evaluate_checkpoint
from xtreme_jax.tasks.languages import BENCHMARKS, XTREME, XTREME_R, benchmark_languages
from xtreme_jax.train_step import create_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADS = {"xnli": ("classification", 3)}


def make_config(smoke, xnli=None, tokenizer=True):
    c = C.base_config()
    c.model.tokenizer = str(smoke / "tok") if tokenizer else ""
    c.model.size = "tiny"
    c.data.buckets = (32,)
    c.data.cache_dir = str(smoke / "cache")
    src = C.source("official", str(xnli or smoke / "xnli"))
    c.intermediate = C.train_phase([C.task_entry("xnli", src=src)])
    c.target = C.train_phase([C.task_entry("xnli", src=src)])
    c.evaluate.tasks = [C.eval_task("xnli", src, languages="en,de")]
    c.evaluate.batch_size = 8
    c.evaluate.write_submission = False
    return c


@pytest.fixture(scope="module")
def run(smoke, tmp_path_factory):
    """A finished run (intermediate and target phases, random weights: no training, no compile)."""
    root = tmp_path_factory.mktemp("run")
    write_json(root / "config.json", json.loads(make_config(smoke).to_json_best_effort(sort_keys=True)))
    mesh = sharding.make_mesh((-1, 1, 1))
    _, abstract = create_model(preset("tiny"), HEADS, mesh, abstract_only=True)
    for seed, phase in enumerate(("intermediate", "target")):
        rng = np.random.default_rng(seed)
        params = jax.tree.map(lambda a: jax.device_put(rng.normal(0, 0.3, a.shape).astype(a.dtype), a.sharding),
                              abstract)
        save_model(str(root / phase / "final"), params)
        write_json(root / phase / "results" / "summary.json",
                   {"phase": phase, "steps": 1, "heads": {k: list(v) for k, v in HEADS.items()},
                    "handoff_heads": sorted(HEADS)})
    return root


def files(folder):
    return {p: open(os.path.join(folder, p), "rb").read() for p in sorted(os.listdir(folder))
            if os.path.isfile(os.path.join(folder, p))}


# ------------------------------------------------------------ 1. one results folder per checkpoint

def test_another_checkpoints_results_are_refused_the_same_ones_replaced_whole(smoke, run, tmp_path):
    out = tmp_path / "out"
    results = out / "evaluate" / "results"
    evaluate_checkpoint(make_config(smoke), str(run / "target"), str(out))
    before = files(results)
    assert json.loads(before["provenance.json"])["checkpoint"] == str(run / "target")
    assert json.loads(before["results.json"])["metadata"]["checkpoint"] == str(run / "target")
    with pytest.raises(ConfigError) as e:
        evaluate_checkpoint(make_config(smoke), str(run / "intermediate"), str(out))
    assert str(e.value) == (
        f"{results} holds the results of checkpoint {run / 'target'} (written "
        f"{json.loads(before['provenance.json'])['written_at']}); this evaluation is of {run / 'intermediate'}. "
        f"Use another --workdir for this checkpoint, or remove {results} to replace them")
    assert files(results) == before
    # The same checkpoint (however spelled) is evaluated again in place: a new set, nothing left over.
    (results / "stale.txt").write_text("from an older evaluation")
    evaluate_checkpoint(make_config(smoke), str(run / "target" / "final") + "/", str(out))
    after = files(results)
    assert "stale.txt" not in after and set(after) == set(before) - {"stale.txt"}
    assert json.loads(after["results.json"])["results"] == json.loads(before["results.json"])["results"]
    # Files no evaluation wrote are not mixed with new ones.
    other = tmp_path / "other" / "evaluate" / "results"
    other.mkdir(parents=True)
    (other / "results.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"holds files that no checkpoint evaluation wrote \(no provenance.json\)"):
        evaluate_checkpoint(make_config(smoke), str(run / "target"), str(tmp_path / "other"))


def test_a_kill_while_writing_leaves_the_old_set_whole(tmp_path, monkeypatch):
    """Killed in the heatmap (after results.json, tables and aggregate.json used to be replaced)."""
    out, rec = str(tmp_path / "evaluate" / "results"), output.record("/runs/a/target")
    scores = {"en": {"accuracy": 50.0}, "de": {"accuracy": 40.0}}
    output.write_results(out, rec, {"xnli": fake_result("xnli", scores)}, {}, benchmark="xtreme", write_submission=True)
    before = files(out)
    assert set(before) == {"aggregate.json", "heatmap.png", "provenance.json", "results.csv", "results.json",
                           "results.md", "results_long.csv"}
    monkeypatch.setattr(report, "plot_heatmap", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        output.write_results(out, rec, {"xnli": fake_result("xnli", {"en": {"accuracy": 90.0}})}, {},
                             benchmark="xtreme", write_submission=True)
    assert files(out) == before and sorted(os.listdir(tmp_path / "evaluate")) == ["results"]


def test_an_interrupted_swap_is_undone(tmp_path):
    """Killed between the two renames: the folder is gone and the old set lies aside; the next
    check puts it back. Staging folders of dead processes are removed."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    results = tmp_path / "results"
    aside = tmp_path / f".results.old-{dead.pid}-ab12"
    aside.mkdir()
    write_json(aside / "provenance.json", output.record("/runs/a/target"))
    (tmp_path / f".results.new-{dead.pid}-cd34").mkdir()
    assert output.check_folder(str(results), output.record("/runs/a/target"))["checkpoint"] == "/runs/a/target"
    assert sorted(os.listdir(tmp_path)) == ["results"]
    with pytest.raises(ConfigError, match="holds the results of checkpoint /runs/a/target"):
        output.check_folder(str(results), output.record("/runs/b/target"))


def test_a_run_folder_from_before_provenance_belongs_to_the_phase_it_names(tmp_path):
    results = tmp_path / "run" / "evaluate" / "results"
    report.write_results_json(results / "results.json", {"xnli": {"en": {"accuracy": 50.0}}},
                              {"handoff_phase": "target", "git_commit": "x"})
    target, inter = str(tmp_path / "run" / "target"), str(tmp_path / "run" / "intermediate")
    assert output.check_folder(str(results), output.record(target))["checkpoint"] == target
    with pytest.raises(ConfigError, match=f"holds the results of checkpoint {target} .*this evaluation is of {inter}"):
        output.check_folder(str(results), output.record(inter))


# ------------------------------------------------------------ 2. a run directory, not a phase

def test_a_run_directory_names_its_phases(smoke, run, tmp_path):
    with pytest.raises(ConfigError) as e:
        evaluate_checkpoint(make_config(smoke), str(run), str(tmp_path / "out"))
    assert str(e.value) == (
        f"--checkpoint={run} is a run directory, not one of its phases. It holds the finished phase(s) "
        f"intermediate, target: pick one, e.g. --checkpoint={run}/target (the last one, which the run's "
        "own evaluate phase scores)")
    (tmp_path / "young" / "intermediate" / "checkpoints").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"is a run directory with no finished phase yet \(started: intermediate\)"):
        evaluate_checkpoint(make_config(smoke), str(tmp_path / "young"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------ 3. the CLI: settings from the run, quiet

CLI_CONFIG = '''
from xtreme_jax import config as C
def get_config():
    c = C.base_config()          # no tokenizer, another model size: the run's are used
    c.model.size = "base"
    c.data.buckets = (32,)
    c.data.cache_dir = "{cache}"
    c.evaluate.tasks = [C.eval_task("xnli", C.source("official", "{xnli}"), languages="en,de")]
    c.evaluate.batch_size = 8
    return c
'''


def test_cli_takes_model_and_tokenizer_from_the_run_and_is_quiet(smoke, run, tmp_path):
    cfg = tmp_path / "eval_cfg.py"
    cfg.write_text(CLI_CONFIG.format(cache=smoke / "cache", xnli=smoke / "xnli"))
    out = subprocess.run([sys.executable, "-m", "xtreme_jax.evaluate", f"--config={cfg}",
                          f"--checkpoint={run / 'target'}", f"--workdir={tmp_path / 'out'}"],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    results = tmp_path / "out" / "evaluate" / "results"  # the layout of a run
    assert sorted(os.listdir(results)) == ["aggregate.json", "heatmap.png", "predictions", "provenance.json",
                                           "results.csv", "results.json", "results.md", "results_long.csv"]
    assert sorted(os.listdir(results / "predictions" / "xnli")) == ["test-de.tsv", "test-en.tsv"]
    meta = json.loads((results / "results.json").read_text())["metadata"]
    assert meta["config"]["model"]["tokenizer"] == str(smoke / "tok") and meta["config"]["model"]["size"] == "tiny"
    assert (f"evaluate: model settings from the run ({run / 'config.json'}): model.size='tiny', "
            f"model.tokenizer='{smoke / 'tok'}' (the given config's differ)") in out.stdout
    assert f"evaluate: results of {run / 'target'} in {results}" in out.stdout
    noise = [l for l in (out.stdout + out.stderr).splitlines()
             if any(w in l for w in ("orbax", "checkpointer", "libtpu", "xla_bridge", "event_tracking"))]
    assert noise == []


# ------------------------------------------------------------ 4. languages follow the benchmark

def test_default_languages_follow_the_benchmark():
    extra = {"udpos": {"lt", "pl", "uk", "wo", "ro"}, "panx": {"qu", "pl", "uk", "az", "lt", "pa", "gu", "ro"},
             "tatoeba": {"az", "lt", "pl", "uk", "ro"}, "xquad": {"ro"}}
    for task, more in extra.items():
        x, r = benchmark_languages(task, "xtreme"), benchmark_languages(task, "xtreme-r")
        assert x == XTREME[task] and r == XTREME_R[task]
        assert set(r) - set(x) == more and set(x) <= set(r), task
    assert len(benchmark_languages("tatoeba", "xtreme")) == 36 and len(benchmark_languages("udpos", "xtreme")) == 33
    assert benchmark_languages("xcopa", "xtreme") == XTREME_R["xcopa"]  # a task of XTREME-R only
    assert benchmark_languages("mnli", "xtreme") is None  # not a benchmark task: its own list


def fake_result(task, scores, split="test", unscored=None, predictions=None):
    return TaskResult(task, scores, predictions or {lg: ["O"] for lg in scores},
                      {"split": split, **({"unscored": unscored} if unscored else {})})


@pytest.mark.parametrize("benchmark", ["xtreme", "xtreme-r"])
def test_per_task_average_uses_the_benchmarks_list(tmp_path, benchmark):
    """udpos evaluated on every XTREME-R language: XTREME's average leaves out its five additions."""
    langs = XTREME_R["udpos"]
    scores = {lg: {"f1": 0.0 if lg not in XTREME["udpos"] else 60.0, "precision": 1.0, "recall": 1.0}
              for lg in langs}
    out = output.write_results(str(tmp_path / "r"), output.record("x"), {"udpos": fake_result("udpos", scores)},
                               {}, benchmark=benchmark, write_submission=False)
    agg = json.loads((tmp_path / "r" / "aggregate.json").read_text())
    want = 60.0 if benchmark == "xtreme" else 60.0 * len(XTREME["udpos"]) / len(langs)
    assert agg["udpos"]["avg_f1"] == pytest.approx(want)
    assert sorted(agg["udpos"]["f1"]) == sorted(BENCHMARKS[benchmark]["udpos"])
    assert out["scores"]["udpos"] == scores  # results.json keeps every language evaluated


def test_unknown_benchmark_is_a_config_error(smoke, run, tmp_path):
    c = make_config(smoke)
    c.evaluate.benchmark = "xtreme-s"
    with pytest.raises(ConfigError, match=r"config.evaluate.benchmark='xtreme-s'; choose from xtreme, xtreme-r"):
        evaluate_checkpoint(c, str(run / "target"), str(tmp_path / "out"))


# ------------------------------------------------------------ 5. a split without labels

def test_stilts_scores_pawsx_and_bucc_on_dev():
    spec = importlib.util.spec_from_file_location("stilts", os.path.join(REPO, "configs", "stilts.py"))
    stilts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stilts)
    for target in ("pawsx", "bucc2018"):
        assert stilts.get_config(f"target={target},model=tiny").evaluate.split == "dev"
    assert stilts.get_config("target=xnli,model=tiny").evaluate.split == "test"
    from xtreme_jax.evaluation.sets import eval_splits
    assert eval_splits("bucc2018", "test") == ("dev", "test") and eval_splits("bucc2018", "dev") == ("dev",)
    assert eval_splits("pawsx", "dev") == ("dev",)


def test_a_split_without_labels_is_predicted_and_said_not_scored(smoke, run, tmp_path, capsys):
    """The official download strips test labels (PAWS-X, XNLI, ...): predictions, no failure."""
    data = tmp_path / "xnli"
    data.mkdir()
    for lang in ("en", "de"):  # as XTREME's utils_preprocess writes test files: two columns
        rows = (smoke / "xnli" / f"test-{lang}.tsv").read_text().splitlines()
        (data / f"test-{lang}.tsv").write_text("".join("\t".join(r.split("\t")[:2]) + "\n" for r in rows))
    evaluate_checkpoint(make_config(smoke, xnli=data), str(run / "target"), str(tmp_path / "out"))
    results = tmp_path / "out" / "evaluate" / "results"
    doc = json.loads((results / "results.json").read_text())
    assert doc["results"] == {}
    assert doc["summary"]["xnli"] == {"scored": False, "languages": 0, "unscored_languages": ["de", "en"]}
    assert doc["unscored"]["xnli"]["de"] == {"scored": False, "reason": (
        "xnli/de: the test data has no gold labels (the official XTREME download strips test labels, "
        "e.g. PAWS-X test and the BUCC test gold, for the leaderboard)")}
    # write_submission is off, yet the predictions are written: they are all the run produced.
    assert sorted(os.listdir(results / "predictions" / "xnli")) == ["test-de.tsv", "test-en.tsv"]
    assert len((results / "predictions" / "xnli" / "test-de.tsv").read_text().splitlines()) == 32
    assert "## Not scored (predictions only)" in (results / "results.md").read_text()
    said = [l for l in capsys.readouterr().out.splitlines() if "no score" in l]
    assert said == [f"xnli: no score for en de: its test data has no gold labels; predictions written to "
                    f"{results / 'predictions' / 'xnli'}. The official XTREME download strips test labels "
                    "(the leaderboard scores them); for scores evaluate on labelled data: "
                    "--config.evaluate.split=dev"]
    assert not (results / "heatmap.png").exists()  # nothing to plot
