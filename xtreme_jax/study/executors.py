"""Running the graph: local processes, a SLURM array, or Cloud TPU VMs through launch/.

Each run (node) lives in ROOT/runs/<hash>/: point.json (the config it runs, given to
`python -m xtreme_jax.main --config=configs/point.py:.../point.json`), status.json (state, exit
code, error line, wall time), log.txt (local and SLURM), and the pipeline's own files. A node is
done when every one of its phases has written its results (the pipeline's own markers), so a
re-run skips finished runs, resumes interrupted ones from their checkpoints (the pipeline does
that by itself in the same workdir), retries failed ones, and marks the descendants of a failure
as blocked while every other branch goes on.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

from etils import epath

from xtreme_jax.files import write_atomic
from xtreme_jax.processes import alive
from xtreme_jax.workdir import RunDir
from xtreme_jax.study.expand import REPO
from xtreme_jax.study.graph import materialize, node_dir

def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def phase_done(d: str, phase: str) -> bool:
    return RunDir(d).phase(phase).finished()


def read_status(d: str) -> dict:
    try:
        return json.loads(epath.Path(d, "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def mark(d: str, state: str, **info) -> dict:
    st = {**read_status(d), "state": state, "updated": _now(), **info}
    write_atomic(f"{d}/status.json", json.dumps(st, indent=1) + "\n")
    return st


def _orphaned(st: dict) -> bool:
    """status.json says running, on this host, but its process is gone (the study process was
    SIGKILLed and took its run down with it, or the run died with it)."""
    return (st.get("state") == "running" and st.get("executor") == "local"
            and st.get("host") == socket.gethostname() and not alive(st.get("pid")))


def node_state(root: str, node) -> tuple[str, str]:
    """(state, detail): done | running | failed | blocked | partial (resumes) | pending. A stale
    "running" in status.json (its process gone) is rewritten on the way: done when the run's files
    say so (its time measured up to the last results file), else interrupted."""
    d = node_dir(root, node.hash)
    st = read_status(d)
    done = all(phase_done(d, p) for p in node.phases)
    if _orphaned(st):
        if done:
            last = max(RunDir(d).phase(p).summary_file.stat().mtime for p in node.phases)
            st = mark(d, "done", rc=0, ended=_now(), error="",
                      seconds=_total(st, max(0.0, last - st.get("started_at", last))))
        else:
            st = mark(d, "interrupted", rc=None, ended=_now(), seconds=_total(st, time.time() - st.get("started_at", time.time())),
                      error="the study process stopped while this run was running; it resumes from its last checkpoint")
    if done:
        return "done", ""
    s = st.get("state", "")
    if s == "running" and (st.get("host") != socket.gethostname() or alive(st.get("pid"))):
        return "running", st.get("executor", "")
    if s in ("failed", "blocked"):
        return s, st.get("error", "")
    started = [p for p in node.phases if phase_done(d, p) or epath.Path(d, p, "checkpoints").exists()]
    if started:
        return "partial", f"resumes in {started[-1]}"
    return "pending", ""


def write_points(plan, root: str):
    """ROOT/runs/<hash>/point.json for every node (rewritten only when it changed)."""
    for node in plan.graph.nodes.values():
        d = node_dir(root, node.hash)
        text = json.dumps(materialize(node, root), indent=1, sort_keys=True) + "\n"
        path = epath.Path(d, "point.json")
        if not path.exists() or path.read_text() != text:
            write_atomic(f"{d}/point.json", text)


def command(root: str, h: str, python: str = sys.executable) -> list[str]:
    d = node_dir(root, h)
    return [python, "-m", "xtreme_jax.main", f"--config={REPO}/configs/point.py:{d}/point.json", f"--workdir={d}"]


def child_env() -> dict:
    """The runs' environment: every compiled program goes to the persistent compilation cache
    (xtreme_jax.main keeps only compiles over 1 s; a study repeats the same small programs in
    dozens of processes), unless the caller set the cache up already."""
    env = dict(os.environ)
    env.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "xtreme_jax", "jit"))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    return env


# A tqdm progress bar ("target:  42%|████▏  | 126/300 [00:03<00:04, 38.1it/s, loss=0.98]") is never
# the reason a run failed, however last it was written.
_PROGRESS = re.compile(r"\d+%\|.*\||\d+/\d+ \[[\d:<]+(, [\d.]+(it/s|s/it))?")


def error_line(log_path: str) -> str:
    """The program's `error:` line of its last attempt (or the last line that is no progress bar)."""
    try:
        text = epath.Path(log_path).read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    head, sep, last = text.rpartition("\n===== ")  # the attempt just ended, not an earlier one's error
    if sep:
        text = last.partition("\n")[2]  # without its "===== TIME COMMAND" header
    lines = [l.strip() for l in text.replace("\r", "\n").splitlines() if l.strip()]
    lines = [l for l in lines if not _PROGRESS.search(l)]
    errors = [l for l in lines if l.startswith("error:")]
    return (errors or lines or [""])[-1][:500]


