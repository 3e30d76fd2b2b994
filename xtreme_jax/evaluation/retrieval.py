"""Retrieval: cosine kNN on device, ratio-margin bitext mining, the BUCC threshold, mAP@20, and
the table from each retrieval task to its scorer (SCORERS). A new retrieval task is one entry
there (and its reader in tasks/retrieval.py).

Embeddings are one encoder layer's hidden states, mean-pooled over the mask or the first token
(the evaluator's forward for retrieval tasks; each task's official layer and pooling below,
settable per task in the config); scorers get them per EvalSet:

    tatoeba    top-1 accuracy xx -> en (and en -> xx as accuracy_en_to_xx)
    bucc2018   ratio-margin mining (k=4), threshold tuned on dev gold pairs, F1 on test
    lareqa     each question against the answer sentences of all languages, mAP@20
    mewslix    each mention against the shared candidate entity set, mAP@20
"""
from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from xtreme_jax.evaluation.results import no_gold
from xtreme_jax.evaluation.scores import score

BUCC_K = 4
MAP_K = 20


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


def tatoeba_gold(queries: list, candidates: list) -> list:
    """Ordinal of the first candidate sharing a key with each query (-1: none)."""
    first = {}
    for j, c in enumerate(candidates):
        for k in c["keys"]:
            first.setdefault(k, j)
    return [min((first[k] for k in q["keys"] if k in first), default=-1) for q in queries]


# ---------------------------------------------------------------------------- scorers

def score_tatoeba(task, sets, emb, knn_chunk: int = 4096):
    scores, preds, info = {}, {}, {}
    for s, e in zip(sets, emb):
        side = np.asarray([x["side"] for x in s.examples])
        src, trg = np.nonzero(side == 0)[0], np.nonzero(side == 1)[0]
        x, y = l2_normalize(e[src]), l2_normalize(e[trg])
        _, fwd = knn(x, y, 1, chunk=knn_chunk)
        _, bwd = knn(y, x, 1, chunk=knn_chunk)
        pred = [int(i) for i in fwd[:, 0]]
        preds[s.lang] = pred
        gold = tatoeba_gold([s.examples[i] for i in src], [s.examples[i] for i in trg])
        if all(g < 0 for g in gold):  # XTREME's copy without its test-xx.tsv gold: no score, not 0
            info.setdefault("unscored", {})[s.lang] = no_gold(task.name, s.split, s.lang)
            continue
        result = score(task, pred, gold, s.lang)
        # The direction XTREME's evaluate_retrieval.py and jiant compute: English queries.
        back = tatoeba_gold([s.examples[i] for i in trg], [s.examples[i] for i in src])
        has = [i for i, g in enumerate(back) if g >= 0]
        if has:
            correct = sum(int(bwd[i, 0] == back[i]) for i in has)
            result["accuracy_en_to_xx"] = float(correct) / len(has) * 100
        scores[s.lang] = result
    return scores, preds, info


def score_bucc(task, sets, emb, knn_chunk: int = 4096):
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
                [ex[i]["id"] for i in src], [ex[i]["id"] for i in trg], chunk=knn_chunk)
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
        if not gold.get(final):  # no test gold: predictions, no score (a dev F1 would pass as test)
            info.setdefault("unscored", {})[lang] = no_gold(task.name, final, lang)
            continue
        scores[lang] = score(task, pairs, sorted(gold[final]), lang)
        info["scored_split"][lang] = final
    return scores, preds, info


def score_map20(task, sets, emb, knn_chunk: int = 4096):
    """lareqa: each language's questions against the answers of all languages;
    mewslix: each language's mentions against the candidate entity set."""
    shared = SCORERS[task.name].shared_split is not None
    cand_ex, cand_emb = [], []
    for s, e in zip(sets, emb):
        if shared and s.split != "candidates":
            continue
        rows = [i for i, x in enumerate(s.examples) if x["side"] == 1]
        cand_ex += [s.examples[i] for i in rows]
        cand_emb.append(e[rows])
    if not cand_ex:
        raise ValueError(f"{task.name}: no candidates (side 1 rows) to rank"
                         + ("; add the split='candidates' set" if shared else ""))
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
        _, top = knn(l2_normalize(e[rows]), cands, MAP_K, chunk=knn_chunk)
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


# ---------------------------------------------------------------- which layer, which pooling

# XTREME's retrieval scripts (third_party/evaluate_retrieval.py, run_retrieval.py) keep the outputs
# of the transformer layers only (`hidden_states[-num_layers:]`, the embedding output dropped), so
# `--specific_layer k` is hidden_states[k + 1] here (0 = embeddings output, as in HF).
# scripts/run_tatoeba.sh: mean pooling, k = 7 for 12-layer models (mBERT, XLM-R base), k = 13 for
# XLM-R large (the X-STILTs paper's "layer 14").
TATOEBA_LAYER = {12: 8, 24: 14}
# scripts/run_bucc2018.sh: --pool_type cls --specific_layer 7 for every model, large included.
BUCC_LAYER = 8


def mean_layer(num_layers: int) -> int:
    """Tatoeba's official layer for 12 and 24 layers; other depths keep large's relative depth
    (14 of 24)."""
    if num_layers in TATOEBA_LAYER:
        return TATOEBA_LAYER[num_layers]
    return max(1, int(num_layers * 14 / 24 + 0.5))


def bucc_layer(num_layers: int) -> int:
    """BUCC's official layer, hidden_states[8], for 12 layers and deeper; shallower encoders keep
    base's relative depth (8 of 12)."""
    if num_layers >= 12:
        return BUCC_LAYER
    return max(1, int(num_layers * BUCC_LAYER / 12 + 0.5))


@dataclasses.dataclass(frozen=True)
class Scorer:
    score: Callable                  # (task, sets, embeddings, knn_chunk) -> (scores, predictions, info)
    splits: tuple = ()               # splits loaded besides the requested one
    shared_split: str | None = None  # one more set shared by all languages (the candidates)
    pooling: str = "mean"            # the official pooling: mean over the mask, or cls (first token)
    layer: Callable = mean_layer     # num_layers -> the official hidden_states index


# LAReQA and Mewsli-X are scored with the frozen encoder here (XTREME-R fine-tunes a dual encoder
# for them, results.NOT_COMPARABLE): they use Tatoeba's frozen-encoder setting.
SCORERS = {
    "tatoeba": Scorer(score_tatoeba),
    "bucc2018": Scorer(score_bucc, splits=("dev",), pooling="cls", layer=bucc_layer),  # dev gold pairs tune the threshold
    "lareqa": Scorer(score_map20),
    "mewslix": Scorer(score_map20, shared_split="candidates"),
}


def official_setting(task: str, num_layers: int) -> tuple:
    """(hidden_states index, pooling) the official scripts use for `task` (Tatoeba's for a
    retrieval task without a script of its own)."""
    scorer = SCORERS.get(task, SCORERS["tatoeba"])
    return scorer.layer(num_layers), scorer.pooling


def score_retrieval(task, sets, embeddings, knn_chunk: int = 4096):
    """(scores, predictions, info) of a retrieval task from its sets' embeddings."""
    if task.name not in SCORERS:
        raise ValueError(f"no retrieval scorer for task {task.name!r}; add one to "
                         f"xtreme_jax.evaluation.retrieval.SCORERS")
    emb = [np.asarray(o, np.float32) for o in embeddings]
    return SCORERS[task.name].score(task, sets, emb, knn_chunk)
