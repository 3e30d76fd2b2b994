"""Synthetic benchmark data: token-length models of XNLI-like pairs and PAN-X-like sentences,
Features (the batcher's input) and padded batches with random ids of those lengths."""
from __future__ import annotations

import math

import numpy as np

# Token-length models (XLM-R sentencepiece tokens, specials included), sampled per example.
# XNLI / MNLI pairs: "<s> premise </s></s> hypothesis </s>"; premise and hypothesis are
# log-normal with medians 24 and 12 tokens, which gives the ~45-token mean of XNLI pairs
# (DESIGN §5: XNLI/PAWS-X pairs average ~40-75 tokens, PAN-X ~20) and a tail past 128 that is
# truncated, as the XTREME scripts do at max_seq_length 128. PAN-X: one Wikipedia sentence
# fragment, median 16 tokens.
LENGTH_MODELS = {
    "xnli": dict(specials=4, parts=((24.0, 0.50), (12.0, 0.45))),
    "panx": dict(specials=2, parts=((16.0, 0.55),)),
}


def sample_lengths(name: str, n: int, max_length: int = 128, seed: int = 0) -> np.ndarray:
    m = LENGTH_MODELS[name]
    rng = np.random.default_rng(seed)
    total = np.full(n, m["specials"], np.float64)
    for median, sigma in m["parts"]:
        total += np.maximum(1.0, np.round(rng.lognormal(math.log(median), sigma, n)))
    return np.minimum(total, max_length).astype(np.int64)


def synthetic_features(kind: str, lengths, vocab_size: int, max_length: int, *, num_labels: int = 3,
                       seed: int = 0, lang: str = "en"):
    """Features (the batcher's input) with random token ids of the given lengths."""
    from xtreme_jax.data.features import Features
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths, np.int64)
    splits = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=splits[1:])
    ids = rng.integers(5, vocab_size, int(splits[-1])).astype(np.int32)
    ids[splits[:-1]] = 0                # <s>
    ids[splits[1:] - 1] = 2             # </s>
    tokens = {"input_ids": ids}
    rows = {"example_index": np.arange(len(lengths), dtype=np.int32)}
    if kind == "classification":
        rows["labels"] = rng.integers(0, num_labels, len(lengths)).astype(np.int32)
    elif kind == "tagging":
        labels = rng.integers(0, num_labels, int(splits[-1])).astype(np.int32)
        labels[rng.random(len(labels)) < 0.3] = -100    # non-first sub-tokens
        labels[splits[:-1]] = -100
        labels[splits[1:] - 1] = -100
        tokens["labels"] = labels
    elif kind == "mlm":
        pass
    meta = {"pad_id": 1, "mask_id": 4, "special_ids": [0, 1, 2, 3, 4], "vocab_size": int(vocab_size),
            "position_offset": 2, "max_length": int(max_length), "num_examples": int(len(lengths)),
            "lang": lang, "labels": [str(i) for i in range(num_labels)]}
    return Features(kind, splits, tokens, rows, meta)


def padded_batch(lengths, seq: int, vocab: int, num_labels: int = 3, seed: int = 0,
                 kind: str = "classification") -> dict:
    """Random ids padded to `seq`; labels per sequence (classification) or per real token
    (tagging, -100 on padding)."""
    rng = np.random.default_rng(seed)
    b = len(lengths)
    mask = (np.arange(seq)[None] < np.asarray(lengths)[:, None]).astype(np.int32)
    ids = np.where(mask, rng.integers(5, vocab, (b, seq)), 1).astype(np.int32)
    ids[:, 0] = 0
    if kind == "tagging":
        labels = np.where(mask, rng.integers(0, num_labels, (b, seq)), -100).astype(np.int32)
    else:
        labels = rng.integers(0, num_labels, b).astype(np.int32)
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids), labels=labels)