def _total(st: dict, session_s: float) -> float:
    """Wall seconds of every attempt of a run: an interrupted and resumed run is measured whole,
    so its cost does not drop to the last attempt's (or flip to the plan's estimate)."""
    return float(st.get("seconds_before") or 0.0) + float(session_s)


class StudyLocked(ValueError):
    """Another `study run` holds this study directory."""


def lock_study(root: str):
    """An exclusive lock on ROOT/study.lock for the life of this process (a second `study run` on
    the same directory would start the same runs twice). Returns the open lock file."""
    import fcntl
    os.makedirs(root, exist_ok=True)
    f = open(os.path.join(root, "study.lock"), "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise StudyLocked(f"{root} is in use by another `study run` ({holder}); wait for it to end or stop it "
                          "(Ctrl-C saves its runs), then run again: finished runs are skipped") from None
    f.truncate(0)
    f.write(f"pid {os.getpid()} on {socket.gethostname()}, since {_now()}\n")
    f.flush()
    return f


def _die_with_parent():
    """In the child, before exec: SIGTERM when the study process dies, even by SIGKILL (the run
    then saves a checkpoint and stops instead of running on unwatched). Linux only."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _describe(plan, node) -> str:
    pts = [plan.points[i] for i in node.points]
    if len(pts) == 1:
        return pts[0].describe()
    return f"shared by {len(pts)} points"


# --------------------------------------------------------------------------- local

def run_local(plan, root: str, parallel: int = 1, python: str = sys.executable, echo=print,
              poll_s: float = 0.5) -> dict:
    """Runs every unfinished node, at most `parallel` at a time, parents first. Returns
    {hash: state}. SIGTERM / Ctrl-C stop the runs (each saves a checkpoint) and return."""
    lock = lock_study(root)
    write_points(plan, root)
    nodes = plan.graph.nodes
    state = {h: node_state(root, n)[0] for h, n in nodes.items()}
    # Seed by seed: a study stopped early (deadline, budget) then holds whole comparisons for its
    # first seeds (baselines included) instead of every condition but the baselines.
    first_seed = {h: min((plan.points[i].seed for i in n.points), default=0) for h, n in nodes.items()}
    todo = sorted((h for h in nodes if state[h] != "done"), key=first_seed.get)
    echo(f"{len(nodes) - len(todo)} of {len(nodes)} runs already done; {len(todo)} to run, {parallel} at a time")
    running: dict = {}
    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while (todo or running) and not stop["flag"]:
            for h in list(todo):
                if len(running) >= parallel:
                    break
                parent = nodes[h].parent
                if parent and state[parent] in ("failed", "blocked"):
                    state[h] = "blocked"
                    mark(node_dir(root, h), "blocked", error=f"parent run {parent} {state[parent]}")
                    todo.remove(h)
                    echo(f"blocked  {h} ({nodes[h].stage}: {_describe(plan, nodes[h])}): parent {parent} {state[parent]}")
                    continue
                if parent and state[parent] != "done":
                    continue
                todo.remove(h)
                d = node_dir(root, h)
                log = open(os.path.join(d, "log.txt"), "a")
                log.write(f"\n===== {_now()} {shlex.join(command(root, h, python))}\n")
                log.flush()
                proc = subprocess.Popen(command(root, h, python), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True, env=child_env(), preexec_fn=_die_with_parent)
                running[h] = (proc, log, time.time())
                state[h] = "running"
                prev = read_status(d)
                before = prev.get("seconds") if prev.get("state") in ("interrupted", "failed") else 0.0
                mark(d, "running", pid=proc.pid, host=socket.gethostname(), executor="local", started=_now(),
                     started_at=time.time(), seconds_before=before or 0.0, error="", rc=None)
                echo(f"started  {h} ({nodes[h].stage}: {_describe(plan, nodes[h])})")
            for h, (proc, log, t0) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                log.close()
                del running[h]
                _finish(plan, root, h, rc, time.time() - t0, state, echo)
            if running:
                time.sleep(poll_s)
    finally:
        for h, (proc, log, t0) in running.items():  # stopped: every run saves a checkpoint and exits
            proc.send_signal(signal.SIGTERM)
        for h, (proc, log, t0) in running.items():
            try:
                proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
            state[h] = "partial"
            d = node_dir(root, h)
            mark(d, "interrupted", rc=proc.returncode, ended=_now(), seconds=_total(read_status(d), time.time() - t0))
            echo(f"stopped  {h}: it resumes from its last checkpoint when the study is run again")
        for s, handler in old.items():
            signal.signal(s, handler)
        lock.close()
    return state


def _finish(plan, root, h, rc, seconds, state, echo):
    d = node_dir(root, h)
    node = plan.graph.nodes[h]
    ok = rc == 0 and all(phase_done(d, p) for p in node.phases)
    seconds = _total(read_status(d), seconds)
    if ok:
        state[h] = "done"
        mark(d, "done", rc=rc, ended=_now(), seconds=seconds, error="")
        echo(f"done     {h} in {seconds:.0f} s")
    else:
        err = error_line(os.path.join(d, "log.txt")) or f"exit code {rc} without results"
        state[h] = "failed"
        mark(d, "failed", rc=rc, ended=_now(), seconds=seconds, error=err)
        echo(f"FAILED   {h} ({node.stage}: {_describe(plan, node)}), exit code {rc}: {err}  [log: {d}/log.txt]")


# --------------------------------------------------------------------------- SLURM

SBATCH = """#!/usr/bin/env bash
# Study {name}, level {level} of the run graph: {count} run(s), one per array task (written by
# `python -m xtreme_jax.study run --executor=slurm`; submit everything with {root}/slurm/submit.sh).
# Each task runs launch/gpu_slurm.sbatch inside its allocation: one process per node, and
# jax.distributed finds the other nodes from SLURM's variables (multi-node runs).
#SBATCH --job-name={name}-L{level}
#SBATCH --array=0-{last}%{max_parallel}
#SBATCH --nodes={nodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={gpus}
#SBATCH --cpus-per-task={cpus}
#SBATCH --time={time}
#SBATCH --output={root}/slurm/logs/%x-%A_%a.out
#SBATCH --signal=TERM@300
{extra}
set -uo pipefail
cd {repo}
STUDY_PY=${{STUDY_PYTHON:-{python}}}
run=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {root}/slurm/level{level}.txt)
parent=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {root}/slurm/level{level}.parents)
mark() {{ "$STUDY_PY" -c 'import sys; from xtreme_jax.study.executors import mark_from_slurm as m; m(*sys.argv[1:])' "$run" "$@"; }}
if [[ $parent != - && ! -f $parent/results/summary.json ]]; then
  mark blocked "parent run $parent did not finish"; exit 0
