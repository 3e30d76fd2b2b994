"""The local study executor under faults (issue 25): a second `study run` on one directory is
refused; a progress bar is never a run's error text; a SIGKILLed `study run` takes its runs down
and leaves no stale "running"; an interrupted and resumed run's cost is measured whole."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from test_study_executors import fake_python, study
from xtreme_jax.study import executors, plan as plan_lib
from xtreme_jax.study.graph import node_dir
from xtreme_jax.processes import alive


@pytest.fixture(scope="module")
def plan():
    return plan_lib.make_plan(study(sizes=(100,), seeds=(0,)))


def test_a_second_study_run_on_one_directory_is_refused(tmp_path, plan):
    root = str(tmp_path / "st")
    held = executors.lock_study(root)  # the first `study run`
    with pytest.raises(executors.StudyLocked) as e:
        executors.run_local(plan, root, python=fake_python(tmp_path), echo=lambda s: None)
    assert str(e.value).startswith(f"{root} is in use by another `study run` (pid {os.getpid()} on ")
    assert str(e.value).endswith("then run again: finished runs are skipped")
    assert not os.path.exists(os.path.join(root, "runs"))  # nothing was started or marked
    held.close()
    assert executors.lock_study(root)  # free again once the holder ends


def test_a_progress_bar_is_never_the_error_text(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("\n===== t1 python -m xtreme_jax.main\nerror: an old failure\n"
                   "\n===== t2 python -m xtreme_jax.main\n[target] resumed from step 100\n"
                   "target:  42%|████▏     | 126/300 [00:03<00:04, 38.10it/s, loss=0.98]\r"
                   "target:  43%|████▎     | 129/300 [00:03<00:04, 38.20it/s, loss=0.97]\n")
    assert executors.error_line(str(log)) == "[target] resumed from step 100"
    with open(log, "a") as f:
        f.write("Killed\n")
    assert executors.error_line(str(log)) == "Killed"


SLEEPER = """#!{python}
import os, signal, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
open(os.environ["SLEEPER_PID"], "w").write(str(os.getpid()))
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))  # the real run saves a checkpoint here
time.sleep(120)
"""


def test_sigkill_of_study_run_takes_its_runs_down_and_leaves_no_stale_running(tmp_path, plan):
    py = tmp_path / "sleeper"
    py.write_text(SLEEPER.format(python=sys.executable))
    py.chmod(0o755)
    root, pid_file = str(tmp_path / "st"), tmp_path / "child.pid"
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_study_executors import study
        from xtreme_jax.study import executors, plan as plan_lib
        executors.run_local(plan_lib.make_plan(study(sizes=(100,), seeds=(0,))), {root!r}, python={str(py)!r},
                            echo=lambda s: None, poll_s=0.05)""")
    parent = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ, SLEEPER_PID=str(pid_file)))
    deadline = time.time() + 120
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline and parent.poll() is None, "the run never started"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):  # before: the run went on, unwatched, and status.json said "running"
        if not alive(child):
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the run outlived the SIGKILLed study process")
    first = next(iter(plan.graph.nodes.values()))
    assert executors.node_state(root, first) == ("pending", "")  # it never wrote a checkpoint
    st = executors.read_status(node_dir(root, first.hash))
    assert st["state"] == "interrupted" and st["seconds"] > 0
    assert st["error"].startswith("the study process stopped while this run was running")


def test_an_interrupted_and_resumed_run_is_measured_whole(tmp_path, plan, monkeypatch):
    root = str(tmp_path / "st")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    first = next(iter(plan.graph.nodes))
    executors.write_points(plan, root)
    executors.mark(node_dir(root, first), "interrupted", seconds=1000.0)  # an earlier attempt's time
    executors.run_local(plan, root, python=fake_python(tmp_path), echo=lambda s: None, poll_s=0.05)
    st = executors.read_status(node_dir(root, first))
    assert st["state"] == "done" and 1000.0 < st["seconds"] < 1100.0
    other = executors.read_status(node_dir(root, list(plan.graph.nodes)[1]))
    assert other["state"] == "done" and other["seconds"] < 100.0
