"""One training phase (mlm / intermediate / target), readable top to bottom.

    data -> state (+ weights handed on) -> restore -> [sample task, step, log, validate, save] -> hand off

The loop delegates: checkpoints to xtreme_jax.checkpoint, metrics to xtreme_jax.metrics, the
step to xtreme_jax.train_step, weights in and out to xtreme_jax.handoff. Host syncs happen only
every `log_every` steps, at validation and at saves.
"""
import dataclasses
import logging
import os
import signal
import threading
import time

import grain
import jax
import jax.numpy as jnp
import numpy as np
from etils import epath
from flax import nnx

from tqdm import tqdm

from xtreme_jax import checkpoint as ckpt_lib
from xtreme_jax import optim, sharding, train_step
from xtreme_jax.checkpoint import prune_best, restore_model, save_model
from xtreme_jax.context import source
from xtreme_jax.data.errors import DataError
from xtreme_jax.data.features import subsample
from xtreme_jax.data.input_pipeline import make_eval_batches, make_train_iterator
from xtreme_jax.files import write_json
from xtreme_jax.handoff import Handoff, export_hf, init_weights
from xtreme_jax.metrics import MetricsLog, flops_per_token, peak_description, peak_flops_per_device
from xtreme_jax.tasks import get_task
from xtreme_jax.workdir import damaged_final, read_phase_summary

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Entry:
    """One task entry of a phase: its training data and the head it trains."""
    name: str
    head: str
    task: object        # the registry Task
    num_labels: int
    weight: float
    train: object
    dev: object | None


class Preempted(SystemExit):
    def __init__(self, step):
        super().__init__(0)
        self.step = step


_SIGTERM = {"seen": False}


def _on_sigterm(signum, frame):
    _SIGTERM["seen"] = True


def sampling_probs(sizes, sampler: str, temperature: float = 2.0, cap: int = 2 ** 14, weights=None):
    sizes = np.asarray(sizes, np.float64)
    if sampler == "uniform":
        p = np.ones_like(sizes)
    elif sampler == "proportional":
        p = sizes.copy()
    elif sampler == "capped_proportional":
        p = np.minimum(sizes, cap)
    else:  # temperature: p ~ n^(1/T)
        p = sizes ** (1.0 / temperature)
    p = p * (np.ones_like(p) if weights is None else np.asarray(weights, np.float64))
    return p / p.sum()


def task_for_step(seed: int, step: int, probs) -> int:
    """Stateless choice, so a resumed run draws exactly the same task sequence."""
    return int(np.random.default_rng([seed, step, 7]).choice(len(probs), p=probs))


class Validator:
    """Loss and accuracy of each entry on its English dev subset (jitted, one per head and shape)."""

    def __init__(self, graphdef, mesh, batch_size):
        self.graphdef, self.mesh, self.batch_size = graphdef, mesh, batch_size
        self._fn = jax.jit(self._eval, static_argnums=(1,))

    def _eval(self, state, head, batch):
        model = nnx.merge(self.graphdef, state).model
        logits = model.logits(head, batch)
        total, count = model.heads[head].loss(logits, batch)
        labels = batch.get("labels")
        if labels is None or logits.ndim == labels.ndim:  # span / no labels: loss only
            return total, count, jnp.zeros((), jnp.int32)
        correct = jnp.sum((jnp.argmax(logits, -1) == labels) & (labels >= 0))
        return total, count, correct

    def __call__(self, state, entries) -> dict:
        out = {}
        for e in entries:
            if e.dev is None:
                continue
            sums = np.zeros(3)
            for batch in make_eval_batches(e.dev, global_batch_size=self.batch_size,
                                           shard_options=_shard_options()):
                r = self._fn(state, e.head, sharding.device_batch(batch, self.mesh))
                sums += np.array([float(x) for x in r])
            count = max(sums[1], 1)
            res = {"loss": sums[0] / count}
            if e.task.family.dev_accuracy:
                res["accuracy"] = sums[2] / count
            out[e.name] = res
        return out


