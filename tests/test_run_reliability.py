"""Run-side faults of issue 13 (docs/reliability.md, section 8): no dev data, edited data-iterator
state, a second run on the workdir, unwritable / full workdirs, a changed evaluate section, missing
evaluation files, damaged files of a finished run, bad list-index overrides, console output, the
tiny model's vocabulary and the tokenizer CLI.

Each test's docstring says what happened before the fix (observed on commit 22012cc).
"""
import contextlib
import io
import json
import re
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from xtreme_jax import config as C
from xtreme_jax.checkpoint import CheckpointError
from xtreme_jax.config import ConfigError
from xtreme_jax.data.errors import DataError
from xtreme_jax.workdir import WorkdirError


def make_config(root, phases="intermediate,evaluate", data=None, **phase):
    """4 steps: checkpoints at 2 and 4, validation at 2 and 4; evaluation of xnli en, de."""
    c = C.base_config()
    c.model.tokenizer = str(root / "tok")
    c.data.buckets = (32,)
    c.data.cache_dir = str(root / "cache")
    c.phases = phases
    src = C.source("official", str(data or root / "xnli"))
    kw = dict(num_steps=4, batch_size=8, lr=1e-3, eval_every=2, eval_examples=16, save_every=2,
              log_every=2, keep=3, keep_heads=True)
    kw.update(phase)
    c.intermediate = C.train_phase([C.task_entry("xnli", src=src)], **kw)
    c.evaluate.tasks = [C.eval_task("xnli", src, languages="en,de")]
    c.evaluate.batch_size = 8
    c.evaluate.write_submission = False
    return c


def run(config, workdir):
    from xtreme_jax.phases import run_pipeline
    return run_pipeline(config, str(workdir))


def leaves(path):
    import jax
    import orbax.checkpoint as ocp
    with ocp.StandardCheckpointer() as c:
        return [np.asarray(x) for x in jax.tree.leaves(c.restore(str(path)))]


def assert_same(a, b):
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def copy_data(smoke, tmp_path):
    """A copy of the smoke xnli files, to break one of them."""
    shutil.copytree(smoke / "xnli", tmp_path / "xnli")
    return tmp_path / "xnli"


@pytest.fixture(scope="module")
def finished(smoke, tmp_path_factory):
    """One finished run (intermediate + evaluate); its console output."""
    workdir = tmp_path_factory.mktemp("finished") / "run"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        summaries = run(make_config(smoke), workdir)
    return workdir, out.getvalue(), summaries


def copy_run(finished, tmp_path, evaluation=False):
    """A copy of the finished run; without its evaluation (which names the original's checkpoint
    path: the evaluate phase refuses to mix another checkpoint's results in)."""
    dst = tmp_path / "run"
    shutil.copytree(finished[0], dst, ignore=None if evaluation else shutil.ignore_patterns("evaluate"))
    return dst


def forbid_training(monkeypatch):
    from xtreme_jax import train_step

    def no(*a, **k):
        raise AssertionError("a training phase was built")
    monkeypatch.setattr(train_step, "create_state", no)


# ---------------------------------------------------------------- 1. no dev data

