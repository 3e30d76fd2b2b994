"""The evaluator: every language of a task in one compiled forward.

For one task, the features of all its languages are concatenated into one stream, sorted by
length and cut into batches of a fixed global size whose length is one of a few buckets
(`xtreme_jax.data.input_pipeline.make_eval_batches`). One jitted forward per task runs that
stream, so the number of compilations equals the number of buckets, whatever the number of
languages. Rows carry their set (`meta_set_index`: which EvalSet, i.e. language / split) and row
number (`meta_feature_index`), so the outputs are taken apart again on the host, decoded per
language (evaluation/decoding.py, or a retrieval scorer: evaluation/retrieval.py) and scored
(evaluation/scores.py).

    ev = Evaluator(model, mesh, batch_size=64)
    sets = load_eval_sets("xnli", tokenizer, source, split="test")
    result = ev.evaluate_task("xnli", sets)
    result.scores          # {"de": {"accuracy": ...}, ...}
    EvalResults({"xnli": result}).write_submission("predictions/")

Multi-host: every host evaluates its slice of each global batch; the host-side outputs are
gathered with `process_allgather`, then every host decodes and scores everything.
"""
from __future__ import annotations

import collections
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from grain.sharding import ShardOptions
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P
from tqdm import tqdm

from xtreme_jax.data.batching import DEFAULT_BUCKETS
from xtreme_jax.data.input_pipeline import make_eval_batches
from xtreme_jax.evaluation.decoding import DECODERS
from xtreme_jax.evaluation.results import TaskResult, no_gold
from xtreme_jax.evaluation.retrieval import mean_layer, official_setting, score_retrieval
from xtreme_jax.evaluation.scores import score
from xtreme_jax.evaluation.sets import check_sets, main_split
from xtreme_jax.models.heads import ENCODER_KEYS, encode
from xtreme_jax.sharding import data_parallel_size, device_batch
from xtreme_jax.tasks import KINDS, get_task

N_BEST = 20
MAX_ANSWER_LENGTH = 30


def default_retrieval_layer(num_layers: int) -> int:
    """Tatoeba's official hidden_states index (0 = embeddings): 8 of 12, 14 of 24. Each retrieval
    task's own official layer and pooling: evaluation/retrieval.py (`official_setting`)."""
    return mean_layer(num_layers)


def retrieval_setting(task: str, num_layers: int, *choices) -> dict:
    """The one place retrieval settings are resolved: `choices` are (layer, pooling) pairs, most
    specific first (a task entry's, then config.evaluate's); an unset one (None / "") falls
    through to the next, and last to the task's official setting (evaluation/retrieval.py)."""
    official_layer, official_pooling = official_setting(task, num_layers)
    layer = next((c[0] for c in choices if c[0] is not None), official_layer)
    pooling = next((c[1] for c in choices if c[1]), official_pooling)
    if pooling not in ("mean", "cls"):
        raise ValueError(f"retrieval_pooling={pooling!r}; choose mean or cls")
    return {"retrieval_layer": resolve_layer(layer, num_layers), "retrieval_pooling": pooling,
            "retrieval_official": [official_layer, official_pooling], "num_layers": num_layers}


def resolve_layer(layer, num_layers: int) -> int:
    """Index into hidden_states (0 = embeddings, num_layers = last); negative counts from the end."""
    if layer is None:
        return default_retrieval_layer(num_layers)
    layer = int(layer)
    if layer < 0:
        layer += num_layers + 1
    if not 0 <= layer <= num_layers:
        raise ValueError(f"retrieval_layer={layer} is outside the encoder's hidden states: it has "
                         f"{num_layers} layers, so use 0 (embeddings) .. {num_layers} (last), or a "
                         f"negative index from the end")
    return layer


