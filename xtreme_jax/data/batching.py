"""Batch plans (which units go into which batch, padded to which length) and batch assembly.

Static shapes: XLA compiles once per input shape, so every batch has the global batch size and
one of a few lengths. Two ways to cut padding:

- length buckets: a batch is padded to the smallest bucket that holds its longest unit; training
  groups units of the same bucket into a batch (after a seeded shuffle) so that short examples
  are not padded to the longest one in the whole split;
- packing (classification and tagging): several examples share one row of length S
  (first-fit), with segment ids for block-diagonal attention, positions restarting per segment
  at the model's first position id, and the position of each segment's first token
  (`cls_index`) for pooling.

Batches missing units at the end of a bucket or split are filled with padding units (label -1 /
-100, `meta_example_index` -1), so losses and metrics ignore them.
"""
from __future__ import annotations

import math

import numpy as np

from xtreme_jax.data.features import Features

DEFAULT_BUCKETS = (32, 64, 128, 256)
PACKABLE = ("classification", "tagging")  # the kinds `packable` accepts (for messages)


def packable(f: Features) -> bool:
    """Packing puts several examples in one row, so each needs its labels moved along: one label
    per example (-> [B, K] with `cls_index`) or per token. Choices (group > 1), spans and
    unlabeled kinds cannot be packed."""
    return f.group == 1 and ("labels" in f.rows or "labels" in f.tokens)


def resolve_buckets(features: Features, buckets) -> tuple:
    """Sorted bucket lengths; the features' max_length is added if it is above them all, so every
    row fits (a row longer than max_length cannot exist). `buckets=None` means pad to max."""
    top = features.max_length
    if not buckets:
        return (top,)
    bs = sorted({int(b) for b in buckets if int(b) < top})
    return tuple(bs + [top])


def plan_buckets(unit_lengths: np.ndarray, buckets: tuple, batch_size: int,
                 rng: np.random.Generator | None = None) -> list:
    """[(length, units[batch_size])] with -1 for padding units.

    With `rng` (training): shuffle units, batch within each bucket, shuffle the batch order.
    Without (evaluation): units sorted by length, deterministic.
    """
    n = len(unit_lengths)
    order = rng.permutation(n) if rng is not None else np.argsort(unit_lengths, kind="stable")
    which = np.searchsorted(np.asarray(buckets), np.asarray(unit_lengths)[order], side="left")
    if n and which.max() >= len(buckets):
        raise ValueError(f"a unit of length {int(np.max(unit_lengths))} exceeds the largest bucket "
                         f"{buckets[-1]}")
    plan = []
    for k, length in enumerate(buckets):
        units = order[which == k]
        for s in range(0, len(units), batch_size):
            chunk = np.full(batch_size, -1, dtype=np.int64)
            part = units[s:s + batch_size]
            chunk[:len(part)] = part
            plan.append((int(length), chunk))
    if rng is not None:
        plan = [plan[i] for i in rng.permutation(len(plan))]
    return plan


def num_bucket_batches(unit_lengths, buckets, batch_size) -> int:
    which = np.searchsorted(np.asarray(buckets), np.asarray(unit_lengths), side="left")
    counts = np.bincount(which, minlength=len(buckets))
    return int(sum(math.ceil(c / batch_size) for c in counts))


def pack_first_fit(lengths: np.ndarray, order: np.ndarray, length: int, max_segments: int,
                   open_bins: int = 64) -> list:
    """First-fit packing of units (in `order`) into rows of `length` tokens, at most
    `max_segments` units per row. Keeps `open_bins` rows open (like grain's packers) so the cost
    stays linear; when all are open and none fits, the fullest one is closed."""
    rem = np.zeros(0, dtype=np.int64)
    cnt = np.zeros(0, dtype=np.int64)
    members: list = []
    rows = []
    for u in order:
        n = int(lengths[u])
        if n > length:
            raise ValueError(f"a unit of length {n} does not fit the pack length {length}")
        fit = np.nonzero((rem >= n) & (cnt < max_segments))[0]
        if len(fit):
            b = int(fit[0])
            rem[b] -= n
            cnt[b] += 1
            members[b].append(int(u))
            continue
        if len(members) >= open_bins:
            b = int(np.argmin(rem))
            rows.append(members.pop(b))
            rem, cnt = np.delete(rem, b), np.delete(cnt, b)
        rem = np.append(rem, length - n)
        cnt = np.append(cnt, 1)
        members.append([int(u)])
    return rows + members


