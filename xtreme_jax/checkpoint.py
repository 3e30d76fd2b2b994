"""Orbax checkpoints: the train state + grain iterator state + run metadata (`Checkpointer`),
and model params alone (`save_model` / `restore_model`: best/<step>, final/).

What this wrapper adds to orbax's CheckpointManager (see docs/reliability.md):
- restore takes only committed steps, newest first; a damaged step (missing or corrupt file) is
  reported with a warning naming it, moved aside to `<dir>.damaged/`, and the next older step is
  used. Moving it aside matters: training would otherwise reach that step again and fail with
  "step already exists".
- temporary directories of saves killed mid-write (`<step>.orbax-checkpoint-tmp*`) are removed
  when the manager starts (orbax's `cleanup_tmp_directories`).
- a failed background save raises `CheckpointError` naming the step at the next save / wait:
  a run never goes on (or reports success) while its last checkpoint silently failed.
"""
import hashlib
import json
import logging
import os
import re
import shutil
import time

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from flax import nnx

from xtreme_jax import processes
from xtreme_jax.files import is_remote

log = logging.getLogger(__name__)

TMP_MARK = ".orbax-checkpoint-tmp"


class CheckpointError(RuntimeError):
    """A checkpoint could not be written (the run must stop) or read."""


class Checkpointer:
    def __init__(self, directory: str, *, keep: int = 3, async_save: bool = True):
        self.directory = orbax_path(directory)
        if not is_remote(self.directory) and os.path.exists(self.directory) and not os.path.isdir(self.directory):
            # orbax would fail deep inside with a bare FileExistsError / NotADirectoryError
            raise CheckpointError(f"{self.directory} is a file, but it is where this phase keeps its checkpoints; "
                                  "move the file away (or restore the directory) and rerun the same command")
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=async_save,
                # Temporary dirs of saves killed mid-write are removed on start.
                cleanup_tmp_directories=True))
        self.in_flight = None  # step of the last save started (its commit may still be running)

    def save(self, step: int, state, data_iters: dict | None = None, meta: dict | None = None,
             force: bool = False) -> bool:
        """`data_iters`: {name: grain iterator}, saved with the state so data resumes exactly.

        Starts an async save. The previous save must have committed first (orbax would wait for it
        anyway); waiting here lets its error name its own step."""
        self.wait()
        check_space(self.directory, state, f"checkpoint step {step}")
        meta = dict(meta or {}, step=step)
        if data_iters:  # checked at restore: an edited iterator state is refused, not resumed from
            meta[DATA_SHA256] = _all_processes(iterator_digests(data_iters))
        args = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
        for name, it in (data_iters or {}).items():
            args[name] = grain.checkpoint.CheckpointSave(it)
        try:
            saved = self.manager.save(step, args=ocp.args.Composite(**args), force=force)
        except Exception as e:
            raise self._failed(e, step) from e
        self.in_flight = step
        return saved

    def steps(self) -> list:
        return sorted(self.manager.all_steps(), reverse=True)

    def latest_step(self):
        steps = self.steps()
        return steps[0] if steps else None

    def restore(self, abstract_state, data_iters: dict | None = None, step: int | None = None):
        """Returns (step, state, meta) of the newest intact checkpoint, or None if there is none.

        `abstract_state` holds ShapeDtypeStructs with the target shardings; `data_iters` are
        restored in place.
        """
        candidates = [step] if step is not None else self.steps()
        damaged = []
        # A step that fails half-way may already have restored some data iterators in place: put
        # them back to where they were if no step can be restored at all.
        initial = {name: it.get_state() for name, it in (data_iters or {}).items()}
        for s in candidates:
            args = {"state": ocp.args.StandardRestore(abstract_state), "meta": ocp.args.JsonRestore()}
            for name, it in (data_iters or {}).items():
                args[name] = grain.checkpoint.CheckpointRestore(it)
            try:
                out = self.manager.restore(s, args=ocp.args.Composite(**args))
            except Exception as e:  # damaged / partial step: fall back to an older one
                if step is not None:
                    raise
                reason = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]}"
                log.warning("checkpoint step %d in %s is damaged (%s); trying an older step",
                            s, self.directory, reason)
                damaged.append(s)
                continue
            self._check_data_digests(s, out["meta"], data_iters or {})
            if damaged:
                log.warning("resuming from step %d, the newest intact checkpoint; damaged step(s) %s "
                            "moved to %s", s, damaged, self._damaged_dir())
                self._move_aside(damaged)
            return s, out["state"], out["meta"]
        if damaged:
            log.warning("no intact checkpoint in %s (damaged: %s, moved to %s); starting from step 0",
                        self.directory, damaged, self._damaged_dir())
            self._move_aside(damaged)
            for name, it in (data_iters or {}).items():
                it.set_state(initial[name])
        return None

    def _check_data_digests(self, step, meta, data_iters):
        """The restored iterator states must be the ones saved: grain restores any valid state
        (e.g. an edited position), which would silently change the data stream."""
        saved = meta.get(DATA_SHA256)
        if saved is None or not data_iters:  # a checkpoint written before digests were stored
            return
        now = iterator_digests(data_iters)
        # Saved by another number of processes: nothing to compare with (grain decides).
        bad = sorted(name for name, digest in now.items() if len(saved.get(name, [])) == jax.process_count()
                     and saved[name][jax.process_index()] != digest)
        bad_anywhere = _all_processes({"bad": bad})["bad"]  # every process refuses together
        bad = sorted({n for per_process in bad_anywhere for n in per_process})
        if bad:
            step_dir = os.path.join(self.directory, str(step))
            older = [s for s in self.steps() if s < step]
            raise CheckpointError(
                f"checkpoint step {step} in {self.directory}: the data iterator state "
                f"{', '.join(os.path.join(step_dir, n) for n in bad)} does not match the checksum saved "
                f"with it (edited or damaged), so the run cannot continue its data stream exactly. Move "
                f"{step_dir} out of {self.directory} to resume from "
                f"{'step ' + str(older[0]) if older else 'step 0'}, or delete "
                f"{os.path.dirname(self.directory.rstrip('/'))} to restart the phase")

    def reached_preemption(self, step: int) -> bool:
        """True at the step every process agreed on after a preemption notice (SIGTERM).

        Only meaningful with jax.distributed initialized; `step` must grow monotonically over the
        whole process (the loop passes a run-global step)."""
        return self.manager.reached_preemption(step)

    def wait(self):
        """Blocks until background saves are committed; raises CheckpointError if one failed."""
        try:
            self.manager.wait_until_finished()
            self.manager.check_for_errors()
        except Exception as e:
            raise self._failed(e, self.in_flight) from e

    def close(self):
        self.wait()
        self.manager.close()

    def _failed(self, e, step) -> CheckpointError:
        committed = [s for s in self.steps() if s != step]
        return CheckpointError(
            f"saving checkpoint step {step} in {self.directory} failed ({_reason(e)}); the latest committed checkpoint is "
            f"{'step ' + str(committed[0]) if committed else 'none'}. The run stops rather than "
            f"continue without a checkpoint; fix the cause (disk space, permissions) and restart "
            f"to resume from there")

    def _damaged_dir(self) -> str:
        return self.directory.rstrip("/") + ".damaged"

    def _move_aside(self, steps):
        """Damaged steps leave the managed directory (kept for inspection, not reused)."""
        if is_remote(self.directory):  # object stores: no cheap rename; orbax deletes the step
            for s in steps:
                self.manager.delete(s)
        elif jax.process_index() == 0:
            dest = epath.Path(self._damaged_dir())
            dest.mkdir(parents=True, exist_ok=True)
            for s in steps:
                (epath.Path(self.directory) / str(s)).rename(dest / f"{s}-{time.strftime('%Y%m%d-%H%M%S')}")
        processes.sync("xtreme_jax_checkpoint_move_aside")
        self.manager.reload()