class Evaluator:
    """Runs tasks over all their languages with one compiled forward each.

    model: a TaskModel (or a TrainState, whose `.model` is used) with parameters already placed
    on `mesh` (e.g. from `train_step.create_model`). batch_size is the global batch size; it must
    split over the data-parallel devices and the hosts. heads: {task: head name} where the head
    trained for a task has another name (e.g. {"xnli": "mnli"}); default: the task's own name.
    """

    def __init__(self, model, mesh, *, batch_size: int = 64, buckets=DEFAULT_BUCKETS,
                 retrieval_layer=None, retrieval_pooling=None, heads=None, n_best: int = N_BEST,
                 max_answer_length: int = MAX_ANSWER_LENGTH, knn_chunk: int = 4096,
                 shard_index: int | None = None, shard_count: int | None = None,
                 allgather=None, prefetch: int = 8):
        self.mesh = mesh
        self.batch_size = int(batch_size)
        self.buckets = tuple(buckets) if buckets else None
        self.heads = dict(heads or {})
        self.n_best, self.max_answer_length, self.knn_chunk = n_best, max_answer_length, knn_chunk
        self.prefetch = prefetch
        self.shard_index = jax.process_index() if shard_index is None else int(shard_index)
        self.shard_count = jax.process_count() if shard_count is None else int(shard_count)
        self._allgather = allgather
        dp = data_parallel_size(mesh)
        if self.batch_size % dp or self.batch_size % self.shard_count:
            raise ValueError(f"eval batch_size={batch_size} must split evenly over the {dp} "
                             f"data-parallel devices and {self.shard_count} hosts; use a multiple "
                             f"of {np.lcm(dp, self.shard_count)}")
        self._fns = {}
        self.compiles = collections.Counter()   # traces (= compilations) per forward
        self.set_model(model)
        # retrieval_layer / retrieval_pooling: one setting for every retrieval task; None = each
        # task's official one. The attributes are what `run` uses by default (a retrieval task
        # without a scorer of its own: Tatoeba's official setting).
        self._retrieval = (retrieval_layer, retrieval_pooling or None)
        default = retrieval_setting("tatoeba", self.num_layers, self._retrieval)
        self.retrieval_layer, self.retrieval_pooling = default["retrieval_layer"], default["retrieval_pooling"]

    # --- model ---
    def set_model(self, model) -> None:
        """Evaluate another model (or newer parameters) of the same structure."""
        model = getattr(model, "model", model) if not hasattr(model, "encoder") else model
        self.num_layers = model.encoder.cfg.num_layers
        graphdef, state = nnx.split(model)
        if getattr(self, "graphdef", None) is not None and graphdef != self.graphdef:
            self._fns.clear()
        self.graphdef, self.state = graphdef, state

    @property
    def compile_count(self) -> int:
        return sum(self.compiles.values())

    def retrieval_setting(self, task: str, layer=None, pooling=None) -> dict:
        """The hidden state and pooling a retrieval task is embedded with: the given ones (a task
        entry's), else the Evaluator's (config.evaluate's), else the task's official ones."""
        return retrieval_setting(task, self.num_layers, (layer, pooling), self._retrieval)

    def _forward(self, kind: str, head: str, retrieval: tuple | None = None):
        output = KINDS[kind].output
        layer, pooling = retrieval or (self.retrieval_layer, self.retrieval_pooling)
        key = (kind, head if output != "embedding" else f"layer{layer}" + ("-cls" if pooling == "cls" else ""))
        if key in self._fns:
            return self._fns[key]
        graphdef, counter = self.graphdef, self.compiles

        def forward(state, batch):
            counter[key] += 1  # runs once per trace, i.e. once per compiled shape
            model = nnx.merge(graphdef, state)
            if output == "embedding":  # one layer's hidden states: mean over the mask, or the first token
                out = encode(model.encoder, batch, None, output_hidden_states=True)
                h = out.hidden_states[layer].astype(jnp.float32)
                if pooling == "cls":
                    return h[:, 0]
                mask = batch["attention_mask"][..., None].astype(jnp.float32)
                return (h * mask).sum(axis=1) / jnp.maximum(mask.sum(axis=1), 1.0)
            logits = model.logits(head, batch)
            if output == "argmax":
                return jnp.argmax(logits, axis=-1).astype(jnp.int32)
            return logits.astype(jnp.float32)

        rows = NamedSharding(self.mesh, P(("data", "fsdp")))
        self._fns[key] = jax.jit(forward, out_shardings=rows)
        return self._fns[key]

    # --- running a stream ---
    def _batches(self, features: list, buckets):
        return make_eval_batches(features, global_batch_size=self.batch_size, buckets=buckets,
                                 shard_options=ShardOptions(self.shard_index, self.shard_count),
                                 prefetch=self.prefetch)

    def _host_rows(self, out):
        if self.shard_count == 1 or jax.process_count() == 1:
            return np.asarray(out)
        return np.asarray(multihost_utils.global_array_to_host_local_array(
            out, self.mesh, P(("data", "fsdp"))))

    def run_local(self, kind: str, features: list, *, head: str = "", buckets="default",
                  stats: dict | None = None, retrieval: tuple | None = None, desc: str = "") -> dict:
        """This host's outputs for one stream over `features` (all sets of a task).

        Returns {"set": [R], "unit": [R], "values": fixed-width [R, ...] or flat token values
        [T, ...] in row order}; only real rows (no padding units).
        """
        buckets = self.buckets if buckets == "default" else buckets
        fn = self._forward(kind, head, retrieval)
        token_level = KINDS[kind].token_level
        set_ids, unit_ids, values = [], [], []
        pending = collections.deque()
        n_batches = processed = 0

        def take(meta, out):
            out = self._host_rows(out)
            keep = np.nonzero(meta["meta_feature_index"] >= 0)[0]
            sets, rows = meta["meta_set_index"][keep], meta["meta_feature_index"][keep]
            group = features[0].group
            set_ids.append(sets)
            unit_ids.append(rows // group)
            if token_level:
                values.append(out[0, :0])  # carries the trailing shape even with no real rows
                for b, s, r in zip(keep, sets, rows):
                    f = features[s]
                    n = int(f.row_splits[r + 1] - f.row_splits[r])
                    values.append(out[b, :n])
            else:
                values.append(out[keep])

        # Progress of the forward passes (a task over 100+ languages takes minutes), on process 0.
        bar = tqdm(desc=desc or "evaluate", unit=" batch", leave=False, dynamic_ncols=True,
                   disable=not desc or jax.process_index() != 0)
        for batch in self._batches(features, buckets):
            bar.update(1)
            meta = {k: np.asarray(batch[k]) for k in ("meta_set_index", "meta_feature_index")}
            dev = device_batch({k: v for k, v in batch.items() if k in ENCODER_KEYS}, self.mesh)
            pending.append((meta, fn(self.state, dev)))
            n_batches += 1
            processed += int(np.prod(batch["input_ids"].shape))
            if len(pending) > 2:  # keep the device busy while the host copies results out
                take(*pending.popleft())
        while pending:
            take(*pending.popleft())
        bar.close()
        if stats is not None:
            stats["batches"] = stats.get("batches", 0) + n_batches
            stats["processed_tokens_per_host"] = stats.get("processed_tokens_per_host", 0) + processed
        cat = lambda xs, dt, shape=(): np.concatenate(xs) if xs else np.zeros((0,) + shape, dt)  # noqa: E731
        return {"set": cat(set_ids, np.int32).astype(np.int32),
                "unit": cat(unit_ids, np.int32).astype(np.int32),
                "values": cat(values, np.float32)}

    def gather(self, local: dict) -> dict:
        """Every host's rows, concatenated (a no-op on one host)."""
        if self.shard_count == 1:
            return local
        return {k: allgather_concat(v, self._allgather) for k, v in local.items()}

    def run(self, kind: str, features: list, *, head: str = "", mode: str = "vectorized",
            stats: dict | None = None, retrieval: tuple | None = None, desc: str = "") -> list:
        """Per-set outputs over all hosts: a list (one entry per features) of per-unit outputs.

        mode "vectorized": one stream over all sets with length buckets; "naive": set after set,
        each padded to its max length (the baseline of benchmarks/eval_bench.py). `retrieval`:
        (hidden_states index, "mean" | "cls") of the embeddings; default the Evaluator's.
        """
        if mode == "vectorized":
            local = self.run_local(kind, features, head=head, stats=stats, retrieval=retrieval, desc=desc)
            return split_by_set(kind, features, self.gather(local))
        if mode != "naive":
            raise ValueError(f"mode must be 'vectorized' or 'naive', not {mode!r}")
        out = []
        for f in features:
            local = self.run_local(kind, [f], head=head, buckets=None, stats=stats, retrieval=retrieval)
            out += split_by_set(kind, [f], self.gather(local))
        return out

    # --- tasks ---
    def evaluate_task(self, task, sets: list, *, mode: str = "vectorized", head: str | None = None,
                      retrieval_layer=None, retrieval_pooling=None, progress: str = "") -> TaskResult:
        """Scores, predictions and info of `task` over its EvalSets (all languages at once).
        A retrieval task's layer and pooling: `retrieval_setting`; info records those used."""
        task = get_task(task)
        sets = list(sets)
        check_sets(task, sets)
        head = head or self.heads.get(task.name, task.name)
        before = self.compiles.copy()
        stats = {"input_prefix": sets[0].features.meta.get("input_prefix", "")}
        retrieval = None
        if not task.has_head:
            stats.update(self.retrieval_setting(task.name, retrieval_layer, retrieval_pooling))
            retrieval = (stats["retrieval_layer"], stats["retrieval_pooling"])
        t0 = time.perf_counter()
        outputs = self.run(task.kind, [s.features for s in sets], head=head, mode=mode, stats=stats,
                           retrieval=retrieval, desc=progress and f"{progress} forward")
        t1 = time.perf_counter()
        if task.has_head:
            scores, preds, info = {}, {}, {}
            langs = tqdm(list(zip(sets, outputs)), desc=f"{progress} decode + score", unit=" language",
                         leave=False, dynamic_ncols=True, disable=not progress or jax.process_index() != 0)
            for s, out in langs:
                langs.set_postfix_str(s.lang)
                p, gold = DECODERS[task.kind](s, out, n_best=self.n_best,
                                              max_answer_length=self.max_answer_length)
                preds[s.lang] = p
                if gold is not None:
                    scores[s.lang] = score(task, p, gold, s.lang)
                else:
                    info.setdefault("unscored", {})[s.lang] = no_gold(task.name, s.split, s.lang)
        else:  # no head: the encoder's embeddings are scored directly
            scores, preds, info = score_retrieval(task, sets, outputs, self.knn_chunk)
        t2 = time.perf_counter()
        info.update(stats, split=main_split(sets), mode=mode, buckets=list(self.buckets or ()),
                    forward_s=t1 - t0,
                    decode_s=t2 - t1, compiles=sum((self.compiles - before).values()),
                    languages=list(dict.fromkeys(s.lang for s in sets if s.split != "candidates")),
                    real_tokens=int(sum(s.features.row_splits[-1] for s in sets)))
        return TaskResult(task.name, scores, preds, info)


# ---------------------------------------------------------------------------- host-side helpers

def allgather_concat(x: np.ndarray, allgather=None) -> np.ndarray:
    """Concatenate every process's array along axis 0; the lengths may differ per process."""
    allgather = allgather or multihost_utils.process_allgather
    x = np.asarray(x)
    sizes = np.asarray(allgather(np.asarray([len(x)], np.int32))).reshape(-1)
    width = int(sizes.max())
    padded = np.zeros((width,) + x.shape[1:], x.dtype)
    padded[:len(x)] = x
    stacked = np.asarray(allgather(padded))
    return np.concatenate([stacked[p, :int(n)] for p, n in enumerate(sizes)])


def split_by_set(kind: str, features: list, rows: dict) -> list:
    """Gathered rows -> one entry per features: an array [units, ...] (fixed-width outputs) or a
    list of per-row arrays (tagging / span). Every unit must be present exactly once."""
    token_level = KINDS[kind].token_level
    sets, units, values = rows["set"], rows["unit"], rows["values"]
    if token_level:  # flat values: row j holds as many tokens as its features row
        lengths = [int(features[s].row_splits[u + 1] - features[s].row_splits[u])
                   for s, u in zip(sets, units)]
        cuts = np.cumsum([0] + lengths)
        if cuts[-1] != len(values):
            raise RuntimeError(f"{len(values)} token outputs for rows holding {cuts[-1]} tokens")
    out = []
    for s, f in enumerate(features):
        mine = np.nonzero(sets == s)[0]
        if token_level:
            per = [None] * f.num_units
            for j in mine:
                per[units[j]] = values[cuts[j]:cuts[j + 1]]
            missing = [u for u, v in enumerate(per) if v is None]
        else:
            per = np.zeros((f.num_units,) + values.shape[1:], values.dtype)
            seen = np.zeros(f.num_units, bool)
            per[units[mine]] = values[mine]
            seen[units[mine]] = True
            missing = np.nonzero(~seen)[0].tolist()
        if len(missing) or len(mine) != f.num_units:
            raise RuntimeError(f"evaluation stream lost or duplicated rows of set {s}: "
                               f"{len(mine)} outputs for {f.num_units} units, missing {missing[:5]}")
        out.append(per)
    return out
