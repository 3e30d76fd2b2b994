"""Pipeline: phases, hand-off, resume after preemption, config errors before compute."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from xtreme_jax import config as C
from xtreme_jax.config import ConfigError
from smoke import preempt_at_first_checkpoint, write_config

def final_params(workdir, phase="target"):
    import jax
    import orbax.checkpoint as ocp
    summary = json.loads((workdir / phase / "results" / "summary.json").read_text())
    path = str(workdir / phase / "final")
    with ocp.StandardCheckpointer() as c:
        # Saved by any number of processes; read back onto this process's first device.
        local = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=local),
                              c.metadata(path).item_metadata)
        restored = c.restore(path, target)
    return summary, jax.tree.leaves(restored)


def main_cmd(cfg, workdir, *extra):
    return [sys.executable, "-m", "xtreme_jax.main", f"--config={cfg}", f"--workdir={workdir}", *extra]


@pytest.mark.slow
def test_two_phases_then_preempted_run_resumes_to_the_same_params(smoke, tmp_path):
    cfg = write_config(smoke)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    straight = tmp_path / "straight"
    out = subprocess.run(main_cmd(cfg, straight), env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    s_summary, s_params = final_params(straight)
    assert s_summary["steps"] == 4
    inter = json.loads((straight / "intermediate" / "results" / "summary.json").read_text())
    assert inter["best_step"] in (3, 6) and 0 <= inter["best_dev_score"] <= 1
    log_lines = (straight / "intermediate" / "metrics" / "train.jsonl").read_text().splitlines()
    assert any("mfu" in json.loads(l) for l in log_lines)
    assert json.loads((straight / "config.json").read_text())["intermediate"]["num_steps"] == 6

    # Same run, SIGTERM as soon as the intermediate phase has a checkpoint: it saves, says where it
    # stopped, exits 0; the restart resumes and ends with bitwise-identical parameters.
    resumed = tmp_path / "resumed"
    code, text = preempt_at_first_checkpoint(main_cmd(cfg, resumed), env, resumed / "intermediate" / "checkpoints")
    assert code == 0, text[-3000:]
    assert "preempted at step" in text
    stopped = int(text.split("preempted at step")[1].split()[0])
    assert 2 <= stopped < 6
    out = subprocess.run(main_cmd(cfg, resumed), env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"[intermediate] resumed from step {stopped}" in out.stdout
    r_summary, r_params = final_params(resumed)
    assert len(r_params) == len(s_params)
    for a, b in zip(r_params, s_params):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    # A different config in the same workdir is refused before any compute.
    out = subprocess.run(main_cmd(cfg, resumed, "--config.target.lr=0.5"), env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 2
    assert "holds a run with a different config (differs in: target)" in out.stderr
    assert "--config.new_run=True" in out.stderr


@pytest.mark.slow
def test_init_from_another_runs_phase_equals_running_both_phases(smoke, tmp_path):
    """A target run branched off run A's intermediate phase (config.init_from) ends with the same
    parameters as run A's own target phase (same seed, same mesh)."""
    from xtreme_jax.phases import run_pipeline

    def config(phases, init_from=""):
        c = C.base_config()
        c.model.tokenizer = str(smoke / "tok")
        c.data.buckets = (32,)
        c.data.cache_dir = str(smoke / "cache")
        c.phases, c.init_from = phases, init_from
        entries = [C.task_entry("xnli", src=C.source("official", str(smoke / "xnli")))]
        c.intermediate = C.train_phase(entries, num_steps=4, batch_size=8, lr=1e-3, eval_every=2,
                                       eval_examples=16, save_every=4, log_every=2)
        c.target = C.train_phase(entries, num_steps=2, batch_size=8, lr=1e-3, eval_every=0,
                                 save_every=2, log_every=2)
        return c

    run_pipeline(config("intermediate,target"), str(tmp_path / "a"))
    with pytest.raises(ConfigError, match="no_such_run/intermediate is not a finished phase"):
        run_pipeline(config("target", str(tmp_path / "no_such_run" / "intermediate")), str(tmp_path / "c"))
    assert not (tmp_path / "c" / "target").exists()  # refused before any compute
    run_pipeline(config("target", str(tmp_path / "a" / "intermediate")), str(tmp_path / "b"))
    _, a = final_params(tmp_path / "a")
    _, b = final_params(tmp_path / "b")
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_misspelled_override_suggests_the_key(smoke, tmp_path):
    out = subprocess.run(main_cmd(write_config(smoke), tmp_path, "--config.target.lrr=1"),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert 'Did you mean "lr" instead of "lrr"?' in out.stderr


def base(smoke):
    c = C.base_config()
    c.phases = "intermediate,evaluate"
    c.intermediate = C.train_phase([C.task_entry("xnli", src=C.source("official", str(smoke / "xnli")))],
                                   batch_size=8)
    c.evaluate.tasks = [C.eval_task("xnli")]
    return c


@pytest.mark.parametrize("change,message", [
    (lambda c: setattr(c.intermediate, "lr", -1e-5), "config.intermediate.lr=-1e-05 must be positive"),
    (lambda c: setattr(c.intermediate, "lr", 0.0), "config.intermediate.lr=0.0 must be positive"),
    (lambda c: setattr(c.intermediate.tasks[0], "name", "xnlii"), "config.intermediate.tasks[0].name='xnlii': field 'task': unknown task 'xnlii'"),
    (lambda c: setattr(c.intermediate.tasks[0], "lang", "xx"), "config.intermediate.tasks[0].lang='xx': task 'xnli' has no such language"),
    (lambda c: setattr(c, "mesh", (3, 1, 1)), r"config.mesh=(3, 1, 1) does not divide the 8 devices"),
    (lambda c: setattr(c.intermediate, "batch_size", 12), "config.intermediate.batch_size=12 is not divisible by the data-parallel size 8"),
    (lambda c: setattr(c.evaluate.tasks[0], "name", "tatoba"), "config.evaluate.tasks[0].name='tatoba': field 'task': unknown task 'tatoba'"),
    (lambda c: setattr(c, "phases", "intermediate,finetune"), "config.phases: unknown phase 'finetune'"),
    (lambda c: setattr(c.intermediate, "sampler", "random"), "config.intermediate.sampler='random'"),
])
def test_bad_config_is_rejected_before_compute(smoke, change, message):
    c = base(smoke)
    change(c)
    with pytest.raises(ConfigError) as e:
        C.validate(c, num_devices=8)
    assert message in str(e.value)


def test_sampling_probabilities():
    from xtreme_jax.train_loop import sampling_probs, task_for_step
    sizes = [100, 10000]
    np.testing.assert_allclose(sampling_probs(sizes, "uniform"), [0.5, 0.5])
    np.testing.assert_allclose(sampling_probs(sizes, "proportional"), [100 / 10100, 10000 / 10100])
    np.testing.assert_allclose(sampling_probs(sizes, "capped_proportional", cap=1000), [100 / 1100, 1000 / 1100])
    np.testing.assert_allclose(sampling_probs(sizes, "temperature", temperature=2.0), [10 / 110, 100 / 110])
    p = sampling_probs(sizes, "uniform", weights=[3, 1])
    np.testing.assert_allclose(p, [0.75, 0.25])
    draws = [task_for_step(0, s, p) for s in range(2000)]
    assert abs(np.mean(np.array(draws) == 0) - 0.75) < 0.04
    assert draws == [task_for_step(0, s, p) for s in range(2000)]  # stateless: resumes identically


DEMO_SHORT = [f"--config.{p}.{k}={v}" for p in ("mlm", "intermediate", "target")
              for k, v in (("num_steps", 4), ("save_every", 2), ("log_every", 2))] + [
    "--config.intermediate.eval_every=2", "--config.target.eval_every=2",
    "--config.data.buckets=(64,)",  # one shape per phase: compiles dominate this test
    "--config.evaluate.tasks[0].languages=en,xa,xe"]  # a related and an unrelated language suffice here
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_demo(workdir, processes: int, devices: int):
    """configs/demo.py (the README's main job), shortened, in `processes` jax.distributed processes
    with `devices` CPU devices each."""
    from test_multiprocess import free_port
    port, procs = free_port(), []
    for i in range(processes):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
        extra = []
        if processes > 1:
            env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=str(processes),
                       JAX_PROCESS_ID=str(i))
            extra = ["--distributed=on"]
        procs.append(subprocess.Popen(main_cmd("configs/demo.py:arm=with", workdir, *DEMO_SHORT, *extra), env=env,
                                      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for p in procs:
        text, _ = p.communicate(timeout=900)
        assert p.returncode == 0, text[-3000:]
        outputs.append(text)
    return outputs


@pytest.mark.slow
def test_demo_runs_every_phase_and_two_processes_match_one(tmp_path):
    """The README's main job through mlm -> intermediate -> target -> evaluate, once in one process
    with 2 devices and once as 2 jax.distributed processes x 1 device: same parameters after every
    phase and the same per-language results."""
    one, two = tmp_path / "one", tmp_path / "two"
    out = run_demo(one, processes=1, devices=2)[0]
    run_demo(two, processes=2, devices=1)

    r1 = json.loads((one / "evaluate" / "results" / "results.json").read_text())["results"]
    r2 = json.loads((two / "evaluate" / "results" / "results.json").read_text())["results"]
    assert set(r1["demo_nli"]) == {"en", "xa", "xe"}
    assert r1 == r2
    for phase in ("mlm", "intermediate", "target"):
        s1, p1 = final_params(one, phase)
        s2, p2 = final_params(two, phase)
        assert s1["steps"] == s2["steps"] == 4
        assert len(p1) == len(p2)
        for a, b in zip(p1, p2):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    assert (one / "evaluate" / "results" / "heatmap.png").stat().st_size > 1000
    assert "demo_nli: zero-shot per language" in out


def test_evaluate_cli_missing_checkpoint_is_a_clear_error(smoke, tmp_path):
    out = subprocess.run([sys.executable, "-m", "xtreme_jax.evaluate", f"--config={write_config(smoke)}",
                          f"--checkpoint={tmp_path / 'no_such_run' / 'target'}", f"--workdir={tmp_path / 'out'}"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "no_such_run/target: not a checkpoint directory (expected config.json" in out.stderr


def test_a_phase_with_the_row_wise_embedding_update_trains_only_the_rows_it_reads(smoke, tmp_path):
    """embedding_update='rows' through the real loop: the checkpointed state carries the lazy
    moments, and only the rows of tokens in the training data have moved them."""
    import glob

    import jax
    import orbax.checkpoint as ocp
    from xtreme_jax.phases import run_pipeline
    c = C.base_config()
    c.model.tokenizer = str(smoke / "tok")
    c.data.buckets = (32,)
    c.data.cache_dir = str(smoke / "cache")
    c.phases = "target"
    c.target = C.train_phase([C.task_entry("xnli", src=C.source("official", str(smoke / "xnli")))], num_steps=4,
                             batch_size=8, lr=1e-3, eval_every=0, save_every=4, log_every=2, embedding_update="rows")
    run_pipeline(c, str(tmp_path / "run"))
    summary = json.loads((tmp_path / "run" / "target" / "results" / "summary.json").read_text())
    assert summary["steps"] == 4
    (step_dir,) = glob.glob(str(tmp_path / "run" / "target" / "checkpoints" / "**" / "4" / "state"), recursive=True)
    with ocp.StandardCheckpointer() as ck:
        state = ck.restore(step_dir)
    mu = np.asarray(state["word_mu"]["value"] if isinstance(state["word_mu"], dict) else state["word_mu"])
    moved = np.abs(mu).sum(1) > 0
    vocab = mu.shape[0]
    # 4 batches of 8 short sentences over a 12-word vocabulary: a few dozen rows, not the table
    assert 5 < moved.sum() < vocab // 2, (moved.sum(), vocab)
    opt_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(state["opt"])]
    assert any("position" in p for p in opt_paths) and not any("'word'" in p for p in opt_paths)  # dense skips it
