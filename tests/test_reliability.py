"""Reliability, in process (fast): damaged checkpoints, failed background saves, numerical faults,
bad configs and arguments at the CLI, results never overwritten (issue 7; docs/reliability.md).

The kill / preemption / multi-process tests that need real processes live in
test_reliability_processes.py.
"""
import json
import logging
import os
import shutil
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xtreme_jax import checkpoint as ckpt_lib
from xtreme_jax import config as C
from xtreme_jax.config import ConfigError
from smoke import write_config

SEED = 0


def make_config(root, seed=SEED, **phase):
    """One intermediate phase of 6 steps: checkpoints at 2, 4, 6 (all kept), validation at 3, 6."""
    c = C.base_config()
    c.seed = seed
    c.model.tokenizer = str(root / "tok")
    c.data.buckets = (32,)
    c.data.cache_dir = str(root / "cache")  # features tokenized once for every run of this module
    c.phases = "intermediate"
    kw = dict(num_steps=6, batch_size=8, lr=1e-3, eval_every=3, eval_examples=16, save_every=2,
              log_every=2, keep=3)
    kw.update(phase)
    c.intermediate = C.train_phase([C.task_entry("xnli", src=C.source("official", str(root / "xnli")))], **kw)
    return c


def run(config, workdir):
    from xtreme_jax.phases import run_pipeline
    return run_pipeline(config, str(workdir))


def final_leaves(workdir, phase="intermediate"):
    import orbax.checkpoint as ocp
    with ocp.StandardCheckpointer() as c:
        return [np.asarray(x) for x in jax.tree.leaves(c.restore(os.path.join(workdir, phase, "final")))]


def committed_steps(workdir, phase="intermediate"):
    d = os.path.join(workdir, phase, "checkpoints")
    return sorted(int(n) for n in os.listdir(d) if n.isdigit())


def tmp_dirs(workdir):
    return [os.path.join(r, d) for r, ds, _ in os.walk(workdir) for d in ds if ckpt_lib.TMP_MARK in d]


@pytest.fixture(scope="module")
def straight(smoke, tmp_path_factory):
    """The uninterrupted run every recovery below must reproduce bit for bit."""
    workdir = tmp_path_factory.mktemp("straight")
    summary = run(make_config(smoke), workdir)["intermediate"]
    assert summary["steps"] == 6 and committed_steps(workdir) == [2, 4, 6]
    return workdir, final_leaves(workdir)


def assert_same_params(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def unfinish(src, dst):
    """A copy of a finished run as if it had been killed after its last checkpoint."""
    shutil.copytree(src, dst)
    shutil.rmtree(dst / "intermediate" / "results")
    shutil.rmtree(dst / "intermediate" / "final")
    return dst


# ---------------------------------------------------------------- 3. damaged checkpoints

def _missing_file(step_dir):
    files = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(step_dir, "state")) for f in fs
             if os.sep + "d" + os.sep in os.path.join(r, f)]
    os.remove(max(files, key=os.path.getsize))  # the biggest array data file