def test_no_dev_data_trains_to_the_end_and_hands_on_the_last_step(smoke, tmp_path, caplog):
    """Before: dev_score was NaN, the first evaluation was stored as best and never beaten; with
    patience=1 the run stopped at step 2 of 4 ("early stop at step 2 (best nan at step 1)"),
    exit 0, and final/ was the step-1 model."""
    data = copy_data(smoke, tmp_path)
    (data / "dev-en.tsv").unlink()
    workdir = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="xtreme_jax.train_loop"):
        s = run(make_config(smoke, "intermediate", data=data, eval_every=1, patience=1), workdir)["intermediate"]
    assert s["steps"] == 4 and s["stop_reason"] == "num_steps"
    assert s["best_dev_score"] is None and s["validation"].startswith("none: xnli: ")
    said = [r.getMessage() for r in caplog.records if "no dev data" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("[intermediate] no dev data (xnli: ")
    assert "training all 4 steps and handing on the model of the last step" in said[0]
    assert str(data / "dev-en.tsv") in said[0]
    assert not (workdir / "intermediate" / "best").exists()
    last = leaves(workdir / "intermediate" / "checkpoints" / "4" / "state")
    final = leaves(workdir / "intermediate" / "final")
    # The train state's model params are the first leaves (then the optimizer's).
    import orbax.checkpoint as ocp
    with ocp.StandardCheckpointer() as c:
        model = c.restore(str(workdir / "intermediate" / "checkpoints" / "4" / "state"))["model"]
    import jax
    assert_same([np.asarray(x) for x in jax.tree.leaves(model)], final)
    assert len(last) > len(final)


def test_a_dev_file_that_cannot_be_read_is_an_error_naming_it(smoke, tmp_path):
    """Before: the DataError (not UTF-8) was caught as "no dev data"; the run trained without
    validation and exited 0."""
    data = copy_data(smoke, tmp_path)
    lines = (data / "dev-en.tsv").read_bytes().splitlines(keepends=True)
    (data / "dev-en.tsv").write_bytes(b"".join(lines[:4]) + b"caf\xe9\tb\tneutral\n" + b"".join(lines[4:]))
    with pytest.raises(DataError) as e:
        run(make_config(smoke, "intermediate", data=data), tmp_path / "run")
    print(e.value)
    assert str(e.value).startswith(f"{data / 'dev-en.tsv'}:5: not valid UTF-8 (byte 0xe9")
    assert not (tmp_path / "run" / "intermediate" / "checkpoints").exists()  # before any compute


# ---------------------------------------------------------------- 2. data iterator state checksum

def test_edited_data_iterator_state_is_refused_naming_the_step_and_the_recovery(finished, tmp_path):
    """Before: grain restored any valid state; an edited position resumed silently and the final
    parameters differed from the uninterrupted run."""
    workdir = copy_run(finished, tmp_path)
    for d in ("final", "results"):
        shutil.rmtree(workdir / "intermediate" / d)  # as if killed after the last checkpoint
    ckpts = workdir / "intermediate" / "checkpoints"
    state_file = ckpts / "4" / "data_0" / "process_0-of-1.json"
    state = json.loads(state_file.read_text())
    state["next_index"] -= 1  # another valid state
    state_file.write_text(json.dumps(state))
    smoke_root = pathlib_parent(finished)
    with pytest.raises(CheckpointError) as e:
        run(make_config(smoke_root), workdir)
    msg = str(e.value)
    print(msg)
    assert msg.startswith(f"checkpoint step 4 in {ckpts}: the data iterator state {ckpts / '4' / 'data_0'} "
                          "does not match the checksum saved with it")
    assert f"Move {ckpts / '4'} out of {ckpts} to resume from step 2" in msg
    # The recovery it names works, and ends where the uninterrupted run ended.
    shutil.move(str(ckpts / "4"), str(tmp_path / "step4-edited"))
    run(make_config(smoke_root), workdir)
    assert_same(leaves(workdir / "intermediate" / "final"), leaves(finished[0] / "intermediate" / "final"))


def pathlib_parent(finished):
    """The smoke data root of the finished run (read back from its config)."""
    import pathlib
    return pathlib.Path(json.loads((finished[0] / "config.json").read_text())["model"]["tokenizer"]).parent


# ---------------------------------------------------------------- 3. workdir lock

HOLDER = """
import sys, time
from xtreme_jax.workdir import prepare
lock = prepare(sys.argv[1])
print("held", flush=True)
time.sleep(600)
"""


def test_a_second_run_on_the_workdir_is_refused_with_the_holders_pid_and_host(smoke, tmp_path, caplog):
    """Before: no lock; of two concurrent runs one hung ~300 s at its first save, then blamed disk
    space."""
    workdir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(workdir)], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WorkdirError) as e:
            run(make_config(smoke, "intermediate"), workdir)
        msg = str(e.value)
        print(msg)
        assert msg.startswith(f"{workdir} is in use by another run (pid {holder.pid} on host "
                              f"{socket.gethostname()}, since ")
        assert msg.endswith("wait for it to end or stop it, or pass another --workdir")
        assert not (workdir / "intermediate").exists()  # refused before anything else
        from xtreme_jax.workdir import prepare
        assert prepare(str(workdir), process_index=1) is None  # the other processes of a run share it
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The holder died without releasing: its lock is taken over (the kernel dropped the flock).
    from xtreme_jax.workdir import prepare
    with caplog.at_level(logging.INFO, logger="xtreme_jax.workdir"):
        lock = prepare(str(workdir))
    assert any(f"from pid {holder.pid} on host" in r.getMessage() and "taking over" in r.getMessage()
               for r in caplog.records)
    lock.release()


