"""Decoding per task kind: the evaluator's per-unit outputs of one EvalSet -> predictions in the
submission's shape, and the gold labels in the scorer's shape (None when the set has none).

    classification / multiple choice   argmax of the logits
    tagging                            argmax per token, re-assembled into one tag per word
    span (QA)                          n-best spans per window, best span per example

Retrieval has no decoder: its embeddings go to a retrieval scorer (evaluation/retrieval.py).
A new kind with a head adds its decoder to DECODERS.
"""
from __future__ import annotations

import numpy as np

from xtreme_jax.data.features import Features
from xtreme_jax.tasks.decode import decode_qa, tags_to_words


def _all_or_none(gold):
    return None if any(g is None for g in gold) else gold


def _row_of_example(f: Features, n: int) -> np.ndarray:
    ex = np.asarray(f.rows["example_index"])
    row = np.full(n, -1, np.int64)
    row[ex[::-1]] = np.arange(len(ex))[::-1]  # first row of each example
    return row


def decode_classification(s, out, **_):
    names = list(s.features.meta["labels"])
    ids = out.argmax(axis=-1)
    preds = [names[int(ids[r])] for r in _row_of_example(s.features, len(s.examples))]
    return preds, _all_or_none([e["label"] for e in s.examples])


def decode_multiple_choice(s, out, **_):
    ids = out.argmax(axis=-1)
    unit_of_ex = np.asarray(s.features.rows["example_index"])[::s.features.group]
    preds = [0] * len(s.examples)
    for u, e in enumerate(unit_of_ex):
        preds[int(e)] = int(ids[u])
    return preds, _all_or_none([e["label"] for e in s.examples])


def decode_tagging(s, out, **_):
    preds = tags_to_words(s.features, out, s.features.meta["labels"])
    return preds, _all_or_none([e.get("tags") for e in s.examples])


def decode_span(s, out, *, n_best: int = 20, max_answer_length: int = 30):
    preds = decode_qa(s.examples, s.features, [o[:, 0] for o in out], [o[:, 1] for o in out],
                      n_best=n_best, max_answer_length=max_answer_length)
    if any(not (e.get("answers") or {}).get("text") for e in s.examples):
        return preds, None
    return preds, squad_gold(s.examples)


def squad_gold(examples: list) -> list:
    """SQuAD v1.1 `data` list of the examples (one article, one paragraph per question)."""
    return [{"paragraphs": [{"qas": [{"id": e["id"], "answers": [{"text": t} for t in e["answers"]["text"]]}]}
                            for e in examples]}]


DECODERS = {"classification": decode_classification, "multiple_choice": decode_multiple_choice,
            "tagging": decode_tagging, "span": decode_span}