fi
mark running ""
start=$SECONDS
PYTHON="${{PYTHON:-$STUDY_PY}}" bash {repo}/launch/gpu_slurm.sbatch --config={repo}/configs/point.py:$run/point.json --workdir=$run \\
  >> "$run/log.txt" 2>&1
rc=$?
mark end "$rc" "$((SECONDS - start))"
exit $rc
"""


def mark_from_slurm(run: str, state: str, *args):
    """Status updates from the SLURM array script (blocked / running / end RC SECONDS)."""
    job = f"{os.environ.get('SLURM_ARRAY_JOB_ID', '')}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    info = dict(executor="slurm", job=job, host=socket.gethostname())
    if state == "blocked":
        mark(run, "blocked", error=args[0], **info)
    elif state == "running":
        mark(run, "running", started=_now(), pid=None, error="", rc=None, **info)
    else:
        rc, seconds = int(args[0]), float(args[1])
        point = json.loads(epath.Path(run, "point.json").read_text())
        phases = [p.strip() for p in point["phases"].split(",") if p.strip()]
        if rc == 0 and all(phase_done(run, p) for p in phases):
            mark(run, "done", rc=rc, ended=_now(), seconds=seconds, error="", **info)
        else:
            mark(run, "failed", rc=rc, ended=_now(), seconds=seconds,
                 error=error_line(os.path.join(run, "log.txt")) or f"exit code {rc} without results", **info)


def levels(plan, root: str, skip_done: bool = True) -> list[list[str]]:
    """Unfinished nodes grouped by depth in the graph (a parent's level precedes its children's)."""
    depth = {}
    for h, n in plan.graph.nodes.items():  # parents come first in the dict
        depth[h] = depth[n.parent] + 1 if n.parent else 0
    out = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for h, n in plan.graph.nodes.items():
        if not skip_done or node_state(root, n)[0] != "done":
            out[depth[h]].append(h)
    return [lv for lv in out if lv]


def write_slurm(plan, root: str, *, nodes: int = 1, gpus: int = 8, cpus: int = 16, time_limit: str = "24:00:00",
                max_parallel: int = 64, extra: str = "", python: str = sys.executable) -> list[str]:
    """Writes ROOT/slurm/level<k>.{txt,parents,sbatch} and submit.sh; returns the paths written."""
    if "://" in root:
        raise ValueError("the SLURM executor needs the study directory on a filesystem every node sees "
                         "(not a gs:// path)")
    root = os.path.abspath(root)
    write_points(plan, root)
    os.makedirs(os.path.join(root, "slurm", "logs"), exist_ok=True)
    written, submit = [], ["#!/usr/bin/env bash", "# Submits the run graph level by level; a level starts when the "
                           "previous one has ended (afterany: a failed run blocks only its own children).",
                           "set -euo pipefail", f"cd {shlex.quote(root)}/slurm", "dep=()"]
    name = plan.study.name
    for k, hs in enumerate(levels(plan, root)):
        base = os.path.join(root, "slurm", f"level{k}")
        lines = [node_dir(root, h) for h in hs]
        parents = [f"{node_dir(root, plan.graph.nodes[h].parent)}/{plan.graph.nodes[h].config['init_from'].rsplit('/', 1)[-1]}"
                   if plan.graph.nodes[h].parent else "-" for h in hs]
        write_atomic(base + ".txt", "\n".join(lines) + "\n")
        write_atomic(base + ".parents", "\n".join(parents) + "\n")
        write_atomic(base + ".sbatch", SBATCH.format(
            name=name, level=k, count=len(hs), last=len(hs) - 1, max_parallel=max_parallel, nodes=nodes, gpus=gpus,
            cpus=cpus, time=time_limit, root=root, repo=REPO, python=python,
            extra="\n".join(f"#SBATCH {x}" for x in shlex.split(extra))))
        written += [base + ".txt", base + ".parents", base + ".sbatch"]
        submit.append(f'j=$(sbatch --parsable "${{dep[@]}}" level{k}.sbatch); echo "level {k}: job $j ({len(hs)} runs)"; '
                      'dep=(--dependency=afterany:$j)')
    path = os.path.join(root, "slurm", "submit.sh")
    write_atomic(path, "\n".join(submit) + "\n")
    os.chmod(path, 0o755)
    return written + [path]


# --------------------------------------------------------------------------- Cloud TPU VMs

def run_tpu(plan, root: str, tpus: list[str], *, zone: str = "", project: str = "", dry_run: bool = False,
            echo=print) -> dict:
    """Level by level through launch/sweep.sh: each level's runs are dealt out over the given TPU
    VMs, each TPU runs its share one after another (attached), and the level ends when all have;
    then the runs' results on gs:// say which are done. Children of a failed run are blocked."""
    if not root.startswith("gs://"):
        raise ValueError("the tpu executor needs --workdir=gs://bucket/path: every TPU host reads the runs there")
    if not tpus:
        raise ValueError("the tpu executor needs --tpu=NAME[,NAME...] (existing TPU VMs set up with launch/setup.sh)")
    nodes = plan.graph.nodes
    if dry_run:  # prints what would run; reads and writes nothing on gs://
        state = {h: "pending" for h in nodes}
    else:
        write_points(plan, root)
        state = {h: node_state(root, n)[0] for h, n in nodes.items()}
    for k, hs in enumerate(levels(plan, root, skip_done=not dry_run)):
        runnable = []
        for h in hs:
            parent = nodes[h].parent
            if parent and state.get(parent) in ("failed", "blocked"):
                state[h] = "blocked"
                if not dry_run:
                    mark(node_dir(root, h), "blocked", error=f"parent run {parent} {state[parent]}")
            else:
                runnable.append(h)
        procs = []
        for t, tpu in enumerate(tpus):
            mine = runnable[t::len(tpus)]
            if not mine:
                continue
            # the TPU VMs run the checkout launch/setup.sh copied: a path relative to its root
            specs = "".join(f"@{h} configs/point.py:{node_dir(root, h)}/point.json\n" for h in mine)
            spec_file = os.path.join(_local_tmp(root), f"level{k}-{tpu}.txt")
            with open(spec_file, "w") as f:
                f.write(specs)
            cmd = ["bash", os.path.join(REPO, "launch", "sweep.sh"), "--name", tpu, "--workdir-base",
                   f"{root.rstrip('/')}/runs", "--configs", spec_file]
            cmd += ["--zone", zone] if zone else []
            cmd += ["--project", project] if project else []
            cmd += ["--dry-run"] if dry_run else []
            echo(f"level {k}, {tpu}: {len(mine)} run(s): {shlex.join(cmd)}")
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE if dry_run else None, text=True))
        for p in procs:
            out, _ = p.communicate()
            if dry_run and out:
                echo(out.rstrip())
        if dry_run:
            continue
        for h in runnable:
            done = all(phase_done(node_dir(root, h), p) for p in nodes[h].phases)
            state[h] = "done" if done else "failed"
            mark(node_dir(root, h), state[h], executor="tpu", ended=_now(),
                 error="" if done else "no results after its run: see launch/logs.sh --run " + h)
    return state


