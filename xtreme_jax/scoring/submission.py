"""Leaderboard submission files: `<folder>/<task>/test-<lang>.<ext>`, written atomically.

Formats are what evaluate.py reads and what the official baselines write (run_classify,
run_tag's save_predictions, run_squad, evaluate_retrieval, run_xcopa).
"""

import json
import os
import re

from xtreme_jax.files import write_atomic
from xtreme_jax.scoring.metrics import ScoringError
from xtreme_jax.scoring.official import QA_TASKS, suffix

SUBMISSION_TASKS = ("xnli", "pawsx", "xcopa", "udpos", "panx", "xquad", "mlqa", "tydiqa",
                    "bucc2018", "tatoeba", "mewslix")


def _one_line(x, where):
    s = str(x)
    if not s.strip() or "\n" in s or "\t" in s:
        raise ScoringError(f"{where}: {s!r} cannot be written as one line of a .tsv file")
    return s


def _int(x, where):
    try:
        return int(x)
    except (TypeError, ValueError):
        raise ScoringError(f"{where}: expected an integer, got {x!r}") from None


def _render(task, lang, predictions):
    where = f"write_submission({task!r}, {lang!r})"
    if task in ("xnli", "pawsx"):
        return "".join(_one_line(p, f"{where} example {i}") + "\n"
                       for i, p in enumerate(predictions))
    if task == "tatoeba":
        # The 0-based index of the English sentence retrieved for each source sentence.
        return "".join(f"{_int(p, f'{where} example {i}')}\n" for i, p in enumerate(predictions))
    if task == "xcopa":
        return "".join(json.dumps({"label": _int(p, f"{where} example {i}")}) + "\n"
                       for i, p in enumerate(predictions))
    if task in ("udpos", "panx"):
        sents = []
        for i, tags in enumerate(predictions):
            tags = list(tags)
            if not tags:
                # An empty sentence cannot be written without desynchronising the file.
                raise ScoringError(f"{where}: sentence {i} has no tags")
            sents.append("".join(_one_line(t, f"{where} sentence {i}") + "\n" for t in tags))
        # Blank line between sentences, none after the last (as run_tag.save_predictions).
        return "\n".join(sents)
    if task == "bucc2018":
        lines = []
        for p in predictions:
            pair = p.split("\t") if isinstance(p, str) else [str(x) for x in p]
            if len(pair) != 2:
                raise ScoringError(f"{where}: expected (source_id, target_id), got {p!r}")
            lines.append("\t".join(_one_line(x, where) for x in pair) + "\n")
        return "".join(lines)
    if task in QA_TASKS or task == "mewslix":
        if not isinstance(predictions, dict):
            raise ScoringError(f"{where}: expected a dict of example id -> "
                               f"{'answer text' if task in QA_TASKS else 'ranked entity ids'}")
        if task in QA_TASKS:
            bad = [k for k, v in predictions.items() if not isinstance(v, str)]
            if bad:
                raise ScoringError(f"{where}: answer for {bad[0]!r} is not a string")
            data = {str(k): v for k, v in predictions.items()}
        else:
            data = {str(k): [str(x) for x in v] for k, v in predictions.items()}
        return json.dumps(data, indent=2) + "\n"
    if task == "lareqa":
        raise ScoringError("lareqa has no leaderboard file: evaluate.py scores no LAReQA files. "
                           "Score it with xtreme_jax.scoring.score_task('lareqa', ...)")
    raise ScoringError(f"unknown task {task!r}; submission tasks: {', '.join(SUBMISSION_TASKS)}")


def submission_path(folder, task, lang):
    return os.path.join(folder, task, f"test-{lang}.{suffix(task)}")


def write_submission(folder, task, lang, predictions):
    """Write `folder/<task>/test-<lang>.<ext>` in the leaderboard format; returns the path.

    `folder` is the predictions root (the one passed as --prediction_folder). predictions:
    labels (xnli, pawsx), 0/1 ints (xcopa), English indices (tatoeba), tag lists per sentence
    (udpos, panx), (source_id, target_id) pairs (bucc2018), {id: answer text} (xquad, mlqa,
    tydiqa), {id: ranked entity ids} (mewslix).
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]+", str(lang)):
        raise ScoringError(f"write_submission: {lang!r} is not a plain language code like 'de'")
    text = _render(task, lang, predictions)
    return write_atomic(submission_path(folder, task, lang), text)