def test_without_flock_a_dead_holder_on_this_host_is_stale_and_another_hosts_is_not(tmp_path, monkeypatch):
    import errno
    import fcntl

    from xtreme_jax.workdir import LOCK_NAME, prepare

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(fcntl, "flock", no_flock)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    prepare(str(tmp_path)).release()  # stale: taken over
    (tmp_path / LOCK_NAME).write_text(json.dumps({"host": "other-host", "pid": 1, "since": "x"}))
    with pytest.raises(WorkdirError, match=r"in use by another run \(pid 1 on host other-host, since x; .*"
                                           r"\(on another host: if that run is gone, delete the lock file\)"):
        prepare(str(tmp_path))


# ---------------------------------------------------------------- 4. unwritable or full workdir

@contextlib.contextmanager
def read_only_dir(path):
    """A directory this process cannot write to: a read-only tmpfs as root, else chmod."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
                      capture_output=True).returncode:
        pytest.skip("root without mount: cannot make a read-only directory")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def test_workdir_that_is_a_file_or_read_only_is_one_error_before_compute(smoke, tmp_path):
    """Before: FileExistsError / OSError(Read-only file system) tracebacks, exit 1."""
    (tmp_path / "a_file").write_text("x")
    cases = [(tmp_path / "a_file", "is a file, not a directory; pass a directory"),
             (tmp_path / "a_file" / "run", "cannot be created: a part of that path is a file")]
    for workdir, message in cases:
        with pytest.raises(WorkdirError) as e:
            run(make_config(smoke, "intermediate"), workdir)
        assert str(e.value).startswith(f"--workdir={workdir} {message}"), e.value
    with read_only_dir(tmp_path / "ro") as ro:
        with pytest.raises(WorkdirError) as e:
            run(make_config(smoke, "intermediate"), ro)
        print(e.value)
        assert str(e.value).startswith(f"--workdir={ro} is not writable (")


def test_a_failed_save_is_not_masked_by_the_metrics_log(smoke, tmp_path, monkeypatch, caplog):
    """A full disk fails the checkpoint commit and every later write. Before: the TensorBoard
    writer's close, in the loop's `finally`, raised its own OSError and replaced the checkpoint
    error (1,584 lines, 160 tracebacks in the issue's run)."""
    from tensorboardX import record_writer
    from test_reliability import fail_commit_of
    fail_commit_of(monkeypatch, 4)
    disk_full = {"on": False}
    orig_flush = record_writer.RecordWriter.flush

    def flush(self):
        if disk_full["on"]:
            raise OSError(28, "No space left on device")
        return orig_flush(self)
    monkeypatch.setattr(record_writer.RecordWriter, "flush", flush)
    from xtreme_jax import checkpoint
    orig_wait = checkpoint.Checkpointer.wait

    def wait(self):  # from the failed commit on, the disk stays full
        try:
            return orig_wait(self)
        except CheckpointError:
            disk_full["on"] = True
            raise
    monkeypatch.setattr(checkpoint.Checkpointer, "wait", wait)
    workdir = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="xtreme_jax.metrics"):
        with pytest.raises(CheckpointError, match=r"^saving checkpoint step 4 in .* failed \(OSError: "
                                                  r"\[Errno 28\] No space left on device"):
            run(make_config(smoke, "intermediate"), workdir)
    assert any("could not close the metrics log" in r.getMessage() for r in caplog.records)