def _local_tmp(root: str) -> str:
    d = os.path.join(os.path.expanduser("~"), ".cache", "xtreme_jax", "study_tpu",
                     root.replace("://", "_").replace("/", "_"))
    os.makedirs(d, exist_ok=True)
    return d


def status_table(plan, root: str) -> str:
    """One line per point (its first unfinished stage says where it stands), then the counts."""
    states = {h: node_state(root, n) for h, n in plan.graph.nodes.items()}
    lines, counts = [], {}
    factors = list(plan.points[0].labels) if plan.points else []
    for i, p in enumerate(plan.points):
        chain = plan.graph.chain(i)
        leaf_state, detail = states[chain[-1].hash]
        if leaf_state != "done":  # the first unfinished stage says where the point stands
            for n in chain:
                s, d = states[n.hash]
                if s != "done":
                    leaf_state, detail = s, (f"{n.stage} {n.hash}" + (f": {d}" if d else ""))
                    break
        counts[leaf_state] = counts.get(leaf_state, 0) + 1
        lines.append(f"{i:3d}  " + "  ".join(f"{f}={p.labels[f]}" for f in factors) + f"  seed={p.seed}  "
                     f"{chain[-1].hash}  {leaf_state}" + (f"  ({detail})" if detail else ""))
    run_counts = {}
    for s, _ in states.values():
        run_counts[s] = run_counts.get(s, 0) + 1
    lines.append("points: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) +
                 "; runs: " + ", ".join(f"{v} {k}" for k, v in sorted(run_counts.items())))
    return "\n".join(lines)
