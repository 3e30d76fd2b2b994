"""One training phase (mlm / intermediate / target), readable top to bottom.

    finished? -> build_trainer (trainer.py) -> restore -> [step, then the hooks that are due] -> hand off

The periodic actions are hooks with an interval (`Hook(every, fn)`, run in order after each
step): log (the only host sync), validate, save, preemption check. The loop delegates:
checkpoints to xtreme_jax.checkpoint, metrics to xtreme_jax.metrics, the step to
xtreme_jax.train_step, weights in and out to xtreme_jax.handoff.
"""
import dataclasses
import logging
import os
import signal
import threading
import time
from typing import Callable

import jax
import numpy as np
from etils import epath
from tqdm import tqdm

from xtreme_jax import checkpoint as ckpt_lib
from xtreme_jax import sharding
from xtreme_jax.checkpoint import prune_best, restore_model, save_model
from xtreme_jax.config import ConfigError
from xtreme_jax.files import write_json
from xtreme_jax.handoff import Handoff, export_hf
from xtreme_jax.metrics import MetricsLog, flops_per_token, peak_description, peak_flops_per_device
from xtreme_jax.trainer import Entry, build_trainer, sampling_probs, task_for_step  # noqa: F401 (re-exported)
from xtreme_jax.validation import Validator, dev_features, dev_line, dev_score, score_text  # noqa: F401
from xtreme_jax.workdir import RunDir, damaged_final

log = logging.getLogger(__name__)


class Preempted(SystemExit):
    def __init__(self, step):
        super().__init__(0)
        self.step = step


_SIGTERM = {"seen": False}


def _on_sigterm(signum, frame):
    _SIGTERM["seen"] = True


@dataclasses.dataclass
class Hook:
    """`fn(step)` after every `every`-th step (0: never) and, with `at_end`, after the last one."""
    every: int
    fn: Callable
    at_end: bool = True

    def due(self, step: int, end: bool) -> bool:
        return bool(self.every and step % self.every == 0) or (self.at_end and end)


@dataclasses.dataclass
class Progress:
    """What the checkpoint carries besides the state (its `meta`), so a resumed run goes on
    with the same best model, patience count and non-finite count."""
    best_score: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    skipped: int = 0                 # non-finite steps skipped (nonfinite="skip")
    stop_reason: str = "num_steps"   # an early stop already checkpointed stays stopped
    last_log: dict = dataclasses.field(default_factory=dict)
    data_fingerprint: str = ""       # trainer.data_fingerprint of the data these steps trained on

    @classmethod
    def from_meta(cls, meta: dict) -> "Progress":
        return cls(**{f.name: meta[f.name] for f in dataclasses.fields(cls) if f.name in meta})

    def meta(self) -> dict:
        out = {"best_score": self.best_score, "bad_evals": self.bad_evals, "skipped": self.skipped}
        if self.best_step is not None:
            out["best_step"] = self.best_step
        if self.stop_reason != "num_steps":
            out["stop_reason"] = self.stop_reason
        if self.last_log:
            out["last_log"] = self.last_log
        if self.data_fingerprint:
            out["data_fingerprint"] = self.data_fingerprint
        return out


def train_phase(name: str, pcfg, context, init: Handoff | None) -> tuple[dict, Handoff]:
    """Runs (or resumes) one training phase from the weights `init` (None: the pretrained
    checkpoint, or random initialisation); returns (summary, the hand-off to the next phase:
    the model of the best validated step, else of the last). A phase that already finished
    (its summary.json exists) is not rerun: its final weights are loaded."""
    pdir = RunDir(context.workdir).phase(name)
    keep_heads = pcfg.keep_heads or name == "target"  # the target's heads are what evaluation scores
    done = pdir.summary()  # None: not finished; damaged: an error naming the file
    if done is not None:
        log.info("phase %s already finished; reusing %s", name, pdir.summary_file)
        try:
            return done, Handoff.load(pdir.path, context.model_cfg, context.mesh, keep_heads=keep_heads)
        except Exception as e:  # noqa: BLE001  orbax raises many kinds; say which file and what to do
            raise damaged_final(pdir.path, e) from e

    tr = build_trainer(pcfg, context, init)
    if tr.no_dev and tr.validating:
        log.warning("[%s] no dev data for %s; validation skips it", name, "; ".join(tr.no_dev))
    elif tr.no_dev:  # said once: the model handed on is then the last step's, not a validated best
        log.warning("[%s] no dev data (%s): no validation or early stopping; training all %d steps and "
                    "handing on the model of the last step", name, "; ".join(tr.no_dev), pcfg.num_steps)
    run = _Run(name, pcfg, context, tr, pdir)
    step = run.loop()
    return run.hand_off(step, keep_heads)