# Reasons a dev set is "not there" (validation then skips it); any other problem with a dev file
# that exists (not UTF-8, bad records) is an error naming it, as for training data.
_ABSENT = ("missing_file", "missing_split", "offline", "empty", "unknown_language")


def dev_features(context, task, t, max_examples):
    """(the first `max_examples` of the entry's dev set, ""), or (None, why there is none)."""
    if "dev" not in task.splits:
        return None, f"task {t.name!r} has no dev split"
    if not task.family.validated:
        return None, ""  # by design (e.g. MLM, retrieval): watched by its loss, nothing to say
    try:
        dev = context.features(task, "dev", t.lang, t.source, t.max_length)
    except DataError as e:
        if e.reason in _ABSENT:
            return None, str(e)
        raise
    except FileNotFoundError as e:
        return None, str(e)
    except OSError as e:  # exists but cannot be read (permissions, a directory, I/O error)
        raise DataError(f"the dev data of task {t.name!r} cannot be read ({type(e).__name__}: "
                        f"{e.strerror or e})", file=e.filename, reason="unreadable",
                        fix="make it readable, or remove it to train without validation") from None
    return dev.select_examples(np.arange(min(max_examples, dev.num_examples))), ""


def dev_score(results: dict) -> float:
    """Mean dev accuracy over entries (negative loss where a task has no accuracy)."""
    vals = [r.get("accuracy", -r["loss"]) for r in results.values()]
    return float(np.mean(vals)) if vals else float("nan")


def score_text(score) -> str:
    """A dev score for people: accuracy in percent, or the loss where the task has no accuracy
    (dev_score is then the negative loss)."""
    if score is None or not np.isfinite(score):
        return str(score)
    return f"{100 * score:.2f}%" if score >= 0 else f"loss {-score:.4f}"


def _dev_line(name, step, results, score, meta) -> str:
    parts = [f"{k} " + " ".join(f"{m} {100 * v:.2f}%" if m == "accuracy" else f"{m} {v:.4f}"
                                for m, v in r.items()) for k, r in results.items()]
    best = " (new best)" if meta.get("best_step") == step else (
        f" (best {score_text(meta.get('best_score'))} at step {meta.get('best_step')})")
    return f"[{name}] step {step} dev: {'; '.join(parts)} -> score {score_text(score)}{best}"


def _shard_options():
    return grain.sharding.ShardOptions(shard_index=jax.process_index(), shard_count=jax.process_count(),
                                       drop_remainder=True)