# --- assembly --------------------------------------------------------------------------------
def _row_slice(f: Features, r: int):
    return int(f.row_splits[r]), int(f.row_splits[r + 1])


def assemble(f: Features, units: np.ndarray, length: int, *, eval_meta: bool = False) -> dict:
    """One padded batch [B, (C,) length] of the given units (-1 = padding unit). Which arrays a
    batch carries follows the arrays the features hold (the batch contract of each kind)."""
    B, C = len(units), f.group
    pad = int(f.meta["pad_id"])
    ids = np.full((B, C, length), pad, np.int32)
    mask = np.zeros((B, C, length), np.int32)
    types = np.zeros((B, C, length), np.int32)
    has_types = "token_type_ids" in f.tokens
    batch = {}
    tag = "labels" in f.tokens  # labels per token (tagging), else per row
    if tag:
        tlabels = np.full((B, length), -100, np.int32)
    with_offsets = eval_meta and "offsets" in f.tokens  # spans: decoding maps tokens to characters
    if with_offsets:
        offsets = np.full((B, length, 2), -1, np.int32)
    first_row = np.where(units >= 0, units * C, -1)
    for b, u in enumerate(units):
        if u < 0:
            continue
        for c in range(C):
            s, e = _row_slice(f, int(u) * C + c)
            n = e - s
            ids[b, c, :n] = f.tokens["input_ids"][s:e]
            mask[b, c, :n] = 1
            if has_types:
                types[b, c, :n] = f.tokens["token_type_ids"][s:e]
        if tag:
            tlabels[b, :n] = f.tokens["labels"][s:e]
        if with_offsets:
            offsets[b, :n] = f.tokens["offsets"][s:e]
    squeeze = (lambda x: x[:, 0]) if C == 1 else (lambda x: x)
    batch["input_ids"], batch["attention_mask"] = squeeze(ids), squeeze(mask)
    if "side" not in f.rows:  # retrieval rows (a side each) embed one sentence: no segment types
        batch["token_type_ids"] = squeeze(types)
    rows = lambda key, fill: np.where(first_row >= 0, np.asarray(f.rows[key])[np.maximum(first_row, 0)],  # noqa: E731
                                      fill).astype(np.int32)
    if "labels" in f.rows:
        batch["labels"] = rows("labels", -1)
    elif tag:
        batch["labels"] = tlabels
    elif "start_positions" in f.rows:
        batch["start_positions"] = rows("start_positions", -1)
        batch["end_positions"] = rows("end_positions", -1)
        if with_offsets:
            batch["meta_offsets"] = offsets
    batch["meta_example_index"] = rows("example_index", -1)
    batch["meta_feature_index"] = first_row.astype(np.int32)
    if "set_index" in f.rows:
        batch["meta_set_index"] = rows("set_index", -1)
        batch["meta_feature_index"] = rows("feature_index", -1)
    if "side" in f.rows:
        batch["meta_side"] = rows("side", -1)
    return batch


def first_position_id(f: Features, first: int | None = None) -> int:
    """Where each packed sequence's position ids start: the model's convention (BERT 0, RoBERTa /
    XLM-R pad_token_id + 1: `EncoderConfig.first_position_id`), given or stamped into the meta by
    the run (RunContext.features). Features alone only know their tokenizer, whose guess
    (`position_offset`, from its class) is the fallback: wrong for a BERT-layout model with an
    XLM-R tokenizer (multilingual-e5)."""
    if first is not None:
        return int(first)
    return int(f.meta.get("first_position_id", f.meta.get("position_offset", 0)))