def test_a_save_that_cannot_fit_stops_before_writing(smoke, tmp_path, monkeypatch):
    """Before: orbax started the save and its threads failed one by one (a traceback each), then
    the error above. Now the free space is checked first."""
    from xtreme_jax import checkpoint
    real = shutil.disk_usage
    calls = {"n": 0}

    def usage(path):  # room for the first checkpoint, not for the second
        calls["n"] += 1
        u = real(path)
        return u._replace(free=u.free if calls["n"] < 2 else 1000)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", usage)
    with pytest.raises(CheckpointError) as e:
        run(make_config(smoke, "intermediate", eval_every=0), tmp_path / "run")
    print(e.value)
    assert str(e.value).startswith(f"not enough disk space for checkpoint step 4 in "
                                   f"{tmp_path / 'run' / 'intermediate' / 'checkpoints'}: about ")
    assert "MiB needed, 0.0 MiB free" in str(e.value)


# ---------------------------------------------------------------- 5. evaluate-only changes, new_run

def test_changing_only_evaluate_keeps_the_trained_phases_and_reevaluates(finished, tmp_path, monkeypatch, capsys):
    """Before: refused ("holds a run with a different config (differs in: evaluate)"), and
    new_run=True deleted the trained phases without a word."""
    workdir = copy_run(finished, tmp_path, evaluation=True)
    shutil.rmtree(workdir / "evaluate" / "results" / "predictions", ignore_errors=True)
    smoke_root = pathlib_parent(finished)
    forbid_training(monkeypatch)
    c = make_config(smoke_root)
    c.evaluate.tasks[0].languages = "en"
    out = run(c, workdir)["evaluate"]
    assert list(out["results"]["xnli"]) == ["en"]
    printed = capsys.readouterr().out
    assert f"config.evaluate changed: the trained phases in {workdir} are kept and evaluation runs again; " \
           f"the previous evaluation moved to {workdir}/previous-" in printed
    moved = [p for p in workdir.iterdir() if p.name.startswith("previous-")]
    assert len(moved) == 1 and (moved[0] / "evaluate" / "results").is_dir()
    assert json.loads((workdir / "config.json").read_text())["evaluate"]["tasks"][0]["languages"] == "en"


def test_new_run_moves_the_previous_run_aside_and_says_where(finished, tmp_path, capsys):
    from xtreme_jax.phases import check_workdir
    workdir = copy_run(finished, tmp_path)
    c = make_config(pathlib_parent(finished), lr=0.5)
    with pytest.raises(WorkdirError, match="differs in: intermediate"):
        check_workdir(c, str(workdir))
    c.new_run = True
    check_workdir(c, str(workdir), now="20260101-000000")
    dest = workdir / "previous-20260101-000000"
    assert capsys.readouterr().out.strip() == f"config.new_run=True: the previous run in {workdir} moved to {dest}"
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "intermediate"]
    assert not (workdir / "intermediate").exists()
    assert json.loads((workdir / "config.json").read_text())["intermediate"]["lr"] == 0.5


def test_a_run_recorded_before_a_new_config_field_still_resumes(finished, tmp_path):
    from xtreme_jax.phases import check_workdir
    workdir = copy_run(finished, tmp_path)
    old = json.loads((workdir / "config.json").read_text())
    del old["model"]["vocab_size"]  # written by a version without the field
    (workdir / "config.json").write_text(json.dumps(old))
    check_workdir(make_config(pathlib_parent(finished)), str(workdir))  # no WorkdirError: it resumes
    assert json.loads((workdir / "config.json").read_text())["model"]["vocab_size"] == 0  # recorded anew


