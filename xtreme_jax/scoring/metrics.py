"""XTREME metrics on in-memory predictions, numerically identical to the official scripts.

Every formula keeps the official operation order (e.g. `correct / n * 100`, not
`correct * 100 / n`) so the floats match bit for bit, not just to a few decimals.
Sources: google-research/xtreme `evaluate.py`, `third_party/evaluate_squad.py`,
`third_party/evaluate_mlqa.py`, `third_party/utils_mewslix.py`, `third_party/utils_lareqa.py`.
"""

import collections
import functools
import re
import string
import sys
import unicodedata
import warnings

import numpy as np


class ScoringError(ValueError):
    """Bad or mismatched predictions/labels; the message names the file or task and the fix."""


# --------------------------------------------------------------------------- classification

def accuracy(labels, predictions):
    """xnli / pawsx / xcopa / tatoeba: percent of exact matches."""
    if len(predictions) != len(labels):
        raise ScoringError(f"{len(predictions)} predictions for {len(labels)} labels")
    if not predictions:
        raise ScoringError("no examples to score (empty predictions and labels)")
    correct = sum(int(p == l) for p, l in zip(predictions, labels))
    return {"accuracy": float(correct) / len(predictions) * 100}


# --------------------------------------------------------------------------- tagging

def _check_tag_shapes(labels, predictions):
    if len(predictions) != len(labels):
        raise ScoringError(f"{len(predictions)} predicted sentences for {len(labels)} gold ones")
    for i, (p, l) in enumerate(zip(predictions, labels)):
        if len(p) != len(l):
            raise ScoringError(f"sentence {i}: {len(p)} predicted tags for {len(l)} gold tokens")


def seqeval_f1(labels, predictions):
    """panx / udpos: seqeval's default (non-strict) entity P/R/F1, as evaluate.py calls it.

    For udpos the official script also feeds plain UPOS tags to seqeval, which reads their first
    letter as a chunk prefix; we keep that quirk on purpose (it is what the leaderboard reports)
    and give the honest per-token number separately in `pos_accuracy`.
    """
    from seqeval.metrics import f1_score, precision_score, recall_score

    _check_tag_shapes(labels, predictions)
    labels = [list(s) for s in labels]
    predictions = [list(s) for s in predictions]
    with warnings.catch_warnings():
        # "NOUN seems not to be NE tag" for every POS tag, and zero-division notices.
        warnings.simplefilter("ignore")
        f1 = f1_score(labels, predictions)
        prec = precision_score(labels, predictions)
        rec = recall_score(labels, predictions)
    return {"f1": float(f1) * 100, "precision": float(prec) * 100, "recall": float(rec) * 100}


def pos_accuracy(labels, predictions):
    """Per-token tag accuracy (not an official key; reported beside udpos seqeval F1)."""
    _check_tag_shapes(labels, predictions)
    total = sum(len(s) for s in labels)
    if total == 0:
        raise ScoringError("no tokens to score")
    correct = sum(int(p == l) for ps, ls in zip(predictions, labels) for p, l in zip(ps, ls))
    return {"token_accuracy": float(correct) / total * 100}


# --------------------------------------------------------------------------- SQuAD v1.1

