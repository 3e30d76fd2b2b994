"""The run directory before any compute: writable, locked against a second run, holding this
run's config (or told to start a new one), and its finished phases intact.

    prepare(workdir)          is it a writable directory? (process 0 also takes the lock)
    check_workdir(config, d)  config.json: same run -> resume; only `evaluate` changed -> keep
                              the trained phases, re-evaluate; else refuse (or new_run=True:
                              move the old run aside, saying what moves where)
    check_finished(config, d) summary.json / final/ of every finished phase readable
    RunDir(d), PhaseDir       the paths of a run and its phases; whether a phase is finished

The lock (DIR/run.lock) is an flock(2) on a local file: the kernel drops it when the holder
dies, so a lock left by a killed run is taken over without guessing. The file records the
holder (host, pid, start time) for the message a second run gets. On a file system without
flock (some network mounts) the recorded pid decides: a holder on this host whose pid is gone
is stale; a holder on another host cannot be checked from here, so the message says to delete
the file once that run is known to be gone. gs:// has no lock (see docs/reliability.md).
"""
from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time

from etils import epath

from xtreme_jax.config import PHASES, ConfigError, base_config
from xtreme_jax.files import is_remote, write_json
from xtreme_jax.processes import alive

log = logging.getLogger(__name__)

LOCK_NAME = "run.lock"


class WorkdirError(ConfigError):
    """The run directory cannot be used (found before compute; the CLI exits 2)."""


class WriteError(OSError):
    """Writing under the run directory failed mid-run (disk full, permissions); names the path."""


def write_error(what: str, path, e: OSError) -> WriteError:
    reason = e.strerror or str(e) or type(e).__name__
    return WriteError(e.errno, f"writing {what} to {path} failed ({type(e).__name__}: {reason}); "
                               "free space or fix permissions there, then restart: the run resumes "
                               "from its last checkpoint")


# ---------------------------------------------------------------------------------- writable

def check_writable(workdir: str):
    """The workdir is (or can be made) a directory this process can write to."""
    path = epath.Path(workdir)
    if path.exists() and not path.is_dir():
        raise WorkdirError(f"--workdir={workdir} is a file, not a directory; pass a directory "
                           "(it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise WorkdirError(f"--workdir={workdir} cannot be created: a part of that path is a file; "
                           "pass a directory") from None
    except OSError as e:
        raise WorkdirError(f"--workdir={workdir} cannot be created ({type(e).__name__}: "
                           f"{e.strerror or e}); pass a directory you can write to") from None
    probe = path / f".write-test-{socket.gethostname()}-{os.getpid()}"
    try:  # a real write: catches read-only mounts, missing permissions and a full disk
        probe.write_bytes(b"x" * 4096)
        probe.unlink()
    except OSError as e:
        raise WorkdirError(f"--workdir={workdir} is not writable ({type(e).__name__}: "
                           f"{e.strerror or e}); free space or fix permissions, or pass another "
                           "--workdir") from None


# ---------------------------------------------------------------------------------- lock

