"""Task-level scoring, aggregation and folder evaluation with the rules of XTREME `evaluate.py`.

Layout and keys follow google-research/xtreme `evaluate.py`: per task `{metric: {lang: value}}`,
then `avg_<metric>` (plain mean over languages in the official language order) and `avg_metric`
((avg_exact_match + avg_f1) / 2 for QA, else avg_f1, avg_accuracy or avg_map@20); overall
`all_task` (mean of avg_metric over every task of the version) and one score per group.
"""

import io
import json
import math
import os
import sys

from xtreme_jax.scoring import metrics
from xtreme_jax.scoring.metrics import ScoringError
from xtreme_jax.tasks.languages import BENCHMARKS

# Task order of evaluate.py's language tables: it fixes the JSON key order.
TASK_ORDER = {
    "xtreme": ("pawsx", "xnli", "panx", "udpos", "bucc2018", "tatoeba", "xquad", "mlqa", "tydiqa"),
    "xtreme-r": ("xnli", "panx", "udpos", "tatoeba", "xcopa", "lareqa", "mewslix", "xquad", "mlqa",
                 "tydiqa"),
}

# evaluate.py's groups. XTREME-R lists xcopa twice and leaves lareqa out of retrieval.
GROUPS = {
    "xtreme": {"classification": ("pawsx", "xnli"), "tagging": ("udpos", "panx"),
               "qa": ("xquad", "mlqa", "tydiqa"), "retrieval": ("bucc2018", "tatoeba")},
    "xtreme-r": {"classification": ("xnli", "xcopa"), "tagging": ("udpos", "panx"),
                 "qa": ("xquad", "mlqa", "tydiqa"), "retrieval": ("tatoeba", "mewslix"),
                 "multi_choice": ("xcopa",)},
}
QA_TASKS = ("xquad", "mlqa", "tydiqa")

SUFFIX = {"xquad": "json", "mlqa": "json", "tydiqa": "json", "mewslix": "json", "xcopa": "jsonl"}

UPOS = ("ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X").split()
# Predictions must use these (or a label the gold file itself uses).
LABELS = {
    "xnli": {"entailment", "neutral", "contradiction"},
    "pawsx": {"0", "1"},
    "xcopa": {0, 1},
    "panx": {"O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"},
    "udpos": set(UPOS),
}


def suffix(task):
    """File extension of `test-{lang}.<ext>` for a task."""
    return SUFFIX.get(task, "tsv")


def file_languages(task, version):
    """Languages whose files evaluate.py reads; empty for lareqa, which it does not score."""
    return [] if task == "lareqa" else list(BENCHMARKS[version][task])


# --------------------------------------------------------------------------- validation + scoring

class _Source:
    """Where predictions/labels came from, so errors can name a file and line."""

    def __init__(self, pred="predictions", label="labels", lines=None):
        self.pred, self.label, self.lines = pred, label, lines

    def at(self, i, j=0):
        if self.lines is not None:
            return f"{self.pred}:{self.lines[i] + j}"
        return f"{self.pred}: example {i}" + (f", token {j}" if j else "")