def _check_same_data(name, progress, tr, pdir, step):
    """A resume continues on the data the checkpoint trained on, or not at all: a training file
    changed between a kill and the rerun would otherwise give half old, half new data. (A
    checkpoint from before the fingerprint existed carries none and is not checked.)"""
    if progress.data_fingerprint and progress.data_fingerprint != tr.data_fingerprint:
        raise ConfigError(
            f"the training data of phase {name} changed since its checkpoint at step {step} in "
            f"{pdir.checkpoints} was written (a data file's size or modification time, or the example "
            "count, differs); resuming would train on a mix of old and new data. Restore the old files "
            f"to resume, or delete {pdir.path} to train the phase anew on the new data (or use another "
            "--workdir)")


class _Run:
    """One phase's loop: the trainer, its checkpointer and metrics log, and the hooks."""

    def __init__(self, name, pcfg, context, tr, pdir):
        self.name, self.pcfg, self.context, self.tr, self.pdir = name, pcfg, context, tr, pdir
        # ---- resume (only committed checkpoints; a damaged latest step falls back to an older one)
        self.ckpt = ckpt_lib.Checkpointer(pdir.checkpoints, keep=pcfg.keep)
        for d in (pdir.path, pdir.best):  # tmp dirs of a best/ or final/ save that was killed
            ckpt_lib.remove_tmp_dirs(d)
        self.start, self.progress = 0, Progress()
        restored = self.ckpt.restore(ckpt_lib.abstract_like(tr.state), tr.data_state)
        if restored is not None:
            self.start, tr.state, meta = restored
            self.progress = Progress.from_meta(meta)
            _check_same_data(name, self.progress, tr, pdir, self.start)
            log.info("phase %s: resumed from step %d", name, self.start)
            print(f"[{name}] resumed from step {self.start}", flush=True)
        self.progress.data_fingerprint = tr.data_fingerprint
        self.saved_step = self.start if restored is not None else None
        self.best_of = {self.start: self.progress.best_step} if restored is not None else {}  # ckpt step -> its best

    # ---- hooks
    def save(self, step, force=False):
        self.flush()  # metrics (and the non-finite check) always precede a save
        self.ckpt.save(step, self.tr.state, self.tr.data_state, self.progress.meta(), force=force)
        self.saved_step, self.best_of[step] = step, self.progress.best_step
        prune_best(self.pdir.best, self.ckpt, self.best_of, self.progress.best_step)

    def validate(self, step):
        results = self.tr.validator(self.tr.state, self.tr.entries)
        score, p = dev_score(results), self.progress
        self.metrics.write(step, {f"dev/{k}/{m}": v for k, r in results.items() for m, v in r.items()}
                           | {"dev/score": score})
        if not np.isfinite(score):  # never a "best": nothing could ever beat it
            log.warning("[%s] dev score at step %d is %s; not counted", self.name, step, score)
        elif p.best_score is None or score > p.best_score:
            # A new directory per best step: a kill mid-write never destroys the best that
            # the committed checkpoints refer to (pruned once no checkpoint needs it).
            save_model(self.pdir.best_step_dir(step), self.tr.state["model"])
            p.best_score, p.best_step, p.bad_evals = score, step, 0
        else:
            p.bad_evals += 1
        if jax.process_index() == 0:
            self.bar.write(dev_line(self.name, step, results, score, p.best_score, p.best_step))
        if self.pcfg.patience and p.bad_evals >= self.pcfg.patience:
            p.stop_reason = f"early stop at step {step} (best {score_text(p.best_score)} at step {p.best_step})"

    def check_preemption(self, step):
        # Every process calls reached_preemption at every step (a run-global step number).
        if _SIGTERM["seen"] or self.ckpt.reached_preemption(self.sync_offset + step):
            self.flush()
            if self.saved_step != step:
                self.save(step, force=True)
            self.ckpt.wait()  # committed before we say so
            print(f"preempted at step {step}", flush=True)
            raise Preempted(step)

    def flush(self):
        if self.pending:
            self.t_last = self.log_steps(self.pending, self.t_last, self.pending[-1][0] + 1 - self.last_fetch)
            self.last_fetch, self.pending = self.pending[-1][0] + 1, []

    def log_steps(self, pending, t_last, n_steps):
        """Fetches the device metrics of the last steps (the only host sync in the loop)."""
        pcfg, p = self.pcfg, self.progress
        fetched = jax.device_get([m for _, m, _ in pending])
        now = time.perf_counter()
        for (step, _, _), m in zip(pending, fetched):
            if not bool(m["finite"]):
                if pcfg.nonfinite == "stop":
                    raise FloatingPointError(
                        f"non-finite loss or gradients at step {step + 1} (loss={float(m['loss'])}, "
                        f"grad_norm={float(m['grad_norm'])}); the update was not applied and the last "
                        f"good checkpoint is kept. Lower the learning rate (lr), check the data, or set "
                        f"nonfinite='skip' to skip such steps")
                p.skipped += 1
                log.warning("non-finite loss or gradients at step %d (loss=%s, grad_norm=%s): update skipped "
                            "(nonfinite='skip'; %d skipped so far)", step + 1, float(m["loss"]),
                            float(m["grad_norm"]), p.skipped)
        dt = max(now - t_last, 1e-9)
        tokens = sum(int(m["tokens"]) for m in fetched)
        processed = sum(s * pcfg.batch_size for _, _, s in pending)
        flops = sum(flops_per_token(self.context.model_cfg, s) * s * pcfg.batch_size for _, _, s in pending)
        last = fetched[-1]
        record = {"loss": float(np.mean([float(m["loss"]) for m in fetched])),
                  "grad_norm": float(last["grad_norm"]), "lr": float(last.get("lr", 0.0)),
                  "tokens_per_s": tokens / dt, "processed_tokens_per_s": processed / dt,
                  "mfu": flops / dt / self.peak, "steps_per_s": n_steps / dt}
        p.last_log = record
        self.metrics.write(pending[-1][0] + 1, record)
        self.bar.set_postfix(loss=f"{record['loss']:.4f}", mfu=f"{record['mfu']:.1%}")
        return now

    # ---- the loop
    def loop(self) -> int:
        pcfg, tr, mesh = self.pcfg, self.tr, self.context.mesh
        self.metrics = MetricsLog(self.pdir.metrics)
        self.peak = peak_flops_per_device() * jax.device_count()
        self.bar = tqdm(total=pcfg.num_steps, initial=self.start, desc=self.name,
                        disable=jax.process_index() != 0, dynamic_ncols=True)
        self.pending, self.last_fetch, self.t_last = [], self.start, time.perf_counter()
        self.sync_offset = _step_offset(self.context.config, self.name)
        hooks = [Hook(pcfg.log_every, lambda s: self.flush()),
                 Hook(pcfg.eval_every if tr.validating else 0, self.validate, at_end=tr.validating),
                 Hook(pcfg.save_every, self.save),
                 Hook(1, self.check_preemption)]
        # Preemption notice: one process catches SIGTERM itself. With jax.distributed, JAX's preemption
        # sync manager owns SIGTERM (a Python handler would replace it and the processes could no
        # longer agree on a step), and `reached_preemption` returns True on every process at once.
        own_sigterm = _is_main_thread() and not jax.distributed.is_initialized()
        prev_handler = signal.signal(signal.SIGTERM, _on_sigterm) if own_sigterm else None
        step, failed = self.start, True  # failed until the loop ends normally: then closing the log may raise
        try:
            while step < pcfg.num_steps and self.progress.stop_reason == "num_steps":
                i, host_batch = tr.next_batch(step)
                batch = sharding.device_batch(host_batch, mesh)
                tr.state, m = tr.steps[tr.entries[i].head](tr.state, batch, jax.random.fold_in(tr.rng, step))
                self.pending.append((step, m, host_batch["input_ids"].shape[-1]))
                step += 1
                self.bar.update(1)
                for hook in hooks:  # `end` read anew for each: validation may stop the phase early
                    if hook.due(step, step == pcfg.num_steps or self.progress.stop_reason != "num_steps"):
                        hook.fn(step)
            self.ckpt.wait()
            failed = False
        except FloatingPointError as e:
            # The failing step was never saved; let the last good save finish committing, then say which.
            self.ckpt.wait()
            good = self.ckpt.latest_step()
            raise FloatingPointError(f"[{self.name}] {e}. Last good checkpoint: "
                                     f"{'step ' + str(good) if good is not None else 'none'} in "
                                     f"{self.ckpt.directory}") from None
        except (Preempted, ckpt_lib.CheckpointError):
            raise
        except BaseException:
            # Other errors (interrupt, data error): let an in-flight save commit so the restart loses
            # as little as possible. Not with several processes: a peer may be dead and the save's
            # barriers would hang instead of failing fast.
            if jax.process_count() == 1:
                try:
                    self.ckpt.wait()
                except ckpt_lib.CheckpointError as e2:
                    log.error("%s", e2)
            raise
        finally:
            self.bar.close()
            self.metrics.close(quiet=failed)  # never masks the error that stopped the loop
            if prev_handler is not None:
                signal.signal(signal.SIGTERM, prev_handler)
            _SIGTERM["seen"] = False
        self.ckpt.close()
        return step

    # ---- hand off: the best validated model if there is one, else the last
    def hand_off(self, step, keep_heads):
        name, pdir, p, tr = self.name, self.pdir, self.progress, self.tr
        model_state = tr.state["model"]
        if p.best_score is not None:
            best_path = pdir.best_step_dir(p.best_step)
            if not epath.Path(best_path).is_dir():  # never hand on the last model in place of a lost best
                raise ckpt_lib.CheckpointError(
                    f"the best model of phase {name} (step {p.best_step}) is missing from {best_path}; "
                    f"delete {pdir.path} to retrain the phase")
            model_state = restore_model(best_path, model_state)
        save_model(pdir.final, model_state)
        prune_best(pdir.best, None, {}, p.best_step)
        heads = tr.heads
        handoff = Handoff.from_model(name, model_state, heads, sorted(heads) if keep_heads else [])
        if self.pcfg.export_hf:
            export_hf(self.context, os.path.join(pdir.path, "hf"), model_state, heads)
        validating = tr.validating
        summary = {"phase": name, "steps": int(step), "stop_reason": p.stop_reason, "heads": heads,
                   "handoff_heads": sorted(handoff.heads),
                   "best_dev_score": p.best_score, "best_step": p.best_step,
                   "validation": "dev" if validating else ("none: " + "; ".join(tr.no_dev) if tr.no_dev else "off"),
                   "skipped_nonfinite_steps": p.skipped, "mfu_peak": peak_description(), **p.last_log}
        if jax.process_index() == 0:
            write_json(os.fspath(pdir.summary_file), summary)
        return summary, handoff


def _step_offset(config, name) -> int:
    """Training steps of the phases before `name`: the preemption sync point needs a step number
    that grows over the whole process, across phases."""
    offset = 0
    for p in [p.strip() for p in config.phases.split(",")]:
        if p == name:
            break
        if p != "evaluate":
            offset += config[p].num_steps
    return offset


def _is_main_thread():
    return threading.current_thread() is threading.main_thread()
