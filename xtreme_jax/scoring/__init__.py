"""XTREME / XTREME-R scoring, identical in keys and numbers to the official `evaluate.py`."""

from xtreme_jax.scoring.metrics import (ScoringError, accuracy, average_precision_at_k, bucc_f1,
                                        lareqa_map20, mewslix_map20, mlqa_em_f1, mlqa_normalize,
                                        pos_accuracy, seqeval_f1, squad_em_f1, squad_normalize)
from xtreme_jax.scoring.official import (GROUPS, TASK_ORDER, aggregate, evaluate_folders,
                                         read_file, score_file, score_task, suffix)
from xtreme_jax.scoring.submission import submission_path, write_submission

__all__ = [
    "ScoringError", "accuracy", "average_precision_at_k", "bucc_f1", "lareqa_map20",
    "mewslix_map20", "mlqa_em_f1", "mlqa_normalize", "pos_accuracy", "seqeval_f1", "squad_em_f1",
    "squad_normalize", "GROUPS", "TASK_ORDER", "aggregate", "evaluate_folders", "read_file",
    "score_file", "score_task", "suffix", "submission_path", "write_submission",
]