def _check(task, preds, labels, src):
    """Catch what evaluate.py would silently mis-score or crash on."""
    fix = "; regenerate predictions for the full test set in its original order"
    if task in ("xnli", "pawsx", "xcopa", "tatoeba", "panx", "udpos"):
        if len(preds) != len(labels):
            unit = "sentences" if task in ("panx", "udpos") else "examples"
            raise ScoringError(f"{src.pred} has {len(preds)} {unit} but {src.label} has "
                               f"{len(labels)}{fix}")
        if not labels:
            raise ScoringError(f"{src.label} holds no examples; is it the right file?")
    if task in ("xnli", "pawsx", "xcopa"):
        allowed = LABELS[task] | set(labels)
        for i, p in enumerate(preds):
            if p not in allowed:
                raise ScoringError(f"{src.at(i)}: unknown {task} label {p!r}; expected one of "
                                   f"{sorted(map(str, allowed))}")
    elif task == "tatoeba":
        for i, p in enumerate(preds):
            if not str(p).isdigit():
                raise ScoringError(f"{src.at(i)}: tatoeba prediction {p!r} is not the 0-based "
                                   f"index of an English sentence")
    elif task in ("panx", "udpos"):
        allowed = LABELS[task].union(*map(set, labels))
        for i, (ps, ls) in enumerate(zip(preds, labels)):
            if len(ps) != len(ls):
                raise ScoringError(f"{src.at(i)}: sentence {i} has {len(ps)} predicted tags but "
                                   f"the gold sentence has {len(ls)} tokens; write one tag per "
                                   f"word and a blank line between sentences")
            for j, p in enumerate(ps):
                if p not in allowed:
                    raise ScoringError(f"{src.at(i, j)}: unknown {task} tag {p!r}; expected one "
                                       f"of {sorted(allowed)}")
    elif task == "bucc2018":
        for i, p in enumerate(preds):
            pair = metrics._pair(p)
            if len(pair) != 2 or not all(pair):
                raise ScoringError(f"{src.at(i)}: expected 'source_id<TAB>target_id', got {p!r}")
    elif task in QA_TASKS + ("mewslix", "lareqa"):
        gold = labels.get("data", labels) if isinstance(labels, dict) else labels
        if task in QA_TASKS and not (isinstance(gold, list) and
                                     all(isinstance(a, dict) and "paragraphs" in a for a in gold)):
            raise ScoringError(f'{src.label}: expected SQuAD v1.1 JSON '
                               f'{{"data": [{{"paragraphs": [{{"qas": [...]}}]}}]}}')
        if task not in QA_TASKS and not isinstance(labels, dict):
            raise ScoringError(f"{src.label}: expected a JSON object mapping example id to a "
                               f"list of gold ids")
        if not isinstance(preds, dict):
            raise ScoringError(f"{src.pred}: expected a JSON object mapping example id to "
                               f"{'answer text' if task in QA_TASKS else 'a ranked list of ids'}")
        if task in QA_TASKS:
            for k, v in preds.items():
                if not isinstance(v, str):
                    raise ScoringError(f"{src.pred}: prediction for question {k!r} is "
                                       f"{type(v).__name__}, expected the answer text (str)")
        else:
            for k, v in preds.items():
                if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
                    raise ScoringError(f"{src.pred}: prediction for {k!r} must be a ranked list "
                                       f"of id strings, got {v!r:.80}")


def _score(task, preds, labels, lang, extras, src):
    if task in ("xnli", "pawsx", "tatoeba"):
        # The official files compare as strings; callers may hold ints (label ids, indices).
        preds, labels = [str(p) for p in preds], [str(l) for l in labels]
    _check(task, preds, labels, src)
    name = f"{task}/{lang}" if lang else task
    if task in ("xnli", "pawsx", "xcopa", "tatoeba"):
        return metrics.accuracy(labels, preds)
    if task in ("panx", "udpos"):
        out = metrics.seqeval_f1(labels, preds)
        if task == "udpos" and extras:
            out.update(metrics.pos_accuracy(labels, preds))
        return out
    if task == "bucc2018":
        return metrics.bucc_f1(labels, preds)
    if task in ("xquad", "tydiqa"):
        return metrics.squad_em_f1(labels, preds, name=name)
    if task == "mlqa":
        if lang is None:
            raise ScoringError("mlqa needs the 2-letter language code (lang=...) to normalise")
        return metrics.mlqa_em_f1(labels, preds, lang, name=name)
    if task == "mewslix":
        return metrics.mewslix_map20(labels, preds)
    if task == "lareqa":
        return metrics.lareqa_map20(labels, preds)
    known = sorted(set(TASK_ORDER["xtreme"]) | set(TASK_ORDER["xtreme-r"]))
    raise ScoringError(f"unknown task {task!r}; known: {known}")


