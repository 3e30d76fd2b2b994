"""Orbax checkpoints of the train state + grain iterator state + run metadata.

Restores only committed steps, newest first, falling back past damaged ones with a warning that
names the step. A failed background save raises at the next save/wait: never a stale checkpoint
reported as written.
"""
import logging
import os

import grain
import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(self, directory: str, *, keep: int = 3, async_save: bool = True):
        self.directory = os.path.abspath(directory) if "://" not in directory else directory
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=async_save,
                # Temporary dirs of saves killed mid-write are removed on start.
                cleanup_tmp_directories=True))

    def save(self, step: int, state, data_iters: dict | None = None, meta: dict | None = None,
             force: bool = False) -> bool:
        """`data_iters`: {name: grain iterator}, saved with the state so data resumes exactly."""
        args = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(dict(meta or {}, step=step))}
        for name, it in (data_iters or {}).items():
            args[name] = grain.checkpoint.CheckpointSave(it)
        return self.manager.save(step, args=ocp.args.Composite(**args), force=force)

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
        for s in candidates:
            args = {"state": ocp.args.StandardRestore(abstract_state), "meta": ocp.args.JsonRestore()}
            for name, it in (data_iters or {}).items():
                args[name] = grain.checkpoint.CheckpointRestore(it)
            try:
                out = self.manager.restore(s, args=ocp.args.Composite(**args))
            except Exception as e:  # damaged / partial step: fall back to an older one
                if step is not None:
                    raise
                log.warning("checkpoint step %d in %s is damaged (%s: %s); falling back to an older step",
                            s, self.directory, type(e).__name__, str(e).splitlines()[0][:200])
                continue
            return s, out["state"], out["meta"]
        return None

    def reached_preemption(self, step: int) -> bool:
        return self.manager.reached_preemption(step)

    def wait(self):
        """Blocks until background saves are committed; raises if one failed."""
        self.manager.wait_until_finished()
        self.manager.check_for_errors()

    def close(self):
        self.manager.wait_until_finished()
        self.manager.check_for_errors()
        self.manager.close()


def abstract_like(state):
    """ShapeDtypeStructs (with shardings) of a live state, as restore targets."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