DATA_SHA256 = "data_sha256"  # meta key: {iterator name: [sha256 of its state, per process]}


def iterator_digests(data_iters: dict) -> dict:
    """sha256 of each grain iterator's state (this process's part)."""
    out = {}
    for name, it in data_iters.items():
        state = it.get_state()
        raw = state if isinstance(state, bytes) else json.dumps(state, sort_keys=True).encode()
        out[name] = hashlib.sha256(raw).hexdigest()
    return out


def _all_processes(value):
    """{key: [value of process 0, 1, ...]} for a dict of JSON values (one process: no collective)."""
    if jax.process_count() == 1:
        return {k: [v] for k, v in value.items()}
    from jax.experimental import multihost_utils
    raw = np.frombuffer(json.dumps(value, sort_keys=True).encode(), np.uint8)
    sizes = multihost_utils.process_allgather(np.array([raw.size]))
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[:raw.size] = raw
    rows = multihost_utils.process_allgather(padded)
    parts = [json.loads(bytes(r[:int(n)]).decode()) for r, n in zip(rows, sizes.reshape(-1))]
    return {k: [p[k] for p in parts] for k in value}


def _reason(e: Exception) -> str:
    """What went wrong, the OS error first: tensorstore's messages name it only at the end."""
    text = (str(e).splitlines() or [""])[0]
    code = re.search(r"os_error_code='(\d+)'", text)
    cause = f"{os.strerror(int(code.group(1)))}: " if code and not isinstance(e, OSError) else ""
    return f"{cause}{type(e).__name__}: {text[:200]}"