def score_task(task, predictions, labels, lang=None, *, extras=True):
    """Score one language of one task from in-memory predictions and gold labels.

    Shapes: a label per example (xnli, pawsx, xcopa; tatoeba: gold English index); a tag list per
    sentence (panx, udpos); (src_id, trg_id) pairs or "src\\ttrg" strings (bucc2018); id -> answer
    text with SQuAD `data` gold (xquad, mlqa, tydiqa); id -> ranked ids with id -> [gold ids]
    (mewslix, lareqa). Returns the official metric dict; with extras, udpos also gets
    `token_accuracy`.
    """
    return _score(task, predictions, labels, lang, extras, _Source())


# --------------------------------------------------------------------------- aggregation

def _main_metric(task, score):
    if task in QA_TASKS and "avg_exact_match" in score and "avg_f1" in score:
        return (score["avg_exact_match"] + score["avg_f1"]) / 2
    for key in ("avg_f1", "avg_accuracy", "avg_map@20"):
        if key in score:
            return score[key]
    return None


def aggregate(results, benchmark="xtreme"):
    """Per-task averages plus group and overall scores, in evaluate.py's JSON layout.

    results: {task: {lang: {metric: value}}}. A task is averaged over the languages given; group
    and `all_task` scores appear only when every task they need covers all its languages.
    Returns {"all_task"?, <group>..., <task>: {metric: {lang: v}, "avg_<metric>": v,
    "avg_metric": v}}.
    """
    if benchmark not in TASK_ORDER:
        raise ScoringError(f"unknown benchmark {benchmark!r}; use one of {sorted(TASK_ORDER)}")
    order = TASK_ORDER[benchmark]
    tasks = [t for t in order if t in results] + [t for t in results if t not in order]
    detailed, complete = {}, set()
    for task in tasks:
        official = BENCHMARKS[benchmark].get(task, [])
        rank = {lg: i for i, lg in enumerate(official)}
        # Official language order, so float sums match evaluate.py to the last bit.
        langs = sorted(results[task], key=lambda lg: rank.get(lg, len(rank)))
        score = {}
        for lg in langs:
            for m, v in results[task][lg].items():
                score.setdefault(m, {})[lg] = v
        score.update({f"avg_{m}": sum(v.values()) / len(v) for m, v in list(score.items())})
        main = _main_metric(task, score) if score else None
        if main is not None:
            score["avg_metric"] = main
            if set(official) <= set(langs):
                complete.add(task)
        detailed[task] = score

    overall = {}
    if all(t in complete for t in order):
        # evaluate.py sums over a set, so its last digit can change with PYTHONHASHSEED; an
        # exactly rounded sum is order-free and equals its usual output.
        overall["all_task"] = math.fsum(detailed[t]["avg_metric"] for t in order) / len(order)
    for group, members in GROUPS[benchmark].items():
        if all(t in complete for t in members):
            overall[group] = sum(detailed[t]["avg_metric"] for t in members) / len(members)
    return {**overall, **detailed}


# --------------------------------------------------------------------------- files

