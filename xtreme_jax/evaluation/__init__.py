"""Zero-shot evaluation: every language of a task through one compiled forward.

    evaluator.py   Evaluator: the stream / forward / gather core, `evaluate_task(task, sets)`
    sets.py        EvalSet, load_eval_sets: one set per language (and split) of a task
    decoding.py    model outputs -> predictions and gold, one decoder per task kind
    retrieval.py   kNN, margin mining, BUCC threshold, mAP@20; SCORERS: retrieval task -> scorer
    scores.py      metric dispatch: official XTREME scoring, else METRICS[task.metric]
    results.py     TaskResult, EvalResults (aggregate, leaderboard submission files)
"""
from xtreme_jax.evaluation.decoding import DECODERS, squad_gold  # noqa: F401
from xtreme_jax.evaluation.evaluator import (Evaluator, allgather_concat, default_retrieval_layer,  # noqa: F401
                                             resolve_layer, split_by_set)
from xtreme_jax.evaluation.results import EvalResults, TaskResult  # noqa: F401
from xtreme_jax.evaluation.retrieval import (SCORERS, bucc_candidates, bucc_threshold, knn,  # noqa: F401
                                             l2_normalize, margin_mine, score_retrieval, tatoeba_gold)
from xtreme_jax.evaluation.scores import METRICS, score  # noqa: F401
from xtreme_jax.evaluation.sets import EvalSet, load_eval_sets  # noqa: F401
