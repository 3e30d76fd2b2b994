"""One tiny study end to end with the real pipeline: a shared MLM run branched into two points
(with and without the intermediate task), a point killed mid-training and resumed from its
checkpoint on the re-run, finished runs skipped, then the report."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STUDY = '''
from xtreme_jax.study import spec

def get_config(arg=None):
    c = spec.study("target_size", "Does the tiny pipeline run?", "tiny")
    c.recipe = "configs/demo.py"
    c.fixed = "arm=with,mlm=all,size=tiny"
    c.set = ("mlm.num_steps=30", "intermediate.num_steps=20", "intermediate.eval_every=10",
             "intermediate.save_every=20", "target.num_steps=100", "target.eval_every=50", "target.save_every=20",
             "target.log_every=10", "evaluate.languages=en,xa")
    c.factors.intermediate = ("entail", "none")
    c.factors.target_examples = (100,)
    c.seeds = (0,)
    c.analysis.size, c.analysis.arm, c.analysis.baseline, c.analysis.full_size = (
        "target_examples", "intermediate", "none", 6400)
    return c
'''


def study(cmd, cfg, root, **kw):
    return subprocess.run([sys.executable, "-m", "xtreme_jax.study", cmd, f"--config={cfg}", f"--workdir={root}"],
                          cwd=REPO, capture_output=True, text=True, timeout=600, **kw)


@pytest.mark.slow
def test_tiny_study_shares_a_run_resumes_a_killed_point_and_reports(tmp_path):
    cfg, root = tmp_path / "study.py", tmp_path / "st"
    cfg.write_text(STUDY)
    # Run; kill the `entail` point's pipeline (SIGKILL, no chance to save) once it has a checkpoint.
    proc = subprocess.Popen([sys.executable, "-m", "xtreme_jax.study", "run", f"--config={cfg}", f"--workdir={root}"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, killed = time.time() + 300, False
    while time.time() < deadline and proc.poll() is None and not killed:
        plan = root / "plan.json"
        if plan.exists():
            leaf = {p["factors"]["intermediate"]: p["run"] for p in json.loads(plan.read_text())["points"]}
            ckpts = root / "runs" / leaf["entail"] / "target" / "checkpoints"
            if ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir()):
                os.kill(json.loads((root / "runs" / leaf["entail"] / "status.json").read_text())["pid"], signal.SIGKILL)
                killed = True
        time.sleep(0.1)
    out, _ = proc.communicate(timeout=600)
    assert killed and proc.returncode == 1, out                 # one failure, recorded; the other point went on
    runs = json.loads((root / "plan.json").read_text())["runs"]
    mlm = next(h for h, r in runs.items() if r["stage"] == "mlm")
    assert runs[mlm]["points"] == [0, 1]                        # one MLM run for both points
    state = lambda h: json.loads((root / "runs" / h / "status.json").read_text())["state"]  # noqa: E731
    assert (state(mlm), state(leaf["none"]), state(leaf["entail"])) == ("done", "done", "failed"), out

    again = study("run", cfg, root)
    assert again.returncode == 0, again.stdout + again.stderr
    log = (root / "runs" / leaf["entail"] / "log.txt").read_text()
    assert "[target] resumed from step" in log                    # from its checkpoint, not from scratch
    for h in (mlm, leaf["none"]):                                 # finished runs were not run again
        assert (root / "runs" / h / "log.txt").read_text().count("\n===== ") == 1

    rep = study("report", cfg, root)
    assert rep.returncode == 0, rep.stderr
    doc = json.loads((root / "report" / "analysis.json").read_text())
    assert doc["points"] == {"planned": 2, "with_results": 2, "missing": []}
    assert set(doc["provenance"]["runs"]) == set(runs)
    deltas = {d["language"]: d for d in doc["paired_deltas"]}
    assert set(deltas) == {"en", "xa"} and deltas["en"]["n"] == 1
    assert (root / "report" / "gain_vs_size_entail.png").stat().st_size > 1000

    # The cost column has one source: measured while every run has its wall time; once one
    # run's is missing (say, a TPU run), every point is the plan's estimate, not a mix.
    import csv
    read = lambda: list(csv.DictReader((root / "report" / "results_long.csv").open()))  # noqa: E731
    assert {r["cost_source"] for r in read()} == {"measured"}
    status = root / "runs" / leaf["none"] / "status.json"
    st = json.loads(status.read_text())
    st.pop("seconds", None)
    status.write_text(json.dumps(st))
    assert study("report", cfg, root).returncode == 0
    assert {r["cost_source"] for r in read()} == {"estimate"}
