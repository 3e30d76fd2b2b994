"""Evaluation results: per task (scores, predictions, info), and leaderboard submission files."""
from __future__ import annotations

import dataclasses
import logging

from xtreme_jax import scoring
from xtreme_jax.scoring.submission import SUBMISSION_TASKS

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TaskResult:
    task: str
    scores: dict        # {lang: {metric: value}}; a language without gold labels is absent
    predictions: dict   # {lang: predictions in write_submission's shape}
    info: dict          # timings, compile count, batches, BUCC thresholds, ...


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
