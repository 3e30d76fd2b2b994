"""Tokenized features of one (task, split, language): ragged rows in flat numpy arrays.

Rows have different lengths, so token-level arrays are stored flat and cut by `row_splits`
(row r = flat[row_splits[r]:row_splits[r+1]], like tf.RaggedTensor). Nothing is padded on disk;
the batcher pads each batch to its bucket. Row-level arrays have one entry per row.

    tokens: input_ids, token_type_ids (BERT-family only), labels (tagging: tag id on the first
            sub-token of each word, -100 elsewhere), word_index (tagging: word number on the
            first sub-token, -1 elsewhere), offsets [T,2] (QA: char span in the context, -1 for
            question/special tokens)
    rows:   example_index (which example the row came from), labels (classification /
            multiple choice), start_positions / end_positions (QA), side (retrieval)

A "unit" is what the batcher places in one batch row: one row, or for multiple choice the
`group` consecutive rows (one per choice) of one example.
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np


@dataclasses.dataclass
class Features:
    kind: str
    row_splits: np.ndarray
    tokens: dict
    rows: dict
    meta: dict
    group: int = 1

    # --- sizes ---
    @property
    def num_rows(self) -> int:
        return len(self.row_splits) - 1

    @property
    def num_units(self) -> int:
        return self.num_rows // self.group

    @property
    def num_examples(self) -> int:
        return int(self.meta.get("num_examples", 0))

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(np.asarray(self.row_splits)).astype(np.int64)

    @property
    def unit_lengths(self) -> np.ndarray:
        """Longest row of each unit (a unit is padded as a whole)."""
        return self.lengths.reshape(-1, self.group).max(axis=1)

    @property
    def max_length(self) -> int:
        return int(self.meta["max_length"])

    def row_tokens(self, key: str, r: int) -> np.ndarray:
        return self.tokens[key][self.row_splits[r]:self.row_splits[r + 1]]

    # --- building ---
    @classmethod
    def from_rows(cls, kind: str, token_rows: dict, row_values: dict, meta: dict, group: int = 1):
        """From per-row sequences (lists or numpy arrays): token_rows[key][row] = sequence."""
        first = next(iter(token_rows.values()))
        lens = np.fromiter((len(r) for r in first), dtype=np.int64, count=len(first))
        splits = np.zeros(len(first) + 1, dtype=np.int64)
        np.cumsum(lens, out=splits[1:])
        tokens = {}
        for k, seqs in token_rows.items():
            shape = (-1, 2) if k == "offsets" else (-1,)
            if not len(seqs):
                tokens[k] = np.zeros((0,) + shape[1:], np.int32)
            elif isinstance(seqs[0], np.ndarray):
                tokens[k] = np.concatenate(seqs).astype(np.int32).reshape(shape)
            elif k == "offsets":
                tokens[k] = np.asarray([p for s in seqs for p in s], np.int32).reshape(shape)
            else:
                tokens[k] = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=int(splits[-1]))
        rows = {k: np.asarray(v, dtype=np.int32) for k, v in row_values.items()}
        return cls(kind=kind, row_splits=splits, tokens=tokens, rows=rows, meta=dict(meta), group=group)

    # --- selection (training-set subsampling reuses the full cache) ---
    def select_rows(self, row_idx: np.ndarray, num_examples: int | None = None) -> "Features":
        row_idx = np.asarray(row_idx, dtype=np.int64)
        lens = self.lengths[row_idx]
        splits = np.zeros(len(row_idx) + 1, dtype=np.int64)
        np.cumsum(lens, out=splits[1:])
        starts = np.asarray(self.row_splits)[row_idx]
        flat_idx = (np.repeat(starts - splits[:-1], lens) + np.arange(splits[-1])) if len(lens) else \
            np.zeros(0, np.int64)
        tokens = {k: np.asarray(v)[flat_idx] for k, v in self.tokens.items()}
        rows = {k: np.asarray(v)[row_idx] for k, v in self.rows.items()}
        meta = dict(self.meta)
        if num_examples is not None:
            meta["num_examples"] = int(num_examples)
        return Features(self.kind, splits, tokens, rows, meta, self.group)

    def select_examples(self, example_ids) -> "Features":
        """Keep the rows of the given examples; example_index is renumbered 0..n-1 in order."""
        example_ids = np.unique(np.asarray(example_ids, dtype=np.int64))
        ex = np.asarray(self.rows["example_index"])
        keep = np.nonzero(np.isin(ex, example_ids))[0]
        out = self.select_rows(keep, num_examples=len(example_ids))
        out.rows["example_index"] = np.searchsorted(example_ids, ex[keep]).astype(np.int32)
        return out

    # --- disk ---
    def save(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        np.save(os.path.join(directory, "row_splits.npy"), np.asarray(self.row_splits))
        for k, v in self.tokens.items():
            np.save(os.path.join(directory, f"tokens.{k}.npy"), np.asarray(v))
        for k, v in self.rows.items():
            np.save(os.path.join(directory, f"rows.{k}.npy"), np.asarray(v))
        with open(os.path.join(directory, "meta.json"), "w", encoding="utf-8") as f:
            json.dump({"kind": self.kind, "group": self.group, "meta": self.meta,
                       "tokens": sorted(self.tokens), "rows": sorted(self.rows)}, f, indent=1)

    @classmethod
    def load(cls, directory: str, mmap: bool = True) -> "Features":
        with open(os.path.join(directory, "meta.json"), encoding="utf-8") as f:
            info = json.load(f)
        mode = "r" if mmap else None
        ld = lambda name: np.load(os.path.join(directory, name), mmap_mode=mode)  # noqa: E731
        return cls(kind=info["kind"], row_splits=ld("row_splits.npy"),
                   tokens={k: ld(f"tokens.{k}.npy") for k in info["tokens"]},
                   rows={k: ld(f"rows.{k}.npy") for k in info["rows"]},
                   meta=info["meta"], group=info["group"])


def subsample(features: Features, count: int | None = None, fraction: float | None = None,
              seed: int = 0) -> Features:
    """A seeded random subset of the examples (by count or fraction) with all their rows.

    Works on cached features, so sweeping the training-set size tokenizes only once.
    """
    if (count is None) == (fraction is None):
        raise ValueError("give exactly one of count or fraction")
    n = features.num_examples
    k = int(count) if count is not None else int(round(float(fraction) * n))
    if not 0 < k <= n:
        raise ValueError(f"cannot take {k} of {n} examples")
    ids = np.random.default_rng(seed).choice(n, size=k, replace=False)
    return features.select_examples(ids)


def concat(features: list[Features]) -> Features:
    """One Features from several (e.g. all languages of a task for one mixed eval stream).

    Adds rows `set_index` (position in the list: which set, e.g. which language) and
    `feature_index` (row number within its own Features), so per-set results can be taken apart.
    """
    f0 = features[0]
    for f in features:
        if f.kind != f0.kind or f.group != f0.group or set(f.tokens) != set(f0.tokens):
            raise ValueError("can only concatenate features of the same task kind and layout")
    splits = [np.zeros(1, np.int64)]
    off = 0
    for f in features:
        splits.append(np.asarray(f.row_splits[1:]) + off)
        off += int(f.row_splits[-1])
    tokens = {k: np.concatenate([np.asarray(f.tokens[k]) for f in features]) for k in f0.tokens}
    rows = {k: np.concatenate([np.asarray(f.rows[k]) for f in features]) for k in f0.rows}
    rows["set_index"] = np.concatenate([np.full(f.num_rows, i, np.int32) for i, f in enumerate(features)])
    rows["feature_index"] = np.concatenate([np.arange(f.num_rows, dtype=np.int32) for f in features])
    meta = dict(f0.meta)
    meta["max_length"] = max(f.max_length for f in features)
    meta["langs"] = [f.meta.get("lang") for f in features]
    meta["num_examples"] = sum(f.num_examples for f in features)
    return Features(f0.kind, np.concatenate(splits), tokens, rows, meta, f0.group)