def train_phase(name: str, pcfg, context, init: Handoff | None) -> tuple[dict, Handoff]:
    """Runs (or resumes) one training phase from the weights `init` (None: the pretrained
    checkpoint, or random initialisation); returns (summary, the hand-off to the next phase:
    the model of the best validated step, else of the last). A phase that already finished
    (its summary.json exists) is not rerun: its final weights are loaded."""
    config = context.config
    pdir = os.path.join(context.workdir, name)  # os.path.join keeps gs://bucket/x intact
    done_file = epath.Path(pdir, "results", "summary.json")
    keep_heads = pcfg.keep_heads or name == "target"  # the target's heads are what evaluation scores
    done = read_phase_summary(pdir)  # None: not finished; damaged: an error naming the file
    if done is not None:
        log.info("phase %s already finished; reusing %s", name, done_file)
        try:
            return done, Handoff.load(pdir, context.model_cfg, context.mesh, keep_heads=keep_heads)
        except Exception as e:  # noqa: BLE001  orbax raises many kinds; say which file and what to do
            raise damaged_final(pdir, e) from e

    # ---- data: English training entries (+ translated / MLM entries with their own weights)
    entries, no_dev = [], []
    for i, t in enumerate(pcfg.tasks):
        task = get_task(t.name)
        train_f = context.features(task, t.split, t.lang, t.source, t.max_length)
        if t.max_examples or t.fraction:
            train_f = subsample(train_f, count=t.max_examples or None, fraction=t.fraction or None,
                                seed=config.seed)
        label = t.name if t.lang == "en" else f"{t.name}.{t.lang}"
        dev_f, why = dev_features(context, task, t, pcfg.eval_examples) if pcfg.eval_every else (None, "")
        if why:
            no_dev.append(f"{label}: {why}")
        entries.append(Entry(label, t.head or t.name, task, task.num_labels(source(t.source)), t.weight,
                             train_f, dev_f))
    validating = bool(pcfg.eval_every) and any(e.dev is not None for e in entries)
    if no_dev and validating:
        log.warning("[%s] no dev data for %s; validation skips it", name, "; ".join(no_dev))
    elif no_dev:  # said once: the model handed on is then the last step's, not a validated best
        log.warning("[%s] no dev data (%s): no validation or early stopping; training all %d steps and "
                    "handing on the model of the last step", name, "; ".join(no_dev), pcfg.num_steps)
    heads = {e.head: (e.task.kind, e.num_labels) for e in entries}
    probs = sampling_probs([e.train.num_examples for e in entries], pcfg.sampler, pcfg.temperature,
                           pcfg.cap, [e.weight for e in entries])

    # ---- state, directly sharded; weights from the previous phase or the pretrained checkpoint
    opt_args = dict(lr=pcfg.lr, total_steps=pcfg.num_steps, warmup=pcfg.warmup, weight_decay=pcfg.weight_decay,
                    b1=pcfg.b1, b2=pcfg.b2, eps=pcfg.eps, clip=pcfg.clip, layer_decay=pcfg.layer_decay or None,
                    num_layers=context.model_cfg.num_layers)
    tx, sched = optim.make_optimizer(**opt_args)
    rows = pcfg.get("embedding_update", "dense") == "rows"
    graphdef, state, shardings = train_step.create_state(context.model_cfg, heads, tx, context.mesh,
                                                         seed=config.seed, row_embeddings=rows)
    init_weights(state["model"], heads, context, init)
    grad_dtype = jnp.bfloat16 if config.model.get("bf16_grads", False) else None
    row_update = optim.make_row_update(**opt_args) if rows else None
    steps = {h: train_step.make_train_step(graphdef, shardings, h, sched, pcfg.accum_steps, grad_dtype,
                                           row_update=row_update)
             for h in heads}
    iters = [make_train_iterator(e.train, global_batch_size=pcfg.batch_size, seed=config.seed + i,
                                 buckets=config.data.buckets, packing=pcfg.packing,
                                 shard_options=_shard_options(), num_threads=config.data.num_threads,
                                 mlm_probability=pcfg.get("mlm_probability", 0.15))
             for i, e in enumerate(entries)]
    data_state = {f"data_{i}": it for i, it in enumerate(iters)}
    rng = jax.random.key(config.seed)

    # ---- resume (only committed checkpoints; a damaged latest step falls back to an older one)
    ckpt = ckpt_lib.Checkpointer(os.path.join(pdir, "checkpoints"), keep=pcfg.keep)
    best_dir = os.path.join(pdir, "best")
    for d in (pdir, best_dir):  # tmp dirs of a best/ or final/ save that was killed
        ckpt_lib.remove_tmp_dirs(d)
    start, meta = 0, {"best_score": None, "bad_evals": 0, "skipped": 0}
    restored = ckpt.restore(ckpt_lib.abstract_like(state), data_state)
    if restored is not None:
        start, state, meta = restored
        log.info("phase %s: resumed from step %d", name, start)
        print(f"[{name}] resumed from step {start}", flush=True)
    saved_step = start if restored is not None else None
    best_of = {start: meta.get("best_step")} if restored is not None else {}  # ckpt step -> its best

    def save(step, force=False):
        nonlocal saved_step
        ckpt.save(step, state, data_state, meta, force=force)
        saved_step, best_of[step] = step, meta.get("best_step")
        prune_best(best_dir, ckpt, best_of, meta.get("best_step"))

    # ---- loop
    validator = Validator(graphdef, context.mesh, pcfg.batch_size)
    metrics_log = MetricsLog(os.path.join(pdir, "metrics"))
    peak = peak_flops_per_device() * jax.device_count()
    bar = tqdm(total=pcfg.num_steps, initial=start, desc=name, disable=jax.process_index() != 0,
               dynamic_ncols=True)
    pending, last_fetch, t_last = [], start, time.perf_counter()
    # Preemption notice: one process catches SIGTERM itself. With jax.distributed, JAX's preemption
    # sync manager owns SIGTERM (a Python handler would replace it and the processes could no
    # longer agree on a step), and `reached_preemption` returns True on every process at once.
    own_sigterm = _is_main_thread() and not jax.distributed.is_initialized()
    prev_handler = signal.signal(signal.SIGTERM, _on_sigterm) if own_sigterm else None
    sync_offset = _step_offset(config, name)
    stop_reason = meta.get("stop_reason", "num_steps")  # an early stop already checkpointed stays stopped
    step = start
    failed = True  # until the loop ends normally: then closing the metrics log may raise
    try:
        while step < pcfg.num_steps and stop_reason == "num_steps":
            i = task_for_step(config.seed, step, probs)
            host_batch = next(iters[i])
            batch = sharding.device_batch(host_batch, context.mesh)
            state, m = steps[entries[i].head](state, batch, jax.random.fold_in(rng, step))
            pending.append((step, m, host_batch["input_ids"].shape[-1]))
            step += 1
            bar.update(1)
            last = step == pcfg.num_steps
            if step % pcfg.log_every == 0 or last:
                t_last = _log(pending, metrics_log, meta, pcfg, context.model_cfg, peak, t_last, bar, step - last_fetch)
                pending, last_fetch = [], step
            if validating and (step % pcfg.eval_every == 0 or last):
                results = validator(state, entries)
                score = dev_score(results)
                metrics_log.write(step, {f"dev/{k}/{m_}": v for k, r in results.items() for m_, v in r.items()}
                                  | {"dev/score": score})
                if not np.isfinite(score):  # never a "best": nothing could ever beat it
                    log.warning("[%s] dev score at step %d is %s; not counted", name, step, score)
                elif meta["best_score"] is None or score > meta["best_score"]:
                    # A new directory per best step: a kill mid-write never destroys the best that
                    # the committed checkpoints refer to (pruned once no checkpoint needs it).
                    save_model(os.path.join(best_dir, str(step)), state["model"])
                    meta.update(best_score=score, best_step=step, bad_evals=0)
                else:
                    meta["bad_evals"] += 1
                if jax.process_index() == 0:
                    bar.write(_dev_line(name, step, results, score, meta))
                if pcfg.patience and meta["bad_evals"] >= pcfg.patience:
                    stop_reason = (f"early stop at step {step} (best {score_text(meta['best_score'])} "
                                   f"at step {meta['best_step']})")
                    meta["stop_reason"] = stop_reason
            if step % pcfg.save_every == 0 or last or stop_reason != "num_steps":
                if pending:  # metrics (and the non-finite check) always precede a save
                    t_last = _log(pending, metrics_log, meta, pcfg, context.model_cfg, peak, t_last, bar, step - last_fetch)
                    pending, last_fetch = [], step
                save(step)
            # Every process calls reached_preemption at every step (a run-global step number).
            if _SIGTERM["seen"] or ckpt.reached_preemption(sync_offset + step):
                if pending:
                    _log(pending, metrics_log, meta, pcfg, context.model_cfg, peak, t_last, bar, step - last_fetch)
                if saved_step != step:
                    save(step, force=True)
                ckpt.wait()  # committed before we say so
                print(f"preempted at step {step}", flush=True)
                raise Preempted(step)
        ckpt.wait()
        failed = False
    except FloatingPointError as e:
        # The failing step was never saved; let the last good save finish committing, then say which.
        ckpt.wait()
        good = ckpt.latest_step()
        raise FloatingPointError(f"[{name}] {e}. Last good checkpoint: "
                                 f"{'step ' + str(good) if good is not None else 'none'} in {ckpt.directory}") from None
    except (Preempted, ckpt_lib.CheckpointError):
        raise
    except BaseException:
        # Other errors (interrupt, data error): let an in-flight save commit so the restart loses
        # as little as possible. Not with several processes: a peer may be dead and the save's
        # barriers would hang instead of failing fast.
        if jax.process_count() == 1:
            try:
                ckpt.wait()
            except ckpt_lib.CheckpointError as e2:
                log.error("%s", e2)
        raise
    finally:
        bar.close()
        metrics_log.close(quiet=failed)  # never masks the error that stopped the loop
        if prev_handler is not None:
            signal.signal(signal.SIGTERM, prev_handler)
        _SIGTERM["seen"] = False
    ckpt.close()

    # ---- hand off: the best validated model if there is one, else the last
    final_dir = os.path.join(pdir, "final")
    model_state = state["model"]
    if meta.get("best_score") is not None:
        best_path = os.path.join(best_dir, str(meta["best_step"]))
        if not epath.Path(best_path).is_dir():  # never hand on the last model in place of a lost best
            raise ckpt_lib.CheckpointError(
                f"the best model of phase {name} (step {meta['best_step']}) is missing from {best_path}; "
                f"delete {pdir} to retrain the phase")
        model_state = restore_model(best_path, model_state)
    save_model(final_dir, model_state)
    prune_best(best_dir, None, {}, meta.get("best_step"))
    handoff = Handoff.from_model(name, model_state, heads, sorted(heads) if keep_heads else [])
    if pcfg.export_hf:
        export_hf(context, os.path.join(pdir, "hf"), model_state, heads)
    summary = {"phase": name, "steps": int(step), "stop_reason": stop_reason, "heads": heads,
               "handoff_heads": sorted(handoff.heads),
               "best_dev_score": meta.get("best_score"), "best_step": meta.get("best_step"),
               "validation": "dev" if validating else ("none: " + "; ".join(no_dev) if no_dev else "off"),
               "skipped_nonfinite_steps": meta.get("skipped", 0), "mfu_peak": peak_description(),
               **meta.get("last_log", {})}
    if jax.process_index() == 0:
        write_json(os.fspath(done_file), summary)
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