def assemble_packed(f: Features, packed_rows: list, length: int, max_segments: int,
                    first_position: int | None = None) -> dict:
    """A packed batch [B, S]: segment_ids 1..K, positions restarting per segment (at
    `first_position_id(f, first_position)`), cls_index and labels [B, K] (classification) or
    token labels [B, S] (tagging)."""
    B, K = len(packed_rows), max_segments
    pad, pos0 = int(f.meta["pad_id"]), first_position_id(f, first_position)
    ids = np.full((B, length), pad, np.int32)
    mask = np.zeros((B, length), np.int32)
    types = np.zeros((B, length), np.int32)
    seg = np.zeros((B, length), np.int32)
    # Padding positions are masked; RoBERTa gives them the padding index (first position - 1).
    pos = np.full((B, length), max(pos0 - 1, 0), np.int32)
    cls_index = np.zeros((B, K), np.int32)
    per_row = "labels" in f.rows  # one label per example (classification), else per token
    labels = np.full((B, K), -1, np.int32) if per_row else np.full((B, length), -100, np.int32)
    ex_index = np.full((B, K), -1, np.int32)
    has_types = "token_type_ids" in f.tokens
    for b, units in enumerate(packed_rows):
        at = 0
        for k, u in enumerate(units):
            s, e = _row_slice(f, int(u))
            n = e - s
            ids[b, at:at + n] = f.tokens["input_ids"][s:e]
            mask[b, at:at + n] = 1
            if has_types:
                types[b, at:at + n] = f.tokens["token_type_ids"][s:e]
            seg[b, at:at + n] = k + 1
            pos[b, at:at + n] = pos0 + np.arange(n)
            cls_index[b, k] = at
            if per_row:
                labels[b, k] = f.rows["labels"][u]
            else:
                labels[b, at:at + n] = f.tokens["labels"][s:e]
            ex_index[b, k] = f.rows["example_index"][u]
            at += n
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "segment_ids": seg,
             "position_ids": pos, "labels": labels, "meta_example_index": ex_index}
    if per_row:
        batch["cls_index"] = cls_index
    return batch


def apply_mlm_mask(batch: dict, meta: dict, rng: np.random.Generator, prob: float = 0.15, *,
                   row_offset: int = 0, global_rows: int | None = None) -> dict:
    """BERT masking: `prob` of the real non-special tokens are predicted; of those 80% become
    <mask>, 10% a random token, 10% stay. Labels: original id there, -100 elsewhere.

    The draws are made for the whole global batch (`global_rows`) and this host's rows
    [row_offset, row_offset + rows) are used, so the masks do not depend on the number of hosts."""
    ids = batch["input_ids"]
    n = ids.shape[0]
    shape = (global_rows or n,) + ids.shape[1:]
    mine = slice(row_offset, row_offset + n)
    draw, how = rng.random(shape)[mine], rng.random(shape)[mine]
    rand = rng.integers(0, int(meta["vocab_size"]), shape, dtype=np.int32)[mine]
    special = np.isin(ids, np.asarray(meta["special_ids"])) | (batch["attention_mask"] == 0)
    chosen = (draw < prob) & ~special
    out = dict(batch)
    out["labels"] = np.where(chosen, ids, -100).astype(np.int32)
    masked = np.where(chosen & (how < 0.8), np.int32(meta["mask_id"]), ids)
    out["input_ids"] = np.where(chosen & (how >= 0.8) & (how < 0.9), rand, masked).astype(np.int32)
    return out


def padding_efficiency(f: Features, batch_size: int, buckets=DEFAULT_BUCKETS, pack_length: int | None = None,
                       max_segments: int | None = None, seed: int = 0) -> dict:
    """Real tokens / processed tokens under pad-to-max, length buckets and (if packable) packing,
    for one training epoch at the given global batch size (padding units count as processed)."""
    lens = f.lengths
    real = int(lens.sum())
    units = f.unit_lengths
    C = f.group
    n_max = math.ceil(len(units) / batch_size)
    out = {"real_tokens": real,
           "pad_to_max": real / max(1, n_max * batch_size * C * f.max_length)}
    bks = resolve_buckets(f, buckets)
    plan = plan_buckets(units, bks, batch_size, np.random.default_rng(seed))
    out["buckets"] = real / max(1, sum(length * batch_size * C for length, _ in plan))
    out["bucket_lengths"] = list(bks)
    out["bucket_batches"] = {str(b): sum(1 for length, _ in plan if length == b) for b in bks}
    if packable(f):
        S = pack_length or bks[-1]
        K = max_segments or max(1, S // 8)
        rows = pack_first_fit(units, np.random.default_rng(seed).permutation(len(units)), S, K)
        out["packing"] = real / max(1, math.ceil(len(rows) / batch_size) * batch_size * S)
        out["pack_length"] = S
        out["packed_rows"] = len(rows)
        out["mean_segments_per_row"] = len(units) / max(1, len(rows))
    return out
