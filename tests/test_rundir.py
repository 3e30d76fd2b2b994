"""The one-place rules: a run directory's paths and "is this phase finished?" (workdir.RunDir /
PhaseDir), the evaluation languages (evaluation.sets.eval_languages), the retrieval settings
(evaluation.evaluator.retrieval_setting), and process liveness (processes.alive)."""
import json
import os
import subprocess
import sys

import pytest

from xtreme_jax.config import ConfigError
from xtreme_jax.evaluation.evaluator import retrieval_setting
from xtreme_jax.evaluation.sets import eval_languages
from xtreme_jax.processes import alive
from xtreme_jax.tasks import get_task
from xtreme_jax.tasks.languages import benchmark_languages
from xtreme_jax.workdir import PhaseDir, RunDir, WorkdirError


def test_phase_paths_and_the_finished_rule(tmp_path):
    run = RunDir(str(tmp_path))
    p = run.phase("target")
    assert (p.checkpoints, p.final, p.best_step_dir(3)) == (
        f"{tmp_path}/target/checkpoints", f"{tmp_path}/target/final", f"{tmp_path}/target/best/3")
    assert run.config_file == f"{tmp_path}/config.json"
    assert RunDir("gs://b/run").phase("mlm").final == "gs://b/run/mlm/final"  # remote paths stay intact
    assert not p.finished() and p.summary() is None
    os.makedirs(p.results)
    (tmp_path / "target" / "results" / "summary.json").write_text(json.dumps({"heads": {}}))
    assert p.finished() and not p.intact() and p.summary() == {"heads": {}}  # no final/ yet
    os.makedirs(p.final)
    assert p.intact()
    (tmp_path / "target" / "results" / "summary.json").write_text("{trunc")
    with pytest.raises(WorkdirError, match=r"summary.json is damaged .*delete it and restart"):
        p.summary()
    ev = run.phase("evaluate")  # the evaluate phase is finished once its results.json exists
    os.makedirs(ev.results)
    assert not ev.finished()
    (tmp_path / "evaluate" / "results" / "results.json").write_text("{}")
    assert ev.finished() and ev.intact()


def test_study_and_handoff_use_the_same_rule(tmp_path):
    from xtreme_jax.handoff import read_summary
    from xtreme_jax.study.executors import phase_done
    os.makedirs(tmp_path / "target" / "results")
    (tmp_path / "target" / "results" / "summary.json").write_text(json.dumps({"heads": {}}))
    assert phase_done(str(tmp_path), "target") and not phase_done(str(tmp_path), "evaluate")
    with pytest.raises(ConfigError, match="is not a finished phase of a run"):  # final/ missing
        read_summary(str(tmp_path / "target"))
    os.makedirs(tmp_path / "target" / "final")
    assert read_summary(str(tmp_path / "target")) == {"heads": {}}


def test_evaluation_languages_rule():
    task = get_task("xnli")
    assert eval_languages(task, None, ("de,fr", "en")) == ["de", "fr"]  # the entry's first
    assert eval_languages(task, None, ("", "en,")) == ["en"]            # then config.evaluate's
    assert eval_languages(task, None, ("", ""), "xtreme") == benchmark_languages("xnli", "xtreme")
    assert eval_languages(task, None, ()) == list(task.language_list(None))
    assert eval_languages(task, None, [["sw"]]) == ["sw"]


def test_retrieval_settings_resolve_in_one_place():
    # 12 layers: Tatoeba's official mean pooling at hidden_states 8, BUCC's cls at 8
    assert retrieval_setting("tatoeba", 12)["retrieval_layer"] == 8
    got = retrieval_setting("bucc2018", 12, (None, ""), (-1, ""))  # the entry unset, evaluate's layer
    assert (got["retrieval_layer"], got["retrieval_pooling"], got["retrieval_official"]) == (12, "cls", [8, "cls"])
    got = retrieval_setting("tatoeba", 12, (3, "cls"), (5, "mean"))  # the entry wins
    assert (got["retrieval_layer"], got["retrieval_pooling"]) == (3, "cls")
    with pytest.raises(ValueError, match="retrieval_pooling='max'; choose mean or cls"):
        retrieval_setting("tatoeba", 12, (None, "max"))


def test_alive():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert alive(os.getpid()) and alive(str(os.getpid()))
    assert not alive(p.pid) and not alive(None) and not alive("x")


def test_a_truncated_results_json_is_not_a_finished_evaluation_for_status_or_run(tmp_path):
    """A results.json cut short by a kill or a full disk: the evaluate phase is not finished,
    so the study executor's status and run evaluate again instead of calling the run done."""
    from xtreme_jax.study.executors import phase_done
    run = RunDir(str(tmp_path))
    ev = run.phase("evaluate")
    os.makedirs(ev.results)
    results = tmp_path / "evaluate" / "results" / "results.json"
    results.write_text('{"tasks": {"xnli": {"en": {"accuracy": 71.')
    assert not ev.finished() and not ev.intact() and not phase_done(str(tmp_path), "evaluate")
    results.write_bytes(b"\xff\xfe")
    assert not ev.finished()
    results.write_text('{"tasks": {"xnli": {"en": {"accuracy": 71.5}}}}')
    assert ev.finished() and phase_done(str(tmp_path), "evaluate")
