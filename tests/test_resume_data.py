"""A resume continues on the data its checkpoint trained on, or refuses: a training file changed
between a kill and the rerun must not give a phase half old, half new data."""
import os
import subprocess
import sys

import pytest

from smoke import preempt_at_first_checkpoint, write_config, write_smoke


def main_cmd(cfg, workdir):
    return [sys.executable, "-m", "xtreme_jax.main", f"--config={cfg}", f"--workdir={workdir}"]


@pytest.mark.slow
def test_a_training_file_changed_before_the_resume_is_refused_and_the_old_file_resumes(tmp_path):
    (tmp_path / "data").mkdir()
    data = write_smoke(tmp_path / "data")
    cfg = write_config(data)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    run = tmp_path / "run"
    ckpts = run / "intermediate" / "checkpoints"
    code, text = preempt_at_first_checkpoint(main_cmd(cfg, run), env, ckpts)
    assert code == 0 and "preempted at step" in text, text[-3000:]
    stopped = int(text.split("preempted at step")[1].split()[0])

    train = data / "xnli" / "train-en.tsv"
    original, stat = train.read_bytes(), train.stat()
    train.write_bytes(original + b"a new premise\ta new hypothesis\tentailment\n")
    out = subprocess.run(main_cmd(cfg, run), env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 2, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in out.stderr
    assert errors[0].startswith(f"error: the training data of phase intermediate changed since its checkpoint "
                                f"at step {stopped} in {ckpts} was written")
    assert f"delete {run / 'intermediate'} to train the phase anew" in errors[0]

    train.write_bytes(original)  # the very file the checkpoint trained on: the resume goes on
    os.utime(train, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    out = subprocess.run(main_cmd(cfg, run), env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"[intermediate] resumed from step {stopped}" in out.stdout