def _corrupt_file(step_dir):
    files = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(step_dir, "state")) for f in fs
             if os.sep + "d" + os.sep in os.path.join(r, f)]
    for f in files:  # one flipped byte per data file: caught by the checksums, never read silently
        b = bytearray(open(f, "rb").read())
        b[len(b) // 2] ^= 0xFF
        open(f, "wb").write(bytes(b))


def _corrupt_meta(step_dir):
    with open(os.path.join(step_dir, "meta", "metadata"), "w") as f:
        f.write("{truncated")


@pytest.mark.parametrize("damage", [_missing_file, _corrupt_file], ids=["missing-file", "corrupt-file"])
def test_damaged_latest_checkpoint_falls_back_to_the_newest_intact_step(smoke, straight, tmp_path, damage,
                                                                          caplog, capsys):
    s_dir, s_params = straight
    workdir = unfinish(s_dir, tmp_path / "run")
    ckpts = workdir / "intermediate" / "checkpoints"
    damage(str(ckpts / "6"))
    # Leftovers of saves that were killed mid-write (names as orbax writes them).
    (ckpts / "8.orbax-checkpoint-tmp").mkdir()
    (workdir / "intermediate" / "final.orbax-checkpoint-tmp").mkdir()
    (workdir / "intermediate" / "best" / "9.orbax-checkpoint-tmp").mkdir(parents=True, exist_ok=True)

    with caplog.at_level(logging.WARNING, logger="xtreme_jax.checkpoint"):
        run(make_config(smoke), workdir)
    warnings = [r.getMessage() for r in caplog.records if r.name == "xtreme_jax.checkpoint"]
    assert any(w.startswith(f"checkpoint step 6 in {ckpts} is damaged") for w in warnings), warnings
    assert any("resuming from step 4, the newest intact checkpoint" in w for w in warnings), warnings
    assert "[intermediate] resumed from step 4" in capsys.readouterr().out
    # The damaged step was moved aside (kept for inspection), then re-trained and re-saved.
    assert [p.name.split("-")[0] for p in (workdir / "intermediate" / "checkpoints.damaged").iterdir()] == ["6"]
    assert committed_steps(workdir) == [2, 4, 6]
    assert tmp_dirs(workdir) == []
    assert_same_params(final_leaves(workdir), s_params)


def test_every_checkpoint_damaged_starts_over_and_says_so(smoke, straight, tmp_path, caplog, capsys):
    s_dir, s_params = straight
    workdir = unfinish(s_dir, tmp_path / "run")
    for s in (2, 4, 6):
        _corrupt_meta(str(workdir / "intermediate" / "checkpoints" / str(s)))
    with caplog.at_level(logging.WARNING, logger="xtreme_jax.checkpoint"):
        run(make_config(smoke), workdir)
    assert any("no intact checkpoint in" in r.getMessage() and "starting from step 0" in r.getMessage()
               for r in caplog.records)
    assert "resumed from step" not in capsys.readouterr().out
    assert_same_params(final_leaves(workdir), s_params)


def fail_commit_of(monkeypatch, step):
    """Makes the background commit (tmp dir -> final rename) of checkpoint `step` fail, as a full
    disk or a revoked bucket permission would: orbax's own async path, not a mock of ours."""
    from orbax.checkpoint._src.path import atomicity
    orig = atomicity.AtomicRenameTemporaryPath.finalize

    async def finalize(self):
        if self._final_path.parent.name == "checkpoints" and self._final_path.name == str(step):
            raise OSError(28, "No space left on device (injected)")
        return await orig(self)
    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", finalize)


def test_failed_background_save_fails_the_run_then_resumes(smoke, straight, tmp_path, monkeypatch, capsys):
    s_dir, s_params = straight
    workdir = tmp_path / "run"
    with monkeypatch.context() as m:
        fail_commit_of(m, 4)
        with pytest.raises(ckpt_lib.CheckpointError) as e:
            run(make_config(smoke), workdir)
    msg = str(e.value)
    assert msg.startswith(f"saving checkpoint step 4 in {workdir / 'intermediate' / 'checkpoints'} failed "
                          "(OSError: [Errno 28] No space left on device (injected))")
    assert "the latest committed checkpoint is step 2" in msg
    assert committed_steps(workdir) == [2]
    assert not (workdir / "intermediate" / "results" / "summary.json").exists()  # never reported done

    run(make_config(smoke), workdir)  # the disk is fine again: resume from the last good step
    assert "[intermediate] resumed from step 2" in capsys.readouterr().out
    assert tmp_dirs(workdir) == []
    assert_same_params(final_leaves(workdir), s_params)


# ---------------------------------------------------------------- 4. numerical faults

@jax.custom_vjp
def _scale_grad(x, s):
    return x


_scale_grad.defvjp(lambda x, s: (x, s), lambda s, g: (g * s, jnp.zeros_like(s)))


POISONED_STEP = 5


def poison(monkeypatch):
    """Fault injection at the model's loss, for one training step only.

    The train step passes `fold_in(key(seed), step - 1)` as the rng of (1-based) step `step`; the
    patched loss recognises that key inside the compiled step: with config.seed=0 the loss of step
    5 is NaN (loss and gradients non-finite), with config.seed=1 only its gradients are infinite.
    One compiled program serves both. Everything else (the step's finite check and skipped update,
    the loop's stop/skip policy, checkpoints) is the production code path.
    """
    from xtreme_jax.models.heads import TaskModel
    orig = TaskModel.loss

    def loss(self, task, batch, rng=None):
        _, (total, count) = orig(self, task, batch, rng)
        if rng is not None:
            def at(seed):
                target = jax.random.fold_in(jax.random.key(seed), POISONED_STEP - 1)
                return jnp.all(jax.random.key_data(rng) == jax.random.key_data(target))
            total = total * jnp.where(at(0), jnp.nan, 1.0)
            total = _scale_grad(total, jnp.where(at(1), jnp.inf, 1.0))
        return total / jnp.maximum(count, 1), (total, count)
    monkeypatch.setattr(TaskModel, "loss", loss)


def test_nan_loss_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(smoke, tmp_path, monkeypatch):
    workdir = tmp_path / "run"
    poison(monkeypatch)
    with pytest.raises(FloatingPointError) as e:
        run(make_config(smoke, seed=0), workdir)
    msg = str(e.value)
    print(msg)  # quoted in docs/reliability.md
    assert msg.startswith("[intermediate] non-finite loss or gradients at step 5 (loss=")
    assert "the update was not applied" in msg and "nonfinite='skip'" in msg
    assert msg.endswith(f"Last good checkpoint: step 4 in {workdir / 'intermediate' / 'checkpoints'}")
    assert committed_steps(workdir) == [2, 4]  # nothing after the fault was saved
    assert not (workdir / "intermediate" / "results" / "summary.json").exists()


def test_inf_gradients_stop_the_run_too(smoke, tmp_path, monkeypatch):
    workdir = tmp_path / "run"
    poison(monkeypatch)  # seed 1: the loss stays finite; only the gradients are not
    with pytest.raises(FloatingPointError, match=r"^\[intermediate\] non-finite loss or gradients at step 5 "
                                                r"\(loss=[0-9.]+, grad_norm=(nan|inf)\)"):
        run(make_config(smoke, seed=1), workdir)
    assert committed_steps(workdir) == [2, 4]


def test_nonfinite_step_is_skipped_and_counted_when_configured(smoke, tmp_path, monkeypatch, caplog):
    workdir = tmp_path / "run"
    poison(monkeypatch)  # infinite gradients at step 5, as above
    with caplog.at_level(logging.WARNING, logger="xtreme_jax.train_loop"):
        summary = run(make_config(smoke, seed=1, nonfinite="skip"), workdir)["intermediate"]
    assert any(r.getMessage().startswith("non-finite loss or gradients at step 5 ") and "update skipped" in r.getMessage()
               for r in caplog.records)
    assert summary["steps"] == 6 and summary["skipped_nonfinite_steps"] == 1  # step 6 trained normally
    assert all(np.isfinite(p).all() for p in final_leaves(workdir))


# ---------------------------------------------------------------- 5. bad configs and arguments (CLI)

@pytest.fixture
def cli(smoke, tmp_path, monkeypatch, capsys):
    """Runs `python -m xtreme_jax.main ARGS` in this process (8 CPU devices); returns (exit code,
    stderr). Any training would fail the test: these errors must come before compute."""
    from absl import flags

    from xtreme_jax import main, phases
    cfg = write_config(smoke, tmp_path / "cfg.py", phases="intermediate,evaluate")

    def no_compute(*a, **k):
        raise AssertionError("training started before the error was found")
    monkeypatch.setattr(phases, "train_phase", no_compute)
    prng = jax.config.jax_default_prng_impl  # main switches it; keep other tests unaffected

    def call(*args):
        argv = ["xtreme_jax.main", f"--config={cfg}", f"--workdir={tmp_path / 'run'}", *args]
        monkeypatch.setattr(sys, "argv", argv)  # config_flags reads overrides from sys.argv
        for name in [n for n in flags.FLAGS if n.startswith("config.")]:
            delattr(flags.FLAGS, name)  # override flags are defined per parse: drop the last call's
        flags.FLAGS.unparse_flags()
        capsys.readouterr()
        try:
            main._parse_flags(argv)
            main.main(argv)
            code = 0
        except SystemExit as e:
            code = e.code
        finally:
            jax.config.update("jax_default_prng_impl", prng)
        return code, capsys.readouterr().err
    return call


# (CLI arguments, the start of what the user reads). Copied into docs/reliability.md.
BAD_INPUTS = [
    (["--config.intermediate.lr=-1e-5"], "error: config.intermediate.lr=-1e-05 must be positive and finite, e.g. --config.intermediate.lr=1e-5"),
    (["--config.intermediate.lr=nan"], "error: config.intermediate.lr=nan must be positive and finite"),
    (["--config.intermediate.lr=inf"], "error: config.intermediate.lr=inf must be positive and finite"),
    (["--config.intermediate.warmup=nan"], "error: config.intermediate.warmup=nan must be a non-negative fraction"),
    (["--config.intermediate.layer_decay=-1.0"], "error: config.intermediate.layer_decay=-1.0 must be 0 (off) or in (0, 1]"),
    (["--config.intermediate.b1=1.5"], "error: config.intermediate.b1=1.5 must be in [0, 1) (Adam's first-moment decay), e.g. --config.intermediate.b1=0.9"),
    (["--config.intermediate.b2=-0.1"], "error: config.intermediate.b2=-0.1 must be in [0, 1)"),
    (["--config.intermediate.eps=0"], "error: config.intermediate.eps=0.0 must be positive and finite"),
    (["--config.intermediate.tasks[0].weight=inf"], "error: config.intermediate.tasks[0].weight=inf must be positive and finite"),
    (["--config.model.dropout=1.5"], "error: config.model.dropout=1.5 must lie in [0, 1)"),
    (["--config.seed=-1"], "error: config.seed=-1 must be a whole number in [0, 2^31)"),
    (["--config.phases=evaluate,intermediate"], "error: config.phases='evaluate,intermediate': list each phase once, in the order mlm,intermediate,pretarget,target,evaluate, e.g. --config.phases=intermediate,evaluate"),
    (["--config.phases=intermediate,intermediate"], "error: config.phases='intermediate,intermediate': list each phase once"),
    (["--config.phases=evaluate"], "error: config.phases='evaluate' trains nothing, so it would score a randomly initialised encoder and heads"),
    # a repeated tuple override replaces the earlier one (it was appended: (3, 1, 1, 4, 1, 1))
    (["--config.mesh=(3,1,1)", "--config.mesh=(4,1,1)"], "error: config.mesh=(4, 1, 1) uses 4 devices but 8 are present"),
    (["--config.intermediate.lr=0"], "error: config.intermediate.lr=0.0 must be positive"),
    (["--config.intermediate.tasks[0].name=xnlii"], "error: config.intermediate.tasks[0].name='xnlii': field 'task': unknown task 'xnlii'"),
    (["--config.intermediate.tasks[0].lang=xx"], "error: config.intermediate.tasks[0].lang='xx': task 'xnli' has no such language; choose from ["),
    (["--config.evaluate.tasks[0].name=tatoba"], "error: config.evaluate.tasks[0].name='tatoba': field 'task': unknown task 'tatoba'"),
    (["--config.mesh=(3,1,1)"], "error: config.mesh=(3, 1, 1) does not divide the 8 devices; choose sizes whose product is 8"),
    (["--config.mesh=(4,4,1)"], "error: config.mesh=(4, 4, 1) does not divide the 8 devices"),
    (["--config.intermediate.batch_size=12"], "error: config.intermediate.batch_size=12 is not divisible by the data-parallel size 8 (mesh (8, 1, 1))"),
    (["--config.evaluate.batch_size=4"], "error: config.evaluate.batch_size=4 is not divisible by the data-parallel size 8"),
    (["--config.model.pretrained=some-org/some-model"], "error: config.model.pretrained='some-org/some-model': could not fetch 'some-org/some-model' from the HF hub"),
    (["--config.model.tokenizer=/no/such/tokenizer"], "error: config.model.tokenizer='/no/such/tokenizer': /no/such/tokenizer: not a checkpoint directory"),
    (["--config.phases=intermediate,finetune"], "error: config.phases: unknown phase 'finetune'"),
    (["--config.intermediate.nonfinite=ignore"], "error: config.intermediate.nonfinite='ignore'; choose 'stop' or 'skip'"),
    (["--config.intermediate.num_steps=0"], "error: config.intermediate.num_steps=0 must be positive"),
    (["--config.intermediate.lrr=1"], "error: unknown config key among --config.intermediate.lrr=1: 'lrr' Did you mean \"lr\" instead of \"lrr\"?"),
    (["--config.intermediate.tasks.0.name=xnli"], "error: Could not parse 'intermediate.tasks.0.name'"),
    (["--distributed=maybe"], "error: flag --distributed=maybe: value should be one of <auto|on|off>"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=[a[0] for a, _ in BAD_INPUTS])
def test_bad_input_is_one_clear_line_and_exit_2_before_compute(cli, args, message):
    code, err = cli(*args)
    assert code == 2, err
    lines = [l for l in err.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(message), err


def test_a_later_empty_tuple_override_takes_effect():
    from xtreme_jax.config import last_override_wins
    argv = ["m", "--config=c.py", "--config.data.buckets=(16,)", "--workdir=w", "--config.data.buckets=()",
            "--config.evaluate.buckets=16", "--config.evaluate.buckets=32"]
    assert last_override_wins(argv) == ["m", "--config=c.py", "--workdir=w", "--config.data.buckets=()",
                                        "--config.evaluate.buckets=16", "--config.evaluate.buckets=32"]


def test_a_workdir_that_is_a_file_is_refused(cli, tmp_path):
    (tmp_path / "afile").write_text("x")
    code, err = cli(f"--workdir={tmp_path / 'afile'}")
    assert code == 2 and err.strip().splitlines()[-1] == (
        f"error: --workdir={tmp_path / 'afile'} is a file, not a directory; give a new or existing run directory")


@pytest.mark.parametrize("spec,message", [
    ("configs/no_such.py", "error: --config=configs/no_such.py: no such config file 'configs/no_such.py' "
                           "(relative paths are from the current directory"),
    ("configs/demo.py:quik", "error: --config=configs/demo.py:quik: configs/demo.py: unknown arg 'quik'; known: "),
    ("configs", "error: --config=configs: 'configs' is not a file"),
])
def test_a_bad_config_file_argument_is_one_line(spec, message, monkeypatch, capsys):
    from xtreme_jax import main
    argv = ["xtreme_jax.main", f"--config={spec}", "--workdir=/tmp/unused"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with pytest.raises(SystemExit) as e:
        main._parse_flags(argv)
    main.flags.FLAGS.unparse_flags()
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith(message), err


def test_cli_runs_when_nothing_is_wrong(cli):
    """The fixture itself is sound: without a bad input the run reaches training."""
    with pytest.raises(AssertionError, match="training started"):
        cli()


def test_evaluate_with_a_missing_checkpoint_is_a_config_error(smoke, tmp_path):
    from xtreme_jax.phases import evaluate_checkpoint
    c = make_config(smoke)
    c.phases = "evaluate"
    c.evaluate.tasks = [C.eval_task("xnli", C.source("official", str(smoke / "xnli")))]
    c.evaluate.batch_size = 8
    missing = str(tmp_path / "no-such-run" / "target")
    with pytest.raises(ConfigError) as e:
        evaluate_checkpoint(c, missing, str(tmp_path / "eval"))
    assert missing in str(e.value) and "not a checkpoint directory" in str(e.value)
    assert not (tmp_path / "eval" / "results").exists()


# ---------------------------------------------------------------- 6. results never overwritten

def test_results_are_never_overwritten_silently(smoke, tmp_path):
    from xtreme_jax.phases import check_workdir
    workdir = tmp_path / "run"
    check_workdir(make_config(smoke), str(workdir))
    (workdir / "intermediate" / "results").mkdir(parents=True)
    (workdir / "intermediate" / "results" / "summary.json").write_text("{}")
    check_workdir(make_config(smoke), str(workdir))  # same config: resume, nothing removed
    with pytest.raises(ConfigError) as e:
        check_workdir(make_config(smoke, lr=0.5), str(workdir))
    assert str(e.value) == (f"{workdir} holds a run with a different config (differs in: intermediate); "
                            "results there would be overwritten. Use another --workdir, or pass "
                            "--config.new_run=True to start a new run in this directory")
    assert (workdir / "intermediate" / "results" / "summary.json").exists()
    new = make_config(smoke, lr=0.5)
    new.new_run = True
    check_workdir(new, str(workdir))  # told to: the old phases go, the new config is recorded
    assert not (workdir / "intermediate").exists()
    assert json.loads((workdir / "config.json").read_text())["intermediate"]["lr"] == 0.5