def _open(path):
    """The file's text as a stream. A UTF-8 byte-order mark (written by some Windows editors) is
    dropped rather than glued to the first label; bytes that are not UTF-8 are an error naming
    the line, instead of a decoder traceback."""
    if not os.path.isfile(path):
        raise ScoringError(f"missing file {path}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ScoringError(f"{path}:{line}: not valid UTF-8 (byte {data[e.start]:#04x}); "
                           "save the file as UTF-8") from None
    return io.StringIO(text, newline=None)


def read_lines(path):
    """One label per line, stripped (blank lines kept, as evaluate.py's read_label)."""
    with _open(path) as f:
        return [line.strip() for line in f]


def read_tags(path):
    """Tag per line, blank line between sentences. Returns (sentences, first line of each)."""
    sents, starts, cur = [], [], []
    with _open(path) as f:
        for n, line in enumerate(f, start=1):
            line = line.strip()
            if line:
                if not cur:
                    starts.append(n)
                cur.append(line)
            else:
                # As evaluate.py's read_tag: every blank line closes a sentence, even an empty one.
                if not cur:
                    starts.append(n)
                sents.append(cur)
                cur = []
    if cur:
        sents.append(cur)
    return sents, starts


def read_json(path):
    with _open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ScoringError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None


def read_jsonl_labels(path):
    """xcopa: one JSON object with a "label" per line."""
    labels = []
    with _open(path) as f:
        for n, line in enumerate(f, start=1):
            try:
                labels.append(json.loads(line)["label"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ScoringError(f'{path}:{n}: expected a JSON object like {{"label": 0}}, got '
                                   f"{line.strip()!r:.80}") from None
    return labels


def read_file(task, path):
    """Read a prediction or label file of `task` into score_task's in-memory shape."""
    if task in ("panx", "udpos"):
        return read_tags(path)[0]
    if task == "xcopa":
        return read_jsonl_labels(path)
    if suffix(task) == "json":
        data = read_json(path)
        # evaluate.py unwraps a SQuAD file's "data" list the same way.
        return data["data"] if isinstance(data, dict) and "data" in data else data
    return read_lines(path)


def score_file(task, prediction_file, label_file, lang=None, *, extras=False):
    """Score one `test-{lang}` prediction file against its label file."""
    labels = read_file(task, label_file)
    preds = read_file(task, prediction_file)
    lines = read_tags(prediction_file)[1] if task in ("panx", "udpos") else None
    if lines is None and suffix(task) == "tsv":
        lines = range(1, len(preds) + 1)
    return _score(task, preds, labels, lang, extras, _Source(prediction_file, label_file, lines))


def evaluate_folders(prediction_folder, label_folder, xtreme_version="xtreme", *, extras=False):
    """Score every task folder present in both folders; returns the official JSON dict."""
    if xtreme_version not in TASK_ORDER:
        raise ScoringError(f"unknown xtreme_version {xtreme_version!r}; use xtreme or xtreme-r")
    for folder in (prediction_folder, label_folder):
        if not os.path.isdir(folder):
            raise ScoringError(f"{folder} is not a folder; pass the folder that holds one "
                               f"sub-folder per task (e.g. xnli/test-de.tsv)")
    order = TASK_ORDER[xtreme_version]
    present = [t for t in order if os.path.isdir(os.path.join(prediction_folder, t))
               and os.path.isdir(os.path.join(label_folder, t))]
    for t in sorted(os.listdir(prediction_folder)):
        if os.path.isdir(os.path.join(prediction_folder, t)) and t not in present:
            why = "no labels for it" if t in order else f"not a {xtreme_version} task"
            print(f"note: skipping {os.path.join(prediction_folder, t)} ({why})", file=sys.stderr)

    if not present:
        raise ScoringError(
            f"no {xtreme_version} task folder found in both {prediction_folder} and {label_folder}; "
            f"each must hold one sub-folder per task, e.g. xnli/test-de.tsv "
            f"({xtreme_version} tasks: {' '.join(order)})")
    results = {}
    for task in present:
        results[task] = {}
        for lg in file_languages(task, xtreme_version):
            name = f"test-{lg}.{suffix(task)}"
            pred = os.path.join(prediction_folder, task, name)
            label = os.path.join(label_folder, task, name)
            for path, who in ((pred, "prediction"), (label, "label")):
                if not os.path.isfile(path):
                    raise ScoringError(
                        f"missing {who} file {path}: the {task} folder needs {name} for every "
                        f"{task} language of {xtreme_version} "
                        f"({' '.join(file_languages(task, xtreme_version))}); write it with "
                        f"xtreme_jax.scoring.write_submission or delete the {task} folder to "
                        f"skip the task")
            results[task][lg] = score_file(task, pred, label, lg, extras=extras)
    return aggregate(results, xtreme_version)