class WorkdirLock:
    """Held from `acquire` until `release` (or until the process ends, whatever way it ends)."""

    def __init__(self, workdir: str):
        self.workdir, self.path, self.fd = workdir, os.path.join(workdir, LOCK_NAME), None

    def acquire(self) -> "WorkdirLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise WorkdirError(f"{self.workdir} is in use by another run ({_describe(holder)}; lock "
                               f"{self.path}); wait for it to end or stop it, or pass another --workdir") from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                os.close(fd)
                raise
            self._check_recorded_holder(_read_holder(fd))  # no flock here: the pid decides
        previous = _read_holder(fd)
        if previous and previous.get("pid") and previous.get("pid") != os.getpid():
            log.info("taking over %s from %s, which no longer holds it", self.path, _describe(previous))
        me = {"host": socket.gethostname(), "pid": os.getpid(),
              "since": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "argv": " ".join(sys.argv)[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self.fd = fd
        return self

    def _check_recorded_holder(self, holder):
        if not holder or holder.get("pid") == os.getpid():
            return
        same_host = holder.get("host") == socket.gethostname()
        if same_host and not alive(holder.get("pid")):
            return  # stale: its process is gone
        hint = "" if same_host else (" (on another host: if that run is gone, delete the lock file)")
        raise WorkdirError(f"{self.workdir} is in use by another run ({_describe(holder)}; lock "
                           f"{self.path}){hint}; wait for it to end or stop it, or pass another --workdir")

    def release(self):
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)  # the file stays (removing it would race a new holder)
            except OSError:
                pass
            os.close(self.fd)  # drops the flock
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _read_holder(fd) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    if not holder.get("pid"):
        return "holder unknown"
    return (f"pid {holder['pid']} on host {holder.get('host', '?')}, since {holder.get('since', '?')}"
            + (f": {holder['argv']}" if holder.get("argv") else ""))


def prepare(workdir: str, process_index: int = 0) -> WorkdirLock | None:
    """Before compute: a writable directory; process 0 of a run takes the lock (the other
    processes of a multi-process run share it). Returns the held lock (None on gs://)."""
    check_writable(workdir)
    if process_index != 0:
        return None
    if is_remote(workdir):
        log.info("%s is remote: no workdir lock (object stores have no lock that a preempted VM "
                 "releases); do not start two runs on it", workdir)
        return None
    return WorkdirLock(workdir).acquire()


# ---------------------------------------------------------------------------------- config.json

def _training_view(cfg: dict) -> dict:
    """What the trained phases depend on: everything but the evaluate section and the flag."""
    view = {k: v for k, v in cfg.items() if k not in ("evaluate", "new_run")}
    view["phases"] = [p.strip() for p in str(cfg.get("phases", "")).split(",") if p.strip() != "evaluate"]
    return view


def check_workdir(config, workdir: str, *, process_index: int = 0, now: str | None = None):
    """Refuses to mix two different configs in one run directory. A change of the `evaluate`
    section only keeps the trained phases and re-runs evaluation. `config.new_run=True` moves the
    previous run aside (object stores: deletes it), saying what goes where."""
    path = epath.Path(workdir, "config.json")
    resolved = json.loads(config.to_json_best_effort(sort_keys=True))
    if path.exists():
        try:
            old = json.loads(path.read_bytes())
            if not isinstance(old, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as e:
            raise WorkdirError(
                f"{path} is damaged ({type(e).__name__}: {e}); it records this run's config. Restore "
                f"it, or delete it to resume with the config given now (only if it is the config the "
                f"run was started with), or pass --config.new_run=True to start over") from None
        old = _with_new_defaults(old, json.loads(base_config().to_json_best_effort(sort_keys=True)))
        old.pop("new_run", None)
        cur = {k: v for k, v in resolved.items() if k != "new_run"}
        if old != cur and not config.new_run:
            if _training_view(old) != _training_view(cur):
                diff = sorted(k for k in set(old) | set(cur) if old.get(k) != cur.get(k))
                raise WorkdirError(
                    f"{workdir} holds a run with a different config (differs in: {', '.join(diff)}); "
                    "results there would be overwritten. Use another --workdir, or pass "
                    "--config.new_run=True to start a new run in this directory")
            if process_index == 0:  # only `evaluate` changed: the trained phases stay valid
                moved = _move_aside(workdir, ["evaluate"], now)
                print(f"config.evaluate changed: the trained phases in {workdir} are kept and evaluation "
                      "runs again" + (f"; the previous evaluation moved to {moved}" if moved else ""),
                      flush=True)
        elif old != cur and process_index == 0:  # new run requested: previous phases are not reusable
            moved = _move_aside(workdir, list(PHASES) + ["config.json"], now, fresh=True)
            if moved:
                print(f"config.new_run=True: the previous run in {workdir} "
                      + ("was deleted" if is_remote(workdir) else f"moved to {moved}"), flush=True)
    if process_index == 0:
        write_json(os.fspath(path), resolved)


def _with_new_defaults(old, defaults):
    """`old` with the fields added to the schema since it was written, at their defaults: a run
    recorded by an older version resumes unless one of them was actually set."""
    if not (isinstance(old, dict) and isinstance(defaults, dict)):
        return old
    return {**defaults, **{k: _with_new_defaults(v, defaults.get(k)) for k, v in old.items()}}


def _move_aside(workdir: str, names, now=None, fresh=False) -> str | None:
    """Moves DIR/<name> for each existing name to DIR/previous-<time>/ (a local rename, nothing
    copied); on an object store, where a rename copies every byte, deletes them. Returns the
    folder (None if nothing was there)."""
    present = [n for n in names if epath.Path(workdir, n).exists()]
    if not present:
        return None
    if is_remote(workdir):
        for n in present:
            log.warning("removing %s", os.path.join(workdir, n))
            p = epath.Path(workdir, n)
            p.rmtree() if p.is_dir() else p.unlink()
        return os.path.join(workdir, "(deleted)")
    dest = os.path.join(workdir, f"previous-{now or time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(dest, exist_ok=True)
    for n in present:
        log.warning("moving %s to %s", os.path.join(workdir, n), dest)
        os.replace(os.path.join(workdir, n), os.path.join(dest, n))
    return dest


# ---------------------------------------------------------------------------------- phase directories

@dataclasses.dataclass(frozen=True)
class PhaseDir:
    """One phase's directory (local or gs://) and the one rule for "is it finished?": a training
    phase is finished once it wrote results/summary.json (its final/ model is written before),
    the evaluate phase once it wrote results/results.json. `intact`: finished with the model it
    hands on (final/) in place, as a phase that other runs start from must be."""
    path: str

    def _join(self, *parts) -> str:
        return os.path.join(self.path, *parts)  # os.path.join keeps gs://bucket/x intact

    @property
    def name(self) -> str:
        return epath.Path(self.path).name

    checkpoints = property(lambda self: self._join("checkpoints"))  # Orbax train state + grain state
    best = property(lambda self: self._join("best"))                # best/<step>: best validated models
    final = property(lambda self: self._join("final"))              # the model handed on
    metrics = property(lambda self: self._join("metrics"))          # train.jsonl, tensorboard/
    results = property(lambda self: self._join("results"))

    def best_step_dir(self, step) -> str:
        return self._join("best", str(step))

    @property
    def summary_file(self) -> epath.Path:
        return epath.Path(self.results, "results.json" if self.name == "evaluate" else "summary.json")

    def finished(self) -> bool:
        """A training phase: its summary.json exists (a damaged one is an error in `summary`). The
        evaluate phase: its results.json is a whole JSON object; a truncated one (a kill or a full
        disk mid-write) is not finished, so status and run evaluate again instead of calling it done."""
        if not self.summary_file.exists():
            return False
        if self.name != "evaluate":
            return True
        try:
            return isinstance(json.loads(self.summary_file.read_bytes()), dict)
        except (ValueError, UnicodeDecodeError, OSError):
            return False

    def intact(self) -> bool:
        return self.finished() and (self.name == "evaluate" or epath.Path(self.final).is_dir())

    def summary(self) -> dict | None:
        """summary.json of a finished training phase (None: not finished); an error naming the
        file and the recovery when it is damaged."""
        if not self.finished():
            return None
        try:
            out = json.loads(self.summary_file.read_bytes())
            if not isinstance(out, dict) or "heads" not in out:
                raise ValueError("not a phase summary (no 'heads')")
            return out
        except (ValueError, UnicodeDecodeError) as e:
            raise WorkdirError(
                f"{self.summary_file} is damaged ({type(e).__name__}: {e}); delete it and restart: the phase "
                f"then resumes from its last checkpoint and writes it again (or delete {self.path} to "
                "retrain the phase)") from None


@dataclasses.dataclass(frozen=True)
class RunDir:
    """A run directory: DIR/config.json and one PhaseDir per phase."""
    path: str

    @property
    def config_file(self) -> str:
        return os.path.join(self.path, "config.json")

    def phase(self, name: str) -> PhaseDir:
        return PhaseDir(os.path.join(self.path, name))


def read_phase_summary(phase_dir: str) -> dict | None:
    return PhaseDir(phase_dir).summary()


def damaged_final(phase_dir: str, e: Exception) -> WorkdirError:
    detail = (str(e).splitlines() or [""])[0].split(" See full TensorStore details")[0]
    return WorkdirError(
        f"the final model of the finished phase in {phase_dir} cannot be read from "
        f"{os.path.join(phase_dir, 'final')} ({type(e).__name__}: {detail[:200]}); "
        f"delete {os.path.join(phase_dir, 'results', 'summary.json')} and "
        f"{os.path.join(phase_dir, 'final')} to rebuild it from the phase's last checkpoint, or delete "
        f"{phase_dir} to retrain the phase")


def check_finished(config, workdir: str, training_phases):
    """Every finished phase of this run has a readable summary and a final/ directory."""
    for name in training_phases:
        pdir = RunDir(workdir).phase(name)
        if pdir.summary() is not None and not pdir.intact():
            raise damaged_final(pdir.path, FileNotFoundError(f"no directory {pdir.final}"))
