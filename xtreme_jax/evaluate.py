"""Vectorized zero-shot evaluation on every language of a task.

For one task, the features of all its languages are concatenated into one stream, sorted by
length and cut into batches of a fixed global size whose length is one of a few buckets
(`xtreme_jax.data.make_eval_batches`). One jitted forward per task runs that stream, so the
number of compilations equals the number of buckets, whatever the number of languages. Rows
carry their language (`meta_lang_id`) and row number (`meta_feature_index`), so the outputs are
taken apart again on the host, decoded per language and scored with `xtreme_jax.scoring`:

    classification / multiple choice   argmax of the logits
    tagging                            argmax per token, re-assembled into one tag per word
    span (QA)                          n-best spans per window, best span per example
    retrieval                          mean-pooled hidden states of one layer, then cosine
                                       search on device: tatoeba top-1, BUCC ratio-margin
                                       mining (k=4, threshold tuned on dev gold pairs),
                                       mewslix / lareqa mAP@20

    ev = Evaluator(model, mesh, batch_size=64)
    sets = load_eval_sets("xnli", tokenizer, source, split="test")
    result = ev.evaluate({"xnli": sets})
    result.scores          # {"xnli": {"de": {"accuracy": ...}, ...}}
    result.write_submission("predictions/")

Multi-host: every host evaluates its slice of each global batch; the host-side outputs are
gathered with `process_allgather`, then every host decodes and scores everything.

`benchmark_vs_naive` times this against the plain way: one language after another, each padded
to the task's max length.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from xtreme_jax import scoring
from xtreme_jax.data.batching import DEFAULT_BUCKETS
from xtreme_jax.data.features import Features
from xtreme_jax.models.heads import ENCODER_KEYS, encode
from xtreme_jax.scoring.submission import SUBMISSION_TASKS
from xtreme_jax.sharding import data_parallel_size, device_batch

log = logging.getLogger(__name__)

# Tasks that xtreme_jax.scoring.score_task knows by name; others are scored by `task.metric`.
OFFICIAL_TASKS = ("xnli", "pawsx", "xcopa", "udpos", "panx", "xquad", "mlqa", "tydiqa",
                  "bucc2018", "tatoeba", "mewslix", "lareqa")
N_BEST = 20
MAX_ANSWER_LENGTH = 30
BUCC_K = 4
MAP_K = 20


# ============================================================================ data for one task

@dataclasses.dataclass
class EvalSet:
    """One language (and split) of a task: raw examples and their features.

    `split="candidates"` marks the shared candidate set of mewslix (lang is then ignored).
    """
    lang: str
    examples: list
    features: Features
    split: str = "test"


def load_eval_sets(task, tokenizer, source, *, split: str = "test", languages=None,
                   cache_dir: str | None = None, max_length: int | None = None,
                   **featurize_opts) -> list:
    """EvalSets of every requested language of `task` (default: all the task's languages).

    bucc2018 loads both dev (to tune the mining threshold) and test; mewslix adds its
    candidate entities. With `cache_dir`, features come from the tokenize-once cache.
    """
    from xtreme_jax.data.cache import cached_features
    from xtreme_jax.tasks import get_task
    task = get_task(task) if isinstance(task, str) else task
    langs = list(languages or task.language_list(source))
    splits = ("dev", "test") if task.name == "bucc2018" else (split,)

    def one(sp, lang):
        examples = task.load_examples(sp, lang, source)
        if cache_dir:
            feats = cached_features(task, sp, lang, tokenizer, source=source, cache_dir=cache_dir,
                                    max_length=max_length, progress=False, **featurize_opts)
        else:
            feats = task.featurize(examples, tokenizer, max_length, lang=lang, split=sp,
                                   progress=False, **featurize_opts)
        return EvalSet(lang, examples, feats, task.check_split(sp))

    sets = [one(sp, lang) for sp in splits for lang in langs]
    if task.name == "mewslix":
        sets.append(one("candidates", langs[0]))
    return sets


# ============================================================================ results

@dataclasses.dataclass
class TaskResult:
    task: str
    scores: dict        # {lang: {metric: value}}; a language without gold labels is absent
    predictions: dict   # {lang: predictions in write_submission's shape}
    info: dict          # timings, compile count, batches, BUCC thresholds, ...


@dataclasses.dataclass
class EvalResults:
    tasks: dict         # {task: TaskResult}

    @property
    def scores(self) -> dict:
        return {t: r.scores for t, r in self.tasks.items()}

    @property
    def predictions(self) -> dict:
        return {t: r.predictions for t, r in self.tasks.items()}

    def aggregate(self, benchmark: str = "xtreme") -> dict:
        """Per-task averages, group and overall scores (evaluate.py's JSON layout)."""
        return scoring.aggregate({t: s for t, s in self.scores.items() if s}, benchmark)

    def write_submission(self, folder: str) -> list:
        """`folder/<task>/test-<lang>.<ext>` (local or gs://) for every leaderboard task evaluated on test."""
        paths = []
        for name, res in self.tasks.items():
            if name not in SUBMISSION_TASKS:
                continue
            if res.info.get("split") != "test":
                log.warning("%s was evaluated on %r, not test: no submission file written",
                            name, res.info.get("split"))
                continue
            for lang, preds in res.predictions.items():
                paths.append(scoring.write_submission(folder, name, lang, preds))
        return paths


# ============================================================================ retrieval math

def l2_normalize(x) -> np.ndarray:
    x = np.asarray(x, np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def _pow2_at_least(n: int, low: int, high: int) -> int:
    size = low
    while size < n and size < high:
        size *= 2
    return size


@functools.partial(jax.jit, static_argnames=("k",))
def _topk_block(q, db, db_valid, best_vals, best_idx, offset, k):
    """Merge the top-k of q @ db.T (invalid db rows excluded) into a running top-k."""
    sims = jnp.dot(q, db.T, precision=jax.lax.Precision.HIGHEST)
    sims = jnp.where(db_valid[None, :], sims, -jnp.inf)
    vals, idx = jax.lax.top_k(sims, k)
    vals = jnp.concatenate([best_vals, vals], axis=1)
    idx = jnp.concatenate([best_idx, idx + offset], axis=1)
    top, pos = jax.lax.top_k(vals, k)
    return top, jnp.take_along_axis(idx, pos, axis=1)


def knn(queries, database, k: int, *, chunk: int = 4096, device=None):
    """Top-k inner products of every query against the database, on device, in chunks.

    Returns (sims [n, k'], indices [n, k']) with k' = min(k, len(database)), best first. Rows are
    used as given: normalize them first for cosine similarity. Chunk shapes are powers of two,
    so the search compiles for a handful of shapes only.
    """
    queries = np.asarray(queries, np.float32)
    database = np.asarray(database, np.float32)
    n, m = len(queries), len(database)
    k_eff = min(k, m)
    if n == 0 or k_eff == 0:
        return np.zeros((n, k_eff), np.float32), np.zeros((n, k_eff), np.int64)
    device = device or jax.local_devices()[0]
    qc = _pow2_at_least(n, 256, chunk)
    dc = _pow2_at_least(m, max(256, k), chunk)
    db_blocks = []
    for s in range(0, m, dc):
        part = database[s:s + dc]
        block = np.zeros((dc, database.shape[1]), np.float32)
        block[:len(part)] = part
        valid = np.arange(dc) < len(part)
        db_blocks.append((jax.device_put(block, device), jax.device_put(valid, device), s))
    out_vals, out_idx = [], []
    for s in range(0, n, qc):
        part = queries[s:s + qc]
        q = np.zeros((qc, queries.shape[1]), np.float32)
        q[:len(part)] = part
        q = jax.device_put(q, device)
        vals = jax.device_put(np.full((qc, k), -np.inf, np.float32), device)
        idx = jax.device_put(np.zeros((qc, k), np.int32), device)
        for block, valid, offset in db_blocks:
            vals, idx = _topk_block(q, block, valid, vals, idx, np.int32(offset), k)
        out_vals.append(np.asarray(vals)[:len(part), :k_eff])
        out_idx.append(np.asarray(idx)[:len(part), :k_eff].astype(np.int64))
    return np.concatenate(out_vals), np.concatenate(out_idx)


def margin_mine(x, y, k: int = BUCC_K, **knn_kw):
    """Ratio-margin bitext mining (Artetxe & Schwenk 2019), 'max' retrieval as in XTREME/LASER.

    x, y: embeddings of the unique source and target sentences. The score of a pair is its cosine
    divided by the mean of the average cosine of each side's k nearest neighbours. Every source
    proposes its best target and every target its best source (among their k neighbours); the
    proposals are taken in order of score, each sentence at most once.
    Returns (src_index, trg_index, score) arrays, best first.
    """
    x, y = l2_normalize(x), l2_normalize(y)
    xy_sim, xy_idx = knn(x, y, k, **knn_kw)
    yx_sim, yx_idx = knn(y, x, k, **knn_kw)
    x_mean = xy_sim.astype(np.float64).mean(axis=1)
    y_mean = yx_sim.astype(np.float64).mean(axis=1)
    fwd = xy_sim / ((x_mean[:, None] + y_mean[xy_idx]) / 2)
    bwd = yx_sim / ((y_mean[:, None] + x_mean[yx_idx]) / 2)
    fwd_best = xy_idx[np.arange(len(x)), fwd.argmax(axis=1)]
    bwd_best = yx_idx[np.arange(len(y)), bwd.argmax(axis=1)]
    src = np.concatenate([np.arange(len(x)), bwd_best])
    trg = np.concatenate([fwd_best, np.arange(len(y))])
    score = np.concatenate([fwd.max(axis=1), bwd.max(axis=1)])
    used_src, used_trg, keep = set(), set(), []
    for i in np.argsort(-score, kind="stable"):
        s, t = int(src[i]), int(trg[i])
        if s in used_src or t in used_trg:
            continue
        used_src.add(s)
        used_trg.add(t)
        keep.append(i)
    keep = np.asarray(keep, np.int64)
    return src[keep], trg[keep], score[keep]


def bucc_threshold(candidates: dict, gold: set) -> float:
    """The score threshold with the best F1 on gold pairs (XTREME's bucc_optimize).

    `candidates`: {(src_id, trg_id): score}; the threshold lies halfway between the last kept
    candidate and the next one.
    """
    ranked = sorted(candidates.items(), key=lambda kv: -kv[1])
    best_f1, threshold, found, correct = 0.0, 0.0, 0, 0
    for i, (pair, score) in enumerate(ranked):
        found += 1
        correct += pair in gold
        if correct == 0:
            continue
        precision, recall = correct / found, correct / len(gold)
        f1 = 2 * precision * recall / (precision + recall)
        if f1 > best_f1:
            best_f1 = f1
            nxt = ranked[i + 1][1] if i + 1 < len(ranked) else score
            threshold = (score + nxt) / 2
    return threshold


def bucc_candidates(src_emb, trg_emb, src_texts, trg_texts, src_ids, trg_ids, k: int = BUCC_K,
                    **knn_kw) -> dict:
    """{(src_id, trg_id): margin score} of the mined pairs, as XTREME's candidate files.

    Identical sentences are embedded once (mining runs over unique texts); a text that occurs
    under several ids cannot be mapped back to one id, so its pairs are dropped (as XTREME's
    read_sent2id does).
    """
    def unique(texts, ids):
        first, id_of = {}, {}
        for i, (t, sid) in enumerate(zip(texts, ids)):
            t = t.strip()
            if t not in first:
                first[t] = i
                id_of[t] = sid
            elif id_of[t] != sid:
                id_of[t] = None
        rows = np.asarray(list(first.values()), np.int64)
        return rows, [id_of[t] for t in first]

    src_rows, src_uid = unique(src_texts, src_ids)
    trg_rows, trg_uid = unique(trg_texts, trg_ids)
    s_idx, t_idx, score = margin_mine(np.asarray(src_emb)[src_rows], np.asarray(trg_emb)[trg_rows],
                                      k, **knn_kw)
    out = {}
    for s, t, sc in zip(s_idx, t_idx, score):
        a, b = src_uid[s], trg_uid[t]
        if a is None or b is None or sc <= 0:
            continue
        out[(a, b)] = max(float(sc), out.get((a, b), float(sc)))
    return out


# ============================================================================ the evaluator

def default_retrieval_layer(num_layers: int) -> int:
    """Layer 14 of 24 as in the paper (7 of 12 for base models, as XTREME), scaled to depth."""
    return max(1, int(num_layers * 14 / 24 + 0.5))


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
    on `mesh` (e.g. from `train.create_state`). batch_size is the global batch size; it must
    split over the data-parallel devices and the hosts. heads: {task: head name} where the head
    trained for a task has another name (e.g. {"xnli": "mnli"}); default: the task's own name.
    """

    def __init__(self, model, mesh, *, batch_size: int = 64, buckets=DEFAULT_BUCKETS,
                 retrieval_layer=None, heads=None, n_best: int = N_BEST,
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
        self.retrieval_layer = resolve_layer(retrieval_layer, self.num_layers)

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

    def _forward(self, kind: str, head: str):
        key = (kind, head if kind != "retrieval" else f"layer{self.retrieval_layer}")
        if key in self._fns:
            return self._fns[key]
        graphdef, layer, counter = self.graphdef, self.retrieval_layer, self.compiles

        def forward(state, batch):
            counter[key] += 1  # runs once per trace, i.e. once per compiled shape
            model = nnx.merge(graphdef, state)
            if kind == "retrieval":
                out = encode(model.encoder, batch, None, output_hidden_states=True)
                h = out.hidden_states[layer].astype(jnp.float32)
                mask = batch["attention_mask"][..., None].astype(jnp.float32)
                return (h * mask).sum(axis=1) / jnp.maximum(mask.sum(axis=1), 1.0)
            logits = model.logits(head, batch)
            if kind == "tagging":
                return jnp.argmax(logits, axis=-1).astype(jnp.int32)
            return logits.astype(jnp.float32)

        rows = NamedSharding(self.mesh, P(("data", "fsdp")))
        self._fns[key] = jax.jit(forward, out_shardings=rows)
        return self._fns[key]

    # --- running a stream ---
    def _batches(self, features: list, buckets):
        from xtreme_jax.data.pipeline import make_eval_batches
        from grain.sharding import ShardOptions
        return make_eval_batches(features, global_batch_size=self.batch_size, buckets=buckets,
                                 shard_options=ShardOptions(self.shard_index, self.shard_count),
                                 prefetch=self.prefetch)

    def _host_rows(self, out):
        if self.shard_count == 1 or jax.process_count() == 1:
            return np.asarray(out)
        from jax.experimental import multihost_utils
        return np.asarray(multihost_utils.global_array_to_host_local_array(
            out, self.mesh, P(("data", "fsdp"))))

    def run_local(self, kind: str, features: list, *, head: str = "", buckets="default",
                  stats: dict | None = None) -> dict:
        """This host's outputs for one stream over `features` (all sets of a task).

        Returns {"set": [R], "unit": [R], "values": fixed-width [R, ...] or flat token values
        [T, ...] in row order}; only real rows (no padding units).
        """
        buckets = self.buckets if buckets == "default" else buckets
        fn = self._forward(kind, head)
        token_level = kind in ("tagging", "span")
        set_ids, unit_ids, values = [], [], []
        pending = collections.deque()
        n_batches = processed = 0

        def take(meta, out):
            out = self._host_rows(out)
            keep = np.nonzero(meta["meta_feature_index"] >= 0)[0]
            sets, rows = meta["meta_lang_id"][keep], meta["meta_feature_index"][keep]
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

        for batch in self._batches(features, buckets):
            meta = {k: np.asarray(batch[k]) for k in ("meta_lang_id", "meta_feature_index")}
            dev = device_batch({k: v for k, v in batch.items() if k in ENCODER_KEYS}, self.mesh)
            pending.append((meta, fn(self.state, dev)))
            n_batches += 1
            processed += int(np.prod(batch["input_ids"].shape))
            if len(pending) > 2:  # keep the device busy while the host copies results out
                take(*pending.popleft())
        while pending:
            take(*pending.popleft())
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
            stats: dict | None = None) -> list:
        """Per-set outputs over all hosts: a list (one entry per features) of per-unit outputs.

        mode "vectorized": one stream over all sets with length buckets; "naive": set after set,
        each padded to its max length (the baseline of `benchmark_vs_naive`).
        """
        if mode == "vectorized":
            local = self.run_local(kind, features, head=head, stats=stats)
            return split_by_set(kind, features, self.gather(local))
        if mode != "naive":
            raise ValueError(f"mode must be 'vectorized' or 'naive', not {mode!r}")
        out = []
        for f in features:
            local = self.run_local(kind, [f], head=head, buckets=None, stats=stats)
            out += split_by_set(kind, [f], self.gather(local))
        return out

    # --- tasks ---
    def evaluate(self, task_sets: dict, *, mode: str = "vectorized") -> EvalResults:
        """{task: [EvalSet, ...]} -> EvalResults (scores, predictions, info per task)."""
        return EvalResults({name: self.evaluate_task(name, sets, mode=mode)
                            for name, sets in task_sets.items()})

    def evaluate_task(self, task, sets: list, *, mode: str = "vectorized", head: str | None = None
                      ) -> TaskResult:
        from xtreme_jax.tasks import get_task
        task = get_task(task) if isinstance(task, str) else task
        sets = list(sets)
        _check_sets(task, sets)
        head = head or self.heads.get(task.name, task.name)
        before = self.compiles.copy()
        stats = {}
        t0 = time.perf_counter()
        outputs = self.run(task.kind, [s.features for s in sets], head=head, mode=mode, stats=stats)
        t1 = time.perf_counter()
        if task.kind == "retrieval":
            scores, preds, info = self._retrieval(task, sets, outputs)
        else:
            scores, preds, info = {}, {}, {}
            for s, out in zip(sets, outputs):
                p, gold = self._decode(task, s, out)
                preds[s.lang] = p
                if gold is not None:
                    scores[s.lang] = score(task, p, gold, s.lang)
        t2 = time.perf_counter()
        info.update(stats, split=_main_split(task, sets), mode=mode, forward_s=t1 - t0,
                    decode_s=t2 - t1, compiles=sum((self.compiles - before).values()),
                    languages=list(dict.fromkeys(s.lang for s in sets if s.split != "candidates")),
                    real_tokens=int(sum(s.features.row_splits[-1] for s in sets)))
        return TaskResult(task.name, scores, preds, info)

    # --- decoding ---
    def _decode(self, task, s: EvalSet, out):
        """(predictions in submission shape, gold in score_task's shape or None)."""
        from xtreme_jax.tasks import decode_qa, tags_to_words
        ex, f = s.examples, s.features
        if task.kind == "classification":
            names = list(f.meta["labels"])
            ids = out.argmax(axis=-1)
            preds = [names[int(ids[r])] for r in _row_of_example(f, len(ex))]
            gold = [e["label"] for e in ex]
            return preds, None if any(g is None for g in gold) else gold
        if task.kind == "multiple_choice":
            ids = out.argmax(axis=-1)
            unit_of_ex = np.asarray(f.rows["example_index"])[::f.group]
            preds = [0] * len(ex)
            for u, e in enumerate(unit_of_ex):
                preds[int(e)] = int(ids[u])
            gold = [e["label"] for e in ex]
            return preds, None if any(g is None for g in gold) else gold
        if task.kind == "tagging":
            preds = tags_to_words(f, out, f.meta["labels"])
            gold = [e.get("tags") for e in ex]
            return preds, None if any(g is None for g in gold) else gold
        if task.kind == "span":
            preds = decode_qa(ex, f, [o[:, 0] for o in out], [o[:, 1] for o in out],
                              n_best=self.n_best, max_answer_length=self.max_answer_length)
            if any(not (e.get("answers") or {}).get("text") for e in ex):
                return preds, None
            return preds, squad_gold(ex)
        raise ValueError(f"no decoder for task kind {task.kind!r}")

    def _retrieval(self, task, sets, outputs):
        emb = [np.asarray(o, np.float32) for o in outputs]
        if task.name == "bucc2018":
            return self._bucc(task, sets, emb)
        if task.name == "tatoeba":
            return self._tatoeba(task, sets, emb)
        return self._map20(task, sets, emb)

    def _tatoeba(self, task, sets, emb):
        scores, preds, info = {}, {}, {}
        for s, e in zip(sets, emb):
            side = np.asarray([x["side"] for x in s.examples])
            src, trg = np.nonzero(side == 0)[0], np.nonzero(side == 1)[0]
            x, y = l2_normalize(e[src]), l2_normalize(e[trg])
            _, fwd = knn(x, y, 1, chunk=self.knn_chunk)
            _, bwd = knn(y, x, 1, chunk=self.knn_chunk)
            pred = [int(i) for i in fwd[:, 0]]
            preds[s.lang] = pred
            gold = tatoeba_gold([s.examples[i] for i in src], [s.examples[i] for i in trg])
            result = score(task, pred, gold, s.lang)
            # The direction XTREME's evaluate_retrieval.py and jiant compute: English queries.
            back = tatoeba_gold([s.examples[i] for i in trg], [s.examples[i] for i in src])
            has = [i for i, g in enumerate(back) if g >= 0]
            if has:
                correct = sum(int(bwd[i, 0] == back[i]) for i in has)
                result["accuracy_en_to_xx"] = float(correct) / len(has) * 100
            scores[s.lang] = result
        return scores, preds, info

    def _bucc(self, task, sets, emb):
        by_lang = {}
        for s, e in zip(sets, emb):
            by_lang.setdefault(s.lang, {})[s.split] = (s, e)
        scores, preds, info = {}, {}, {"thresholds": {}, "scored_split": {}}
        for lang, parts in by_lang.items():
            mined, gold = {}, {}
            for split, (s, e) in parts.items():
                side = np.asarray([x["side"] for x in s.examples])
                src, trg = np.nonzero(side == 0)[0], np.nonzero(side == 1)[0]
                ex = s.examples
                mined[split] = bucc_candidates(
                    e[src], e[trg], [ex[i]["text"] for i in src], [ex[i]["text"] for i in trg],
                    [ex[i]["id"] for i in src], [ex[i]["id"] for i in trg], chunk=self.knn_chunk)
                gold[split] = {(k, ex[i]["id"]) for i in trg for k in ex[i]["keys"]}
            tune = "dev" if gold.get("dev") else ("test" if gold.get("test") else None)
            if tune is None:
                raise ValueError(f"bucc2018/{lang}: no gold pairs to choose the mining threshold; "
                                 f"load the dev split with its {lang}-en.dev.gold file")
            th = bucc_threshold(mined[tune], gold[tune])
            info["thresholds"][lang] = th
            final = "test" if "test" in parts else tune
            pairs = [p for p, sc in mined[final].items() if sc >= th]
            preds[lang] = pairs
            scored = final if gold.get(final) else tune
            chosen = pairs if scored == final else [p for p, sc in mined[tune].items() if sc >= th]
            scores[lang] = score(task, chosen, sorted(gold[scored]), lang)
            info["scored_split"][lang] = scored
        return scores, preds, info

    def _map20(self, task, sets, emb):
        """lareqa: each language's questions against the answers of all languages;
        mewslix: each language's mentions against the candidate entity set."""
        cand_ex, cand_emb = [], []
        for s, e in zip(sets, emb):
            if task.name == "mewslix" and s.split != "candidates":
                continue
            rows = [i for i, x in enumerate(s.examples) if x["side"] == 1]
            cand_ex += [s.examples[i] for i in rows]
            cand_emb.append(e[rows])
        if not cand_ex:
            raise ValueError(f"{task.name}: no candidates (side 1 rows) to rank"
                             + ("; add the split='candidates' set" if task.name == "mewslix" else ""))
        cands = l2_normalize(np.concatenate(cand_emb))
        cand_ids = [c["id"] for c in cand_ex]
        relevant = collections.defaultdict(list)
        for c in cand_ex:
            for k in c["keys"]:
                relevant[k].append(c["id"])
        scores, preds, info = {}, {}, {}
        for s, e in zip(sets, emb):
            if s.split == "candidates":
                continue
            rows = [i for i, x in enumerate(s.examples) if x["side"] == 0]
            _, top = knn(l2_normalize(e[rows]), cands, MAP_K, chunk=self.knn_chunk)
            qs = [s.examples[i] for i in rows]
            preds[s.lang] = {q["id"]: [cand_ids[j] for j in t] for q, t in zip(qs, top)}
            if task.name == "mewslix":
                gold = {q["id"]: list(q["keys"][:1]) for q in qs if q["keys"]}
            else:
                gold = {q["id"]: sorted({c for k in q["keys"] for c in relevant[k]}) for q in qs}
                gold = {q: g for q, g in gold.items() if g}
            if gold:
                scores[s.lang] = score(task, {q: preds[s.lang][q] for q in gold}, gold, s.lang)
        return scores, preds, info


# ============================================================================ host-side helpers

def allgather_concat(x: np.ndarray, allgather=None) -> np.ndarray:
    """Concatenate every process's array along axis 0; the lengths may differ per process."""
    if allgather is None:
        from jax.experimental.multihost_utils import process_allgather as allgather
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
    token_level = kind in ("tagging", "span")
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


def _check_sets(task, sets):
    if not sets:
        raise ValueError(f"no evaluation data for task {task.name!r}")
    seen = set()
    for s in sets:
        if s.features.kind != task.kind:
            raise ValueError(f"{task.name}/{s.lang}: features of kind {s.features.kind!r}, but the "
                             f"task is {task.kind!r}; featurize with the task's own featurizer")
        if (s.lang, s.split) in seen and s.split != "candidates":
            raise ValueError(f"{task.name}: language {s.lang!r} ({s.split}) given twice")
        seen.add((s.lang, s.split))
        if s.features.num_examples != len(s.examples):
            raise ValueError(f"{task.name}/{s.lang}: {len(s.examples)} examples but features of "
                             f"{s.features.num_examples}; they must come from the same examples")


def _main_split(task, sets):
    splits = {s.split for s in sets if s.split != "candidates"}
    return "test" if "test" in splits else (sorted(splits)[0] if splits else None)


def _row_of_example(f: Features, n: int) -> np.ndarray:
    ex = np.asarray(f.rows["example_index"])
    row = np.full(n, -1, np.int64)
    row[ex[::-1]] = np.arange(len(ex))[::-1]  # first row of each example
    return row


def squad_gold(examples: list) -> list:
    """SQuAD v1.1 `data` list of the examples (one article, one paragraph per question)."""
    return [{"paragraphs": [{"qas": [{"id": e["id"], "answers": [{"text": t} for t in e["answers"]["text"]]}]}
                            for e in examples]}]


def tatoeba_gold(queries: list, candidates: list) -> list:
    """Ordinal of the first candidate sharing a key with each query (-1: none)."""
    first = {}
    for j, c in enumerate(candidates):
        for k in c["keys"]:
            first.setdefault(k, j)
    return [min((first[k] for k in q["keys"] if k in first), default=-1) for q in queries]


def score(task, predictions, gold, lang):
    """Official scoring for XTREME tasks; by `task.metric` for the others (dev sets of
    intermediate tasks, demo tasks)."""
    if task.name in OFFICIAL_TASKS:
        return scoring.score_task(task.name, predictions, gold, lang)
    m = task.metric
    if m == "accuracy" and task.kind == "tagging":
        return {"accuracy": scoring.pos_accuracy(gold, predictions)["token_accuracy"]}
    if m == "accuracy":
        return scoring.accuracy([str(g) for g in gold], [str(p) for p in predictions])
    if m == "seqeval_f1":
        return scoring.seqeval_f1(gold, predictions)
    if m == "squad_em_f1":
        return scoring.squad_em_f1(gold, predictions, name=f"{task.name}/{lang}")
    if m == "mlqa_em_f1":
        return scoring.mlqa_em_f1(gold, predictions, lang, name=f"{task.name}/{lang}")
    if m == "f1":
        return scoring.bucc_f1(gold, predictions)
    if m == "map@20":
        return scoring.lareqa_map20(gold, predictions)
    raise ValueError(f"task {task.name!r}: no scorer for metric {m!r}")


# ============================================================================ benchmark

def benchmark_vs_naive(evaluator: Evaluator, task, sets: list, *, repeats: int = 3,
                       head: str | None = None) -> dict:
    """Wall time of the vectorized evaluation against the per-language loop (each language
    padded to the task's max length), both end to end (forward, decode, score) in this process.

    Compilation is excluded: the vectorized evaluation runs once first, and the naive loop's
    shapes are compiled on each distinct max length first. The medians of `repeats` runs are
    compared (the two modes alternate). Also reports whether both give the same scores.
    """
    from xtreme_jax.tasks import get_task
    task = get_task(task) if isinstance(task, str) else task
    warm = evaluator.evaluate_task(task, sets, mode="vectorized", head=head)
    seen = set()
    for s in sets:  # compile the naive shapes without a full naive pass
        if s.features.max_length not in seen:
            seen.add(s.features.max_length)
            evaluator.run(task.kind, [s.features], head=head or evaluator.heads.get(task.name, task.name),
                          mode="naive")
    times = {"vectorized": [], "naive": []}
    infos, scores = {}, {}
    for r in range(repeats):
        order = ("vectorized", "naive") if r % 2 == 0 else ("naive", "vectorized")
        for mode in order:
            t0 = time.perf_counter()
            res = evaluator.evaluate_task(task, sets, mode=mode, head=head)
            times[mode].append(time.perf_counter() - t0)
            infos[mode], scores[mode] = res.info, res.scores
    if scores["vectorized"] != scores["naive"]:
        log.warning("vectorized and naive scores differ: %s vs %s", scores["vectorized"], scores["naive"])
    vec, naive = statistics.median(times["vectorized"]), statistics.median(times["naive"])
    return {
        "task": warm.task, "languages": len(warm.info["languages"]), "repeats": repeats,
        "vectorized_s": vec, "naive_s": naive, "speedup": naive / vec,
        "vectorized_times": times["vectorized"], "naive_times": times["naive"],
        "vectorized_forward_s": infos["vectorized"]["forward_s"],
        "naive_forward_s": infos["naive"]["forward_s"],
        "vectorized_batches": infos["vectorized"]["batches"], "naive_batches": infos["naive"]["batches"],
        "real_tokens": infos["vectorized"]["real_tokens"],
        "vectorized_processed_tokens": infos["vectorized"]["processed_tokens_per_host"],
        "naive_processed_tokens": infos["naive"]["processed_tokens_per_host"],
        "compiles_vectorized": warm.info["compiles"], "compiles_naive": infos["naive"]["compiles"],
        "same_scores": scores["vectorized"] == scores["naive"],
        "buckets": list(evaluator.buckets or ()), "batch_size": evaluator.batch_size,
    }


def _benchmark_main(argv=None) -> dict:
    """python -m xtreme_jax.evaluate benchmark --task tatoeba --data_dir DIR [--size small] ..."""
    import argparse
    import json
    import tempfile

    from xtreme_jax import optim, sharding, train
    from xtreme_jax.data.sources import Source
    from xtreme_jax.data.spm import train_xlmr_tokenizer
    from xtreme_jax.models.encoder import preset
    from xtreme_jax.tasks import get_task

    ap = argparse.ArgumentParser(prog="python -m xtreme_jax.evaluate benchmark")
    ap.add_argument("--task", default="tatoeba")
    ap.add_argument("--data_dir", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--languages", default="", help="comma-separated; default: all found")
    ap.add_argument("--size", default="small", help="encoder preset (tiny, small, base, large)")
    ap.add_argument("--num_layers", type=int, default=0)
    ap.add_argument("--vocab_size", type=int, default=16000)
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--max_length", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)

    task = get_task(args.task)
    source = Source("official", args.data_dir)
    langs = [l for l in args.languages.split(",") if l] or list(task.language_list(source))
    found = []
    for lang in langs:
        try:
            task.load_examples(args.split, lang, source)
            found.append(lang)
        except Exception as err:  # noqa: BLE001 -- a missing language is skipped, and said so
            print(f"skipping {lang}: {err}".splitlines()[0])
    texts = []
    for lang in found:
        for e in task.load_examples(args.split, lang, source):
            for key in ("text", "text_a", "text_b", "context", "question"):
                if isinstance(e.get(key), str):
                    texts.append(e[key])
            if "tokens" in e:
                texts.append(" ".join(e["tokens"]))
            for choice in e.get("choices") or []:
                texts.append(choice)
    tok = train_xlmr_tokenizer(texts, tempfile.mkdtemp(prefix="xtj-bench-tok-"), vocab_size=args.vocab_size)
    opts = {"max_length": args.max_length} if args.max_length else {}
    sets = load_eval_sets(task, tok, source, split=args.split, languages=found, **opts)
    overrides = {"vocab_size": len(tok), "max_position_embeddings": 514}
    if args.num_layers:
        overrides["num_layers"] = args.num_layers
    cfg = preset(args.size, **overrides)
    mesh = sharding.make_mesh((-1, 1, 1))
    heads = {} if task.kind == "retrieval" else {task.name: (task.kind, max(task.num_labels, 1))}
    tx, _ = optim.make_optimizer(lr=1e-5, total_steps=10)
    graphdef, state, _ = train.create_state(cfg, heads, tx, mesh)
    ev = Evaluator(nnx.merge(graphdef, state).model, mesh, batch_size=args.batch_size)
    result = benchmark_vs_naive(ev, task, sets, repeats=args.repeats)
    result.update(device=str(jax.devices()[0].device_kind), num_devices=jax.device_count(),
                  model=args.size, num_layers=cfg.num_layers, hidden_size=cfg.hidden_size,
                  vocab_size=len(tok), retrieval_layer=ev.retrieval_layer,
                  examples=sum(len(s.examples) for s in sets))
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        from xtreme_jax.files import write_atomic
        write_atomic(args.out, text + "\n")
    return result


def _checkpoint_main():
    """python -m xtreme_jax.evaluate --config=configs/X.py[:args] --checkpoint=DIR --workdir=OUT"""
    import sys

    from absl import app, flags
    from ml_collections import config_flags

    config = config_flags.DEFINE_config_file("config", None, "configs/X.py[:args]; its evaluate section "
                                             "lists the tasks")
    checkpoint = flags.DEFINE_string("checkpoint", None, "a finished phase of a run (RUN/target) or an "
                                     "HF checkpoint directory / hub id")
    workdir = flags.DEFINE_string("workdir", None, "where results.json, tables and predictions go")
    flags.mark_flags_as_required(["config", "checkpoint", "workdir"])

    def main(argv):
        from xtreme_jax.config import ConfigError
        from xtreme_jax.data.errors import DataError
        from xtreme_jax.pipeline import evaluate_checkpoint
        try:
            evaluate_checkpoint(config.value, checkpoint.value, workdir.value)
        except (ConfigError, DataError, FileNotFoundError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
    app.run(main)


if __name__ == "__main__":
    import sys
    if len(sys.argv) > 1 and sys.argv[1] == "benchmark":
        _benchmark_main(sys.argv[2:])
    else:
        _checkpoint_main()