# ---------------------------------------------------------------- 6. evaluation inputs before training

def test_missing_evaluation_files_are_listed_before_any_training(smoke, tmp_path, monkeypatch):
    """Before: both training phases ran, then evaluation stopped at the first missing file
    ("error: .../test-fr.tsv: missing data file"), and correcting the evaluate section was refused."""
    forbid_training(monkeypatch)
    c = make_config(smoke)
    c.evaluate.tasks[0].languages = "en,fr,ar,xx"
    with pytest.raises(DataError) as e:
        run(c, tmp_path / "run")
    msg = str(e.value)
    print(msg)
    assert msg.startswith("3 of the 4 evaluation sets cannot be read, found before training: "
                          f"xnli/test/fr {smoke / 'xnli' / 'test-fr.tsv'} (missing data file); "
                          f"xnli/test/ar {smoke / 'xnli' / 'test-ar.tsv'} (missing data file); "
                          "xnli/test/xx (unknown language code 'xx' for task 'xnli')")
    assert not (tmp_path / "run").exists()


def test_a_later_phases_missing_training_file_is_found_before_the_first_phase_trains(smoke, tmp_path, monkeypatch):
    data = copy_data(smoke, tmp_path)
    forbid_training(monkeypatch)
    c = make_config(smoke, "intermediate,target")
    c.target = C.train_phase([C.task_entry("xnli", lang="de", split="translate_train",
                                           src=C.source("official", str(data)))], num_steps=2, batch_size=8)
    with pytest.raises(DataError, match="translate"):
        run(c, tmp_path / "run")


# ---------------------------------------------------------------- 7. damaged files of a finished run

