"""Study executors and the report, on a fake pipeline: a stand-in `python` that writes each phase's
results the way `python -m xtreme_jax.main` does (summary.json, results.json, train.jsonl), with
scores from a known formula. Local scheduling, failures, blocked children and resume; the SLURM
array scripts (run with a fake srun); the TPU commands (dry run); the report's files and its
target-size analysis against the formula. No JAX training here."""
import json
import math
import os
import stat
import subprocess
import sys

import pytest

from xtreme_jax.study import collect, executors, plan as plan_lib, report, spec

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Zero-shot score of a fake run: 40 + 5 ln(n/100) (+ a gain of 8 - 1.5 ln(n/100) with the MNLI-schema
# intermediate task: it crosses 0 at n = 100 e^(16/3) ~ 20,700), + seed noise; other intermediate
# tasks, added languages and bigger models shift it by known amounts (used by the other analyses).
FAKE = r"""#!{python}
import json, math, os, sys
args = dict(a.split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
run = args["--workdir"]
cfg = json.load(open(args["--config"].split(":", 1)[1]))
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(os.path.basename(run) + "\n")
if os.path.basename(run) in os.environ.get("FAKE_FAIL", "").split(","):
    print("error: boom (fake failure)", file=sys.stderr)
    sys.exit(3)
if cfg["init_from"] and not os.path.exists(os.path.join(cfg["init_from"], "results", "summary.json")):
    print("error: init_from is not a finished phase", file=sys.stderr)
    sys.exit(2)
def inter(c):
    if "intermediate" in c["phases"].split(","):
        return c["intermediate"]["tasks"]
    if c["init_from"]:
        return inter(json.load(open(os.path.join(os.path.dirname(c["init_from"]), "point.json"))))
    return []
tasks = inter(cfg)
names = sorted({{t["name"] for t in tasks}})
TASK = {{"mnli": (0.0, 0.8), "qqp": (1.0, 0.7), "sst2": (-1.0, 0.6), "udpos": (2.0, 0.9)}}
size = {{"tiny": 0, "mini": 1, "midi": 2}}[cfg["model"]["size"]]
for p in cfg["phases"].split(","):
    d = os.path.join(run, p)
    os.makedirs(os.path.join(d, "results"), exist_ok=True)
    if p == "evaluate":
        n = sum(t["max_examples"] or 6400 for t in cfg["target"]["tasks"])
        k = len({{t["lang"] for t in tasks}} - {{"en"}})
        gain = 0.0
        if tasks:
            gain = 8 - 1.5 * math.log(n / 100) + sum(TASK[x][0] for x in names) + 4 * (1 - math.exp(-k / 1.5))
            gain += size * (1.0 if names == ["udpos"] else 2.0)
        base = 40 + 5 * math.log(n / 100) + 0.3 * ((cfg["seed"] * 7919) % 5 - 2)
        res = {{"demo_nli": {{l: {{"accuracy": base + gain + (10 if l == "en" else 0)}} for l in ("en", "xa", "xb", "xg")}}}}
        json.dump({{"results": res}}, open(os.path.join(d, "results", "results.json"), "w"))
    else:
        os.makedirs(os.path.join(d, "metrics"), exist_ok=True)
        top = max([TASK[x][1] for x in names] or [0.5])
        with open(os.path.join(d, "metrics", "train.jsonl"), "w") as f:
            for step in (10, 20):
                f.write(json.dumps({{"step": step, "dev/score": top * step / 20 + 0.01 * cfg["seed"]}}) + "\n")
        json.dump({{"phase": p, "steps": cfg[p]["num_steps"], "heads": {{}}}},
                  open(os.path.join(d, "results", "summary.json"), "w"))
print("fake run done")
"""


def fake_python(tmp_path):
    path = tmp_path / "fake_python"
    path.write_text(FAKE.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def study(sizes=(100, 400), seeds=(0, 1)):
    c = spec.study("target_size", "q", "tiny")
    c.recipe = "configs/demo.py"
    c.fixed = "arm=with,mlm=all,size=tiny"
    c.factors.intermediate = ("entail", "none")
    c.factors.target_examples = sizes
    c.seeds = seeds
    c.analysis.size, c.analysis.arm, c.analysis.baseline, c.analysis.full_size = "target_examples", "intermediate", "none", 6400
    return c


@pytest.fixture(scope="module")
def small_plan():
    return plan_lib.make_plan(study())


def invocations(log):
    return open(log).read().split() if os.path.exists(log) else []


def test_local_runs_parents_first_records_failures_and_resumes(tmp_path, small_plan, monkeypatch):
    pl, root = small_plan, str(tmp_path / "st")
    py, log = fake_python(tmp_path), str(tmp_path / "calls.log")
    monkeypatch.setenv("FAKE_LOG", log)
    inter = [h for h, n in pl.graph.nodes.items() if n.stage == "intermediate"]
    monkeypatch.setenv("FAKE_FAIL", inter[0])
    lines = []
    state = executors.run_local(pl, root, parallel=2, python=py, echo=lines.append, poll_s=0.05)
    blocked = pl.graph.children(inter[0])
    assert state[inter[0]] == "failed" and all(state[h] == "blocked" for h in blocked) and len(blocked) == 2
    assert sum(s == "done" for s in state.values()) == len(state) - 3          # every other branch went on
    st = executors.read_status(f"{root}/runs/{inter[0]}")
    assert st["state"] == "failed" and st["rc"] == 3 and st["error"] == "error: boom (fake failure)"
    assert any(l.startswith("FAILED   " + inter[0]) for l in lines)
    first = invocations(log)
    assert first[0] == next(h for h, n in pl.graph.nodes.items() if n.stage == "mlm")  # parents first
    # re-run: finished runs are skipped, the failed one and its blocked children run
    monkeypatch.setenv("FAKE_FAIL", "")
    open(log, "w").close()
    state = executors.run_local(pl, root, parallel=1, python=py, echo=lines.append, poll_s=0.05)
    assert all(s == "done" for s in state.values())
    assert invocations(log) == [inter[0]] + blocked
    from xtreme_jax.study.executors import status_table
    assert status_table(pl, root).splitlines()[-1] == f"points: {len(pl.points)} done; runs: {len(state)} done"


def test_local_runs_seed_by_seed(tmp_path, small_plan, monkeypatch):
    """A study stopped early holds whole comparisons (baselines included) for its first seeds."""
    pl, log = small_plan, str(tmp_path / "calls.log")
    monkeypatch.setenv("FAKE_LOG", log)
    executors.run_local(pl, str(tmp_path / "st"), parallel=1, python=fake_python(tmp_path), echo=lambda s: None,
                        poll_s=0.05)
    first_seed = [min(pl.points[i].seed for i in pl.graph.nodes[h].points) for h in invocations(log)]
    assert first_seed == sorted(first_seed) and first_seed.count(0) > len(first_seed) // 2
    seed0 = [pl.points[i] for h in invocations(log)[:first_seed.count(0)] for i in pl.graph.nodes[h].points]
    assert {p.labels["intermediate"] for p in seed0 if p.seed == 0} == {"entail", "none"}


def test_report_files_and_target_size_analysis(tmp_path, monkeypatch):
    pl = plan_lib.make_plan(study(sizes=(100, 200, 400, 800, 1600, 3200), seeds=(0, 1, 2)))
    root = str(tmp_path / "st")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    executors.run_local(pl, root, parallel=4, python=fake_python(tmp_path), echo=lambda s: None, poll_s=0.05)
    out = report.build(pl, root)
    files = sorted(os.listdir(out["dir"]))
    assert files == ["analysis.json", "gain_vs_size_entail.png", "report.md", "results_long.csv"]
    doc = json.load(open(os.path.join(out["dir"], "analysis.json")))
    head = open(os.path.join(out["dir"], "results_long.csv")).readline().strip().split(",")
    assert head == ["intermediate", "target_examples", "point", "run", "seed", "task", "language", "seen", "split",
                    "metric", "value", "steps", "accelerator_hours", "cost_source"]
    e = doc["analysis"]["entail"]
    g100 = e["per_size"]["100"]["gain"]
    assert g100["value"] == pytest.approx(8.0) and g100["n"] == 3 and g100["ci95"] == pytest.approx([8.0, 8.0])
    assert e["fit"]["b"]["value"] == pytest.approx(-1.5) and e["fit"]["a"]["value"] == pytest.approx(8 + 1.5 * math.log(100))
    assert e["fit"]["zero_gain_size"]["value"] == pytest.approx(100 * math.exp(16 / 3), rel=1e-6)
    # every estimate carries a CI and its n
    def walk(x):
        if isinstance(x, dict):
            if "value" in x and "ci95" in x:
                yield x
            for v in x.values():
                yield from walk(v)
        elif isinstance(x, list):
            for v in x:
                yield from walk(v)
    ests = list(walk(doc["analysis"])) + list(walk(doc["cells"])) + list(walk(doc["paired_deltas"]))
    assert len(ests) > 50 and all(len(x["ci95"]) == 2 and x["n"] >= 1 for x in ests)
    prov = doc["provenance"]
    assert set(prov["runs"]) == set(pl.graph.nodes) and prov["statistics"]["bootstrap_seed"] == 0
    assert any(v.get("sha256") for v in prov["data"].values())
    md = open(os.path.join(out["dir"], "report.md")).read()
    assert "not answers about XLM-R" in md and "| 100 |" in md and "gain_vs_size_entail.png" in md


def test_slurm_scripts_chain_levels_and_mark_states(tmp_path, small_plan):
    pl, root = small_plan, str(tmp_path / "st")
    paths = executors.write_slurm(pl, root, nodes=2, gpus=4, extra="--partition=gpu --account=lab")
    names = [os.path.basename(p) for p in paths]
    assert names == ["level0.txt", "level0.parents", "level0.sbatch", "level1.txt", "level1.parents", "level1.sbatch",
                     "level2.txt", "level2.parents", "level2.sbatch", "submit.sh"]
    sb = open(os.path.join(root, "slurm", "level2.sbatch")).read()
    assert "#SBATCH --array=0-3%64" in sb and "#SBATCH --nodes=2" in sb and "#SBATCH --gpus-per-node=4" in sb
    assert "#SBATCH --partition=gpu" in sb and "launch/gpu_slurm.sbatch" in sb
    submit = open(paths[-1]).read()
    assert "level0.sbatch" in submit and "--dependency=afterany:$j" in submit
    for p in paths:
        if p.endswith((".sbatch", ".sh")):
            assert subprocess.run(["bash", "-n", p]).returncode == 0
    # one array task, run here with a fake srun: done / failed / blocked, written to status.json
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/usr/bin/env bash\nshift\nexec \"$@\"\n")  # drop --kill-on-bad-exit
    (bin_dir / "srun").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_ARRAY_JOB_ID": "77", "PYTHON": fake_python(tmp_path),
           "FAKE_LOG": str(tmp_path / "calls.log")}
    level1 = open(os.path.join(root, "slurm", "level1.txt")).read().split()
    r = subprocess.run(["bash", os.path.join(root, "slurm", "level1.sbatch")], env={**env, "SLURM_ARRAY_TASK_ID": "0"},
                       capture_output=True, text=True, timeout=60)
    assert executors.read_status(level1[0])["state"] == "blocked"     # its mlm parent has not run
    for k in (0,):
        r = subprocess.run(["bash", os.path.join(root, "slurm", "level0.sbatch")],
                           env={**env, "SLURM_ARRAY_TASK_ID": str(k)}, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    level0 = open(os.path.join(root, "slurm", "level0.txt")).read().split()
    st = executors.read_status(level0[0])
    assert st["state"] == "done" and st["job"] == "77_0" and st["executor"] == "slurm"
    r = subprocess.run(["bash", os.path.join(root, "slurm", "level1.sbatch")],
                       env={**env, "SLURM_ARRAY_TASK_ID": "1", "FAKE_FAIL": os.path.basename(level1[1])},
                       capture_output=True, text=True, timeout=60)
    st = executors.read_status(level1[1])
    assert r.returncode == 3 and st["state"] == "failed" and st["error"] == "error: boom (fake failure)"


def test_tpu_dry_run_prints_the_sweeps_level_by_level(small_plan):
    lines = []
    executors.run_tpu(small_plan, "gs://b/st", ["tpu-a", "tpu-b"], dry_run=True, echo=lines.append)
    text = "\n".join(lines)
    levels = [l for l in lines if l.startswith("level ")]
    assert [l.split(":")[0] for l in levels] == ["level 0, tpu-a", "level 1, tpu-a", "level 1, tpu-b",
                                                 "level 2, tpu-a", "level 2, tpu-b"]
    h = next(h for h, n in small_plan.graph.nodes.items() if n.stage == "mlm")
    assert (f"--config=configs/point.py:gs://b/st/runs/{h}/point.json --workdir=gs://b/st/runs/{h}" in text)
    assert text.count("gcloud compute tpus tpu-vm ssh") == len(small_plan.graph.nodes)
    with pytest.raises(ValueError, match="gs://"):
        executors.run_tpu(small_plan, "/local/dir", ["t"], dry_run=True)


def _plan_unvalidated(c):
    """A plan without the data checks (the tiny world's translated files need a registry change
    that the fake pipeline does not care about)."""
    from xtreme_jax.study import cost, expand, graph, validate
    pts, col = expand.expand(c)
    g = graph.build(pts, int(c.encoder_seed))
    data = validate.DataCheck()
    return plan_lib.Plan(c, pts, col, g, data, cost.plan_cost(g, data, "cpu", 1))


def _study(name):
    import importlib.util
    s = importlib.util.spec_from_file_location(name, os.path.join(REPO, "configs", "studies", f"{name}.py"))
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    return m.get_config("scale=tiny")


@pytest.mark.parametrize("name", ["direct", "difficulty", "model_size", "languages"])
def test_every_analysis_recovers_the_fake_worlds_answers(name, tmp_path, monkeypatch):
    c = _study(name)
    c.seeds = (0, 1)
    if name == "direct":   # both arms in English (the formula ignores languages): slopes 3.5 and 5
        c.factors.arm = {"stilts": "intermediate=entail+para+sst", "direct": "intermediate=none"}
        c.factors.target_examples = (100, 400, 1600)
    elif name == "difficulty":
        c.factors.encoder = {"multilingual": "mlm=all,target_examples=1000"}  # not demo.py's default
    elif name == "model_size":
        c.factors.intermediate = ("pos", "entail", "none")
    else:
        c.factors.order = {"o0": "xa+xb+xc", "o1": "xc+xa+xb"}
        c.factors.k = (0, 1, 2, 3)
    pl = _plan_unvalidated(c)
    root = str(tmp_path / "st")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    executors.run_local(pl, root, parallel=4, python=fake_python(tmp_path), echo=lambda s: None, poll_s=0.05)
    if name == "direct":  # the fake runs' wall times are noise: cost every point by the plan's estimate
        monkeypatch.setattr(collect, "read_status", lambda d: {})
    doc = report.build(pl, root)["doc"]
    a, head = doc["analysis"], doc["headline"]
    if name == "direct":
        assert a["stilts"]["vs_examples"]["loglinear"]["b"]["value"] == pytest.approx(3.5)
        assert a["direct"]["vs_examples"]["loglinear"]["b"]["value"] == pytest.approx(5.0)
        assert head["crossover_examples"]["value"] == pytest.approx(100 * math.exp(16 / 3), rel=1e-6)
        # every point trains the same steps: compute barely varies, so no exponent is fitted on it
        assert a["stilts"]["vs_compute"]["not_fitted"].startswith("compute varies only ")
        assert "alpha (compute)" in open(f"{root}/report/report.md").read()
        # compute proportional to n (the plan's estimate, not the fake runs' wall times): the
        # compute fits then equal the examples fits
        orig = type(pl).point_cost
        monkeypatch.setattr(type(pl), "point_cost", lambda self, i: dict(
            orig(self, i), accelerator_hours=int(self.points[i].labels["target_examples"]) * 1e-3))
        a = report.build(pl, root)["doc"]["analysis"]
        assert a["stilts"]["vs_compute"]["loglinear"]["b"]["value"] == pytest.approx(3.5)
        assert a["direct"]["vs_compute"]["powerlaw_error"]["alpha"]["value"] == pytest.approx(
            a["direct"]["vs_examples"]["powerlaw_error"]["alpha"]["value"])
        assert a["crossover_compute_hours"]["value"] == pytest.approx(100 * math.exp(16 / 3) * 1e-3, rel=1e-6)
    elif name == "difficulty":
        # difficulty (normalized dev error): pos 0.325 < entail 0.6 < para 0.95 < sst 1.1 (seed 0);
        # gains 6.55, 4.55, 5.55, 3.55: Spearman = 1 - 6 * 18 / (4 * 15) = -0.8
        d = a["multilingual"]["difficulty"]
        assert d["entail"]["value"] == pytest.approx((0.6 + 0.585) / 2)   # seed 1 scores 0.01 higher
        assert head["multilingual"]["value"] == pytest.approx(-0.8) and head["multilingual"]["n"] == 2
        assert a["multilingual"]["gain"]["pos"]["value"] == pytest.approx(8 - 1.5 * math.log(10) + 2)
    elif name == "model_size":
        # semantic - syntactic = size - 2 (size index 0, 1, 2): difference in differences 2
        assert head["difference_in_differences"]["value"] == pytest.approx(2.0)
        assert a["semantic_minus_syntactic"]["tiny"]["value"] == pytest.approx(-2.0)
        assert a["slope_per_decade_of_parameters"]["value"] > 0
    else:
        sat = a["zero-shot"]["saturating"]
        assert sat["tau"]["value"] == pytest.approx(1.5, rel=1e-3) and sat["tau"]["unit"] == "seed x order"
        assert len(doc["cells"]) == 2 * 4 * 4 and doc["points"]["planned"] == 2 * (2 * 4 - 1)  # k=0 once per seed
        # model-free answers: rise 4 (1 - e^-2) from k=0 to 3; slope over k 2..3 minus over k 0..2
        rise, change = head["rise"]["value"], head["slope_change"]["value"]
        assert rise == pytest.approx(4 * (1 - math.exp(-2)))
        assert change == pytest.approx(4 * (math.exp(-4 / 3) - math.exp(-2)) - 2 * (1 - math.exp(-4 / 3)))
        # 90% of the rise is reached at k = 1.5 ln 10 = 3.45, beyond the largest k tested: not reported
        assert head["x90"]["value"] is None and sat["x90"]["value"] is None
        assert "Diminishing returns: rise 3.46 [3.46, 3.46]" in open(f"{root}/report/report.md").read()