def check_space(directory: str, state, what: str, margin: float = 1.0):
    """Refuses to start a save that cannot fit on a local disk: a save that runs out of space
    fails inside orbax's threads, each printing its own traceback. Estimate: the state's bytes
    in memory (this process's share) times `margin`; on disk orbax compresses, so this errs on
    the safe side (a tiny model's checkpoint took 0.7 of it)."""
    if is_remote(directory):
        return
    need = margin * sum(x.nbytes for x in jax.tree.leaves(state) if hasattr(x, "nbytes")) / jax.process_count()
    existing = directory
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    free = shutil.disk_usage(existing).free
    if free < need:
        raise CheckpointError(
            f"not enough disk space for {what} in {directory}: about {need / 2**20:.1f} MiB needed, "
            f"{free / 2**20:.1f} MiB free. Free space there (or lower `keep`) and restart: the run "
            "resumes from its last checkpoint")


def orbax_path(directory: str) -> str:
    """Orbax wants absolute local paths; a remote URL goes to it unchanged (it writes gs:// itself,
    and os.path.abspath would turn gs://b into ./gs:/b)."""
    return directory if is_remote(directory) else os.path.abspath(directory)


def remove_tmp_dirs(parent: str):
    """Removes `*.orbax-checkpoint-tmp*` left in `parent` by a save that was killed (process 0)."""
    parent = epath.Path(parent)
    if jax.process_index() != 0 or not parent.is_dir():
        return
    for child in parent.iterdir():
        if TMP_MARK in child.name:
            log.info("removing %s (left by an interrupted save)", child)
            try:
                child.rmtree()
            except OSError:  # best effort, as before: orbax ignores a leftover tmp dir anyway
                pass


def abstract_like(state):
    """ShapeDtypeStructs (with shardings) of a live state, as restore targets."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)


# ---------------------------------------------------------------------------- model params only

def save_model(directory: str, model_state):
    """Model params only (for hand-off and evaluation), overwriting atomically via Orbax."""
    check_space(directory, model_state, "the model")
    try:
        with ocp.StandardCheckpointer() as c:
            c.save(orbax_path(directory), model_state, force=True)
    except Exception as e:  # noqa: BLE001  orbax / tensorstore raise many kinds
        raise CheckpointError(f"saving the model to {directory} failed ({_reason(e)}); fix the cause "
                              "(disk space, permissions) and restart: the run resumes from its last "
                              "checkpoint") from e


def restore_model(directory: str, like_state):
    """Params saved by `save_model`, restored with the shapes and shardings of `like_state`
    (live arrays or ShapeDtypeStructs)."""
    with ocp.StandardCheckpointer() as c:
        return c.restore(orbax_path(directory), abstract_like(like_state))


def place(like_state, pure: dict):
    """Puts host numpy params into `like_state` (an nnx.State) with its shardings, in place."""
    like = nnx.to_pure_dict(like_state)

    def put(x, a):
        a = np.asarray(a, dtype=x.dtype)
        return jax.make_array_from_callback(x.shape, x.sharding, lambda idx: a[idx])
    nnx.replace_by_pure_dict(like_state, jax.tree.map(put, like, pure))


def read_meta(ckpt_dir: str, step: int):
    """The JSON meta item of a committed step, read directly (no orbax collectives: process 0 only)."""
    try:
        return json.loads(epath.Path(ckpt_dir, str(step), "meta", "metadata").read_bytes())
    except (OSError, ValueError):
        return None


def prune_best(best_dir, ckpt, best_of: dict, current):
    """Deletes best/<step> dirs that neither the current best nor any retained checkpoint refers to
    (a resume, or a fall-back to an older checkpoint, needs that checkpoint's own best). Process 0."""
    best_dir = epath.Path(best_dir)
    if jax.process_index() != 0 or not best_dir.is_dir():
        return
    keep = {current}
    for s in (ckpt.steps() if ckpt is not None else []):
        if s not in best_of:
            best_of[s] = (read_meta(ckpt.directory, s) or {}).get("best_step", "unknown")
        keep.add(best_of[s])
    if "unknown" in keep:  # a checkpoint whose meta we cannot read: keep everything
        return
    for d in best_dir.iterdir():
        if d.name.isdigit() and int(d.name) not in keep:
            try:
                d.rmtree()
            except OSError:  # best effort: a leftover best/<step> only costs space
                pass