def test_damaged_files_of_a_finished_run_name_the_file_and_the_recovery(finished, tmp_path, monkeypatch):
    """Before: a JSONDecodeError traceback (config.json, summary.json) or orbax's error from deep
    inside the restore (final/), exit 1."""
    smoke_root = pathlib_parent(finished)
    workdir = copy_run(finished, tmp_path)
    pdir = workdir / "intermediate"
    cfg = workdir / "config.json"
    text = cfg.read_text()
    cfg.write_text(text[:len(text) // 2])
    with pytest.raises(WorkdirError) as e:
        run(make_config(smoke_root), workdir)
    print(e.value)
    assert str(e.value).startswith(f"{cfg} is damaged (JSONDecodeError: ")
    assert "delete it to resume with the config given now" in str(e.value)
    cfg.write_text(text)

    summary = pdir / "results" / "summary.json"
    good = summary.read_text()
    summary.write_text(good[:20])
    with pytest.raises(WorkdirError) as e:
        run(make_config(smoke_root), workdir)
    print(e.value)
    assert str(e.value).startswith(f"{summary} is damaged (JSONDecodeError: ")
    assert str(e.value).endswith(f"delete it and restart: the phase then resumes from its last checkpoint and "
                                 f"writes it again (or delete {pdir} to retrain the phase)")

    summary.write_text(good)
    final_files = sorted(p for p in (pdir / "final").rglob("*") if p.is_file() and p.stat().st_size > 1000)
    for f in final_files:  # every data file zeroed: which one a restore reads first is orbax's business
        f.write_bytes(b"\0" * f.stat().st_size)
    forbid_training(monkeypatch)
    with pytest.raises(WorkdirError) as e:
        run(make_config(smoke_root), workdir)
    print(e.value)
    assert str(e.value).startswith(f"the final model of the finished phase in {pdir} cannot be read from {pdir / 'final'} (")
    assert str(e.value).endswith(f"delete {summary} and {pdir / 'final'} to rebuild it from the phase's last "
                                 f"checkpoint, or delete {pdir} to retrain the phase")
    monkeypatch.undo()
    # The recovery it names: the phase resumes at its last step (nothing left to train) and
    # hands on the same model again.
    summary.unlink()
    shutil.rmtree(pdir / "final")
    run(make_config(smoke_root), workdir)
    assert_same(leaves(pdir / "final"), leaves(finished[0] / "intermediate" / "final"))


# ---------------------------------------------------------------- 8. list index overrides

def test_an_override_of_a_list_entry_that_does_not_exist_is_one_error_line(smoke, tmp_path, monkeypatch, capsys):
    """Before: an IndexError traceback from ml_collections (exit 1)."""
    from absl import flags

    from smoke import write_config
    from xtreme_jax import main
    cfg = write_config(smoke, tmp_path / "cfg.py")
    out = []
    for override in ["--config.intermediate.tasks[3].lr=1", "--config.evaluate.tasks[2].languages=en"]:
        argv = ["xtreme_jax.main", f"--config={cfg}", f"--workdir={tmp_path / 'run'}", override]
        monkeypatch.setattr(sys, "argv", argv)
        for name in [n for n in flags.FLAGS if n.startswith("config.")]:
            delattr(flags.FLAGS, name)
        flags.FLAGS.unparse_flags()
        with pytest.raises(SystemExit) as e:
            main._parse_flags(argv)
        assert e.value.code == 2
        out.append(capsys.readouterr().err.strip())
    print("\n".join(out))
    assert out == [
        "error: --config.intermediate.tasks[3].lr=1: config.intermediate.tasks has 1 entry, [0]; there is "
        "no [3]. Override an existing entry, or add the entry in the config file",
        "error: --config.evaluate.tasks[2].languages=en: config.evaluate.tasks has 1 entry, [0]; there is "
        "no [2]. Override an existing entry, or add the entry in the config file"]


# ---------------------------------------------------------------- 9. console output, start-up

def test_console_prints_dev_evaluations_percentages_the_mfu_peak_and_where_results_are(finished):
    """Before: dev evaluations were not printed; the table mixed a fraction (best dev 0.4375) with
    a percentage (MFU 0.1%); MFU on CPU did not say what it was relative to; nothing said where
    the results were."""
    workdir, out, _ = finished
    dev = [l for l in out.splitlines() if " dev: " in l]
    assert [l.split(" dev:")[0] for l in dev] == ["[intermediate] step 2", "[intermediate] step 4"], out
    assert all("xnli loss " in l and "accuracy " in l and "% -> score " in l for l in dev)
    assert "phase         steps  best dev %  loss     tokens/s   MFU %   stop" in out
    row = next(l for l in out.splitlines() if l.startswith("intermediate "))
    best = json.loads((workdir / "intermediate" / "results" / "summary.json").read_text())["best_dev_score"]
    assert f"{100 * best:.2f}" in row.split()
    assert "MFU % is relative to this machine's measured fp32 matmul peak, " in out
    assert f"written to {workdir}:" in out
    assert f"{workdir / 'intermediate' / 'final'} (model handed on)" in out
    assert f"evaluation   {workdir / 'evaluate' / 'results'}" in out
    # Evaluation says what it does, task by task (it printed nothing for minutes on Tatoeba).
    assert "[evaluate 1/1] xnli: loading test data of 2 languages (en de)" in out
    assert re.search(r"^\[evaluate 1/1\] xnli: 2 languages scored in [\d.]+ s \(forward [\d.]+ s, "
                     r"decode \+ score [\d.]+ s\)$", out, re.M), out


def test_cli_start_up_imports_no_ml_library():
    """A guard, not a fix: this already held before (main imports the library after parsing the
    flags); the timings are in docs/reliability.md."""
    code = ("import sys, runpy\n"
            "for m in ('xtreme_jax.main', 'xtreme_jax.score', 'xtreme_jax.data.spm'):\n"
            "    __import__(m)\n"
            "heavy = sorted(k for k in ('jax', 'flax', 'orbax', 'grain', 'transformers', 'datasets',\n"
            "                           'torch', 'tensorflow', 'sentencepiece') if k in sys.modules)\n"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "[]", out.stderr


# ---------------------------------------------------------------- 10. vocabulary, tokenizer CLI

def test_the_tiny_models_vocabulary_follows_a_bigger_tokenizer(smoke, tmp_path):
    """Before: "tokenizer ... has 1502 tokens but the model vocab is 1024" (ConfigError)."""
    from xtreme_jax.context import build_context
    from xtreme_jax.data.spm import train_xlmr_tokenizer
    rng = np.random.default_rng(0)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    words = ["".join(rng.choice(letters, rng.integers(3, 9))) for _ in range(4000)]
    lines = [" ".join(rng.choice(words, 8)) for _ in range(3000)]
    tok = train_xlmr_tokenizer(lines, str(tmp_path / "tok"), vocab_size=1500)
    assert len(tok) > 1024
    c = make_config(smoke, "intermediate")
    c.model.tokenizer = str(tmp_path / "tok")
    assert build_context(c, str(tmp_path / "run")).model_cfg.vocab_size == -(-len(tok) // 128) * 128
    c.model.vocab_size = 4096
    assert build_context(c, str(tmp_path / "run")).model_cfg.vocab_size == 4096
    c.model.vocab_size = 1000
    with pytest.raises(ConfigError, match=r"config.model.vocab_size=1000 is smaller than the \d+ tokens"):
        build_context(c, str(tmp_path / "run"))
    c.model.vocab_size = 0
    c.model.tokenizer = str(smoke / "tok")  # a smaller tokenizer keeps the preset's 1024 rows
    assert build_context(c, str(tmp_path / "run")).model_cfg.vocab_size == 1024


def test_tokenizer_cli_covers_japanese_and_chinese_characters(shared_data, tmp_path):
    """The CLI on real multilingual text (Tatoeba ja, zh, de, en): every one of the 300 most
    frequent ja and zh characters is a piece (character_coverage 0.9995 drops only rare ones)."""
    from collections import Counter

    from transformers import AutoTokenizer

    from xtreme_jax.data import spm
    t = shared_data / "tatoeba"
    files = [t / "tatoeba.jpn-eng.jpn", t / "tatoeba.cmn-eng.cmn", t / "tatoeba.deu-eng.deu", t / "tatoeba.deu-eng.eng"]
    out = tmp_path / "tok"
    assert spm.main(["--input", ",".join(map(str, files)), "--vocab_size", "4000",
                     "--character_coverage", "0.9995", "--out", str(out)]) == 0
    tok = AutoTokenizer.from_pretrained(str(out))
    for f in files[:2]:
        text = f.read_text(encoding="utf-8")
        common = [ch for ch, _ in Counter(ch for ch in text if not ch.isspace()).most_common(300)]
        unknown = [ch for ch in common if tok.unk_token_id in tok(ch, add_special_tokens=False)["input_ids"]]
        assert unknown == [], (f.name, unknown)
        ids = [i for line in text.splitlines()[:300] for i in tok(line, add_special_tokens=False)["input_ids"]]
        assert np.mean(np.array(ids) == tok.unk_token_id) < 0.01


def test_tokenizer_cli_errors_are_one_line(tmp_path, capsys):
    from xtreme_jax.data import spm
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\ncaf\xe9\n")
    assert spm.main(["--input", f"{tmp_path / 'missing.txt'},{bad}", "--out", str(tmp_path / "t"),
                     "--character_coverage", "1.5"]) == 2
    err = capsys.readouterr().err
    print(err)
    assert err.count("\n") == 1 and err.startswith(f"error: {tmp_path / 'missing.txt'}: no such file; ")
    assert "--character_coverage=1.5 must lie in (0, 1]" in err and f"{bad}:2: not valid UTF-8" in err
