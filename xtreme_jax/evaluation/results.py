"""Evaluation results: per task (scores, predictions, info), and leaderboard submission files."""
from __future__ import annotations

import dataclasses
import logging

from xtreme_jax import scoring
from xtreme_jax.scoring.submission import SUBMISSION_TASKS

log = logging.getLogger(__name__)

# Tasks whose numbers here are not those of the benchmark's own recipe, said wherever they are
# reported (results.json, results.md, the console). XTREME-R fine-tunes a dual encoder for these
# (scripts/train_mewslix.sh: run_retrieval_el.py on Wikipedia mention-entity pairs;
# scripts/train_lareqa.sh: run_retrieval_qa.py on SQuAD); here the encoder is used as it is.
NOT_COMPARABLE = {
    "mewslix": "zero-shot score of the frozen encoder (no retrieval fine-tuning): NOT comparable to "
               "the XTREME-R baselines, which fine-tune a dual encoder on Wikipedia mention-entity "
               "pairs (scripts/train_mewslix.sh, run_retrieval_el.py)",
    "lareqa": "zero-shot score of the frozen encoder (no retrieval fine-tuning): NOT comparable to "
              "the XTREME-R baselines, which fine-tune a dual encoder on SQuAD question-sentence "
              "pairs (scripts/train_lareqa.sh, run_retrieval_qa.py)",
}


def notes(tasks) -> dict:
    """{task: why its scores are not comparable to the benchmark's} for the tasks that need it."""
    return {t: NOT_COMPARABLE[t] for t in tasks if t in NOT_COMPARABLE}


def no_gold(task: str, split: str, lang: str) -> str:
    """Why a language of a task gets predictions but no score."""
    why = f"{task}/{lang}: the {split} data has no gold labels"
    if split == "test":  # XTREME's download keeps test labels for the leaderboard (utils_preprocess.py)
        why += (" (the official XTREME download strips test labels, e.g. PAWS-X test and the BUCC "
                "test gold, for the leaderboard)")
    return why


@dataclasses.dataclass
class TaskResult:
    task: str
    scores: dict        # {lang: {metric: value}}; a language without gold labels is absent
    predictions: dict   # {lang: predictions in write_submission's shape}
    info: dict          # timings, compile count, batches, BUCC thresholds, ...; "unscored":
                        # {lang: reason} of the languages predicted without a score

    @property
    def unscored(self) -> dict:
        return dict(self.info.get("unscored", {}))


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
