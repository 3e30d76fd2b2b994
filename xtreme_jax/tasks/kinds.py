"""Task kinds: everything that differs between classification, multiple choice, tagging, span
(extractive QA), retrieval and MLM, in one table. Code elsewhere asks the kind of a task
(`task.family`) instead of switching on its name; a new kind is one entry here (plus its
featurizer, its model head in models/heads.py and its decoder in evaluation/decoding.py).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from xtreme_jax.tasks import featurize as F


@dataclasses.dataclass(frozen=True)
class Kind:
    name: str
    featurize: Callable           # (examples, tokenizer, *, max_length, labels, num_choices, progress, **opts)
    head_labels: Callable | None  # (task, source) -> outputs of the head; None: no trained head
    labels_from_data: bool        # featurizing needs the label list (class / tag names)
    output: str                   # per row from the evaluator's forward: logits | argmax | embedding
    token_level: bool             # outputs per token (re-assembled per word / span), not per row
    validated: bool               # training phases validate it on its English dev subset
    dev_accuracy: bool            # validation reports accuracy (argmax == label) besides the loss
    label_key: Callable           # example -> the keys it adds to the label counts (data.inspect)
    ties_word_embedding: bool = False  # its head reads every word-embedding row (a tied decoder)
    # dev score of guessing, (task, number of labels) -> [0, 1]: the study layer's difficulty
    # measure normalizes by it (0 for tagging, spans and the rest: no score by chance)
    chance_score: Callable = lambda task, num_labels: 0.0


def _class_count(task, source):
    return len(task.label_list(source))


KINDS = {k.name: k for k in (
    Kind("classification", F.featurize_classification, _class_count, True, "logits", False, True, True,
         lambda e: [str(e["label"])], chance_score=lambda task, num_labels: 1.0 / max(num_labels, 1)),
    # One score per (context, choice) pair: the head has one output whatever the number of choices.
    Kind("multiple_choice", F.featurize_multiple_choice, lambda task, source: 1, False, "logits", False,
         True, True, lambda e: [str(e["label"])], chance_score=lambda task, num_labels: 1.0 / max(task.num_choices, 1)),
    Kind("tagging", F.featurize_tagging, _class_count, True, "argmax", True, True, True,
         lambda e: e.get("tags") or []),
    # start / end logits per token
    # dev accuracy: both boundaries exact (heads.SpanHead.correct, a cheap EM proxy)
    Kind("span", F.featurize_span, lambda task, source: 2, False, "logits", True, True, True,
         lambda e: ["answerable" if e["answers"]["text"] else "no_answer"]),
    # The encoder's pooled hidden states are compared directly: no head is trained.
    Kind("retrieval", F.featurize_retrieval, None, False, "embedding", False, False, False,
         lambda e: ["query" if e["side"] == 0 else "candidate"]),
    # The decoder is tied to the word embeddings; 2 is only the head's recorded label count.
    # Not validated: the loop's dev check is for the English tasks (MLM is watched by its loss).
    Kind("mlm", F.featurize_mlm, lambda task, source: 2, False, "logits", True, False, False,
         lambda e: [], ties_word_embedding=True),
)}