def _log(pending, metrics_log, meta, pcfg, model_cfg, peak, t_last, bar, n_steps):
    """Fetches the device metrics of the last steps (the only host sync in the loop)."""
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
            meta["skipped"] = meta.get("skipped", 0) + 1
            log.warning("non-finite loss or gradients at step %d (loss=%s, grad_norm=%s): update skipped "
                        "(nonfinite='skip'; %d skipped so far)", step + 1, float(m["loss"]),
                        float(m["grad_norm"]), meta["skipped"])
    dt = max(now - t_last, 1e-9)
    tokens = sum(int(m["tokens"]) for m in fetched)
    processed = sum(s * pcfg.batch_size for _, _, s in pending)
    flops = sum(flops_per_token(model_cfg, s) * s * pcfg.batch_size for _, _, s in pending)
    last = fetched[-1]
    record = {"loss": float(np.mean([float(m["loss"]) for m in fetched])),
              "grad_norm": float(last["grad_norm"]), "lr": float(last.get("lr", 0.0)),
              "tokens_per_s": tokens / dt, "processed_tokens_per_s": processed / dt,
              "mfu": flops / dt / peak, "steps_per_s": n_steps / dt}
    meta["last_log"] = record
    metrics_log.write(pending[-1][0] + 1, record)
    bar.set_postfix(loss=f"{record['loss']:.4f}", mfu=f"{record['mfu']:.1%}")
    return now
