"""Validation inside a training phase: each task entry's English dev subset, its loss and its
accuracy, and the phase's dev score (the mean accuracy) that picks the model handed on.

Accuracy per head (`heads.*.correct`): argmax == label for classification, multiple choice and
tagging; for span (extractive QA) both boundaries exact, argmax start == gold start and argmax
end == gold end (a cheap EM proxy, computed in the jitted forward). So the dev score is an
accuracy in [0, 1] for every validated task kind.
"""
from __future__ import annotations

import grain
import jax
import numpy as np
from flax import nnx

from xtreme_jax import sharding
from xtreme_jax.data.errors import DataError
from xtreme_jax.data.input_pipeline import make_eval_batches


def shard_options():
    """This process's share of a dataset (grain), for training and validation alike."""
    return grain.sharding.ShardOptions(shard_index=jax.process_index(), shard_count=jax.process_count(),
                                       drop_remainder=True)


class Validator:
    """Loss and accuracy of each entry on its English dev subset (jitted, one per head and shape)."""

    def __init__(self, graphdef, mesh, batch_size):
        self.graphdef, self.mesh, self.batch_size = graphdef, mesh, batch_size
        self._fn = jax.jit(self._eval, static_argnums=(1,))

    def _eval(self, state, head, batch):
        model = nnx.merge(self.graphdef, state).model
        logits = model.logits(head, batch)
        total, count = model.heads[head].loss(logits, batch)
        return total, count, model.heads[head].correct(logits, batch)

    def __call__(self, state, entries) -> dict:
        out = {}
        for e in entries:
            if e.dev is None:
                continue
            sums = np.zeros(3)
            for batch in make_eval_batches(e.dev, global_batch_size=self.batch_size,
                                           shard_options=shard_options()):
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


def dev_line(name, step, results, score, best_score, best_step) -> str:
    parts = [f"{k} " + " ".join(f"{m} {100 * v:.2f}%" if m == "accuracy" else f"{m} {v:.4f}"
                                for m, v in r.items()) for k, r in results.items()]
    best = " (new best)" if best_step == step else f" (best {score_text(best_score)} at step {best_step})"
    return f"[{name}] step {step} dev: {'; '.join(parts)} -> score {score_text(score)}{best}"
