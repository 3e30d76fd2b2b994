"""Evaluation results on a full disk, and a `checkpoints` directory replaced by a file (issue 25):
one error naming the path, the previous results whole (before: an OSError traceback)."""
import errno
import os

import pytest

from test_evaluate_cli import fake_result, files
from xtreme_jax import report
from xtreme_jax.evaluation import output
from xtreme_jax.workdir import WriteError


def test_a_full_disk_while_writing_results_keeps_the_old_set_and_says_so(tmp_path, monkeypatch):
    out, rec = str(tmp_path / "evaluate" / "results"), output.record("/runs/a/target")
    output.write_results(out, rec, {"xnli": fake_result("xnli", {"en": {"accuracy": 50.0}})}, {},
                         benchmark="xtreme", write_submission=False)
    before = {name: open(os.path.join(out, name), "rb").read() for name in files(out)}

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(report, "plot_heatmap", full)
    with pytest.raises(WriteError) as e:
        output.write_results(out, rec, {"xnli": fake_result("xnli", {"en": {"accuracy": 90.0}})}, {},
                             benchmark="xtreme", write_submission=False)
    assert str(e.value) == (f"[Errno 28] writing the evaluation results (the previous ones there are kept) to "
                            f"{out} failed (OSError: No space left on device); free space or fix permissions "
                            "there, then restart: the run resumes from its last checkpoint")
    assert {name: open(os.path.join(out, name), "rb").read() for name in files(out)} == before
    assert sorted(os.listdir(tmp_path / "evaluate")) == ["results"]


def test_checkpoints_replaced_by_a_file_is_one_error_naming_it(smoke, tmp_path):
    """Before: orbax's FileExistsError traceback from deep inside CheckpointManager."""
    from test_reliability import make_config, run
    from xtreme_jax.checkpoint import CheckpointError
    workdir = tmp_path / "run"
    (workdir / "intermediate").mkdir(parents=True)
    (workdir / "intermediate" / "checkpoints").write_text("not a directory")
    with pytest.raises(CheckpointError) as e:
        run(make_config(smoke), workdir)
    assert str(e.value) == (f"{workdir}/intermediate/checkpoints is a file, but it is where this phase keeps its "
                            "checkpoints; move the file away (or restore the directory) and rerun the same command")