def squad_normalize(text):
    """lower -> drop ASCII punctuation -> drop English articles -> collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


_ASCII_PUNCT = frozenset(string.punctuation)


def _token_f1(pred_tokens, gold_tokens):
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_tokens)
    recall = 1.0 * num_same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def _qa_em_f1(dataset, predictions, normalize, name):
    """Shared SQuAD/MLQA loop: max over gold answers, unanswered questions count as 0."""
    if isinstance(dataset, dict):
        dataset = dataset.get("data", dataset)
    em = f1 = total = 0
    unanswered = []
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    unanswered.append(qa["id"])
                    continue
                pred = predictions[qa["id"]]
                if not isinstance(pred, str):
                    raise ScoringError(f"{name}: prediction for question {qa['id']!r} is "
                                       f"{type(pred).__name__}, expected the answer text (str)")
                norm_pred = normalize(pred)
                golds = [normalize(a["text"]) for a in qa["answers"]]
                if not golds:
                    raise ScoringError(f"{name}: gold question {qa['id']!r} has no answers")
                em += max(norm_pred == g for g in golds)
                f1 += max(_token_f1(norm_pred.split(), g.split()) for g in golds)
    if total == 0:
        raise ScoringError(f"{name}: the gold data holds no questions")
    if unanswered:
        # The official scripts print one line per question; one summary line is kinder.
        print(f"{name}: {len(unanswered)} of {total} questions unanswered (scored 0), "
              f"e.g. {unanswered[0]!r}", file=sys.stderr)
    return {"exact_match": 100.0 * em / total, "f1": 100.0 * f1 / total}


def squad_em_f1(dataset, predictions, name="squad"):
    """xquad / tydiqa. dataset: SQuAD `data` list or whole file dict; predictions: id -> text."""
    return _qa_em_f1(dataset, predictions, squad_normalize, name)


# --------------------------------------------------------------------------- MLQA

@functools.cache
def _unicode_punct():
    # Every code point whose category starts with P, plus ASCII punctuation (which adds symbols
    # like $ + < = > ^ ` | ~ that Unicode files under S*). Built once, ~0.3 s.
    punct = {chr(i) for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P")}
    return frozenset(punct | set(string.punctuation))


MLQA_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "hi": None,  # no articles
    "zh": None,
    "ar": "ال",  # official regex reduces to: every occurrence of the prefix al-, anywhere
}
_WHITESPACE_LANGS = {"en", "es", "hi", "vi", "de", "ar"}
_CJK = re.compile(r"[\u4e00-\u9fa5]")


def _mixed_segmentation(text, punct):
    """zh: every CJK ideograph (and punctuation mark) is its own token; other runs split on spaces."""
    tokens, run = [], ""
    for ch in text:
        if _CJK.search(ch) or ch in punct:
            tokens.extend(run.split())
            run = ""
            tokens.append(ch)
        else:
            run += ch
    tokens.extend(run.split())
    return tokens


def mlqa_normalize(text, lang):
    if lang not in MLQA_ARTICLES:
        raise ScoringError(f"MLQA normalisation knows languages {sorted(MLQA_ARTICLES)}, not {lang!r}")
    punct = _unicode_punct()
    text = "".join(ch for ch in text.lower() if ch not in punct)
    if lang == "ar":
        # The official pattern is '\sال^|ال'; its first branch can never match (^ after three
        # characters), so it is a plain replace of every 'ال' by a space.
        text = text.replace("ال", " ")
    elif MLQA_ARTICLES[lang]:
        text = re.sub(MLQA_ARTICLES[lang], " ", text)
    tokens = text.split() if lang in _WHITESPACE_LANGS else _mixed_segmentation(text, punct)
    return " ".join(t for t in tokens if t.strip() != "")


def mlqa_em_f1(dataset, predictions, lang, name="mlqa"):
    """mlqa: SQuAD loop with MLQA's per-language normalisation (answer language = `lang`)."""
    if lang not in MLQA_ARTICLES:
        raise ScoringError(f"{name}: MLQA scores languages {sorted(MLQA_ARTICLES)}, not {lang!r}")
    return _qa_em_f1(dataset, predictions, lambda s: mlqa_normalize(s, lang), name)


# --------------------------------------------------------------------------- retrieval

def _pair(item):
    if isinstance(item, str):
        return tuple(item.split("\t"))
    return tuple(str(x) for x in item)


def bucc_f1(labels, predictions):
    """bucc2018: P/R/F1 over sets of (source id, target id) pairs ("de-1\\ten-42" or tuples)."""
    gold = {_pair(x) for x in labels}
    pred = {_pair(x) for x in predictions}
    ncorrect = len(gold & pred)
    if ncorrect > 0:
        prec = ncorrect / len(pred)
        rec = ncorrect / len(gold)
        f1 = 2 * prec * rec / (prec + rec)
    else:
        prec = rec = f1 = 0
    return {"f1": f1 * 100, "precision": prec * 100, "recall": rec * 100}


def average_precision_at_k(targets, ranked, k=20):
    """AP@k as utils_lareqa: precision at each first-seen hit, divided by min(#targets, k)."""
    ranked = list(ranked)[:k] if k else list(ranked)
    targets = set(targets)
    if not targets:
        raise ScoringError("AP@k needs at least one relevant candidate per question")
    score = hits = 0.0
    for i, pred in enumerate(ranked):
        if pred in targets and pred not in ranked[:i]:
            hits += 1.0
            score += hits / (i + 1.0)
    return score / (min(len(targets), k) if k else len(targets))


def mewslix_map20(labels, predictions, k=20):
    """mewslix: mAP@20 = MRR@20, as there is one gold entity per mention (the first, stripped).

    labels: example id -> [gold entity id]; predictions: example id -> ranked entity ids.
    A mention with no prediction scores 0.
    """
    rr = []
    for ex_id, gold in labels.items():
        gold = gold[0].strip()
        rank = next((r for r, p in enumerate(predictions.get(ex_id, [])[:k], start=1) if p == gold), 0)
        rr.append(1.0 / rank if rank else 0.0)
    mrr = sum(rr) / len(rr) if rr else 0.0
    return {"map@20": mrr * 100}


def lareqa_map20(labels, predictions, k=20):
    """lareqa: mean AP@20 over questions; labels: question id -> every relevant candidate id
    (the answer sentence in all 11 languages); predictions: question id -> ranked candidate ids.

    evaluate.py scores no LAReQA files (its language list is empty); this follows
    utils_lareqa.mean_avg_prec_at_k, including its numpy mean.
    """
    if not labels:
        raise ScoringError("lareqa: no questions to score")
    aps = [average_precision_at_k(gold, predictions.get(q, []), k) for q, gold in labels.items()]
    return {"map@20": float(np.mean(aps)) * 100}
