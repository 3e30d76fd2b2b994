"""Metric dispatch: predictions + gold of one language -> {metric: value}.

The benchmark tasks are scored exactly as the official XTREME / XTREME-R code does
(`xtreme_jax.scoring.score_task`); any other task (the dev sets of intermediate tasks, demo
tasks) by its `task.metric`, through METRICS. A new metric is one entry there.
"""
from __future__ import annotations

from xtreme_jax import scoring
from xtreme_jax.tasks.languages import BENCHMARKS

# Tasks of either benchmark: scoring.score_task knows them by name.
OFFICIAL_TASKS = frozenset(t for tasks in BENCHMARKS.values() for t in tasks)


def _accuracy(task, predictions, gold, lang):
    if task.family.token_level:  # tags per word: token accuracy over all words
        return {"accuracy": scoring.pos_accuracy(gold, predictions)["token_accuracy"]}
    return scoring.accuracy([str(g) for g in gold], [str(p) for p in predictions])


METRICS = {
    "accuracy": _accuracy,
    "seqeval_f1": lambda task, p, g, lang: scoring.seqeval_f1(g, p),
    "squad_em_f1": lambda task, p, g, lang: scoring.squad_em_f1(g, p, name=f"{task.name}/{lang}"),
    "mlqa_em_f1": lambda task, p, g, lang: scoring.mlqa_em_f1(g, p, lang, name=f"{task.name}/{lang}"),
    "f1": lambda task, p, g, lang: scoring.bucc_f1(g, p),
    "map@20": lambda task, p, g, lang: scoring.lareqa_map20(g, p),
}


def score(task, predictions, gold, lang) -> dict:
    """Official scoring for XTREME tasks; by `task.metric` for the others."""
    if task.name in OFFICIAL_TASKS:
        return scoring.score_task(task.name, predictions, gold, lang)
    if task.metric not in METRICS:
        raise ValueError(f"task {task.name!r}: no scorer for metric {task.metric!r}; "
                         f"add it to xtreme_jax.evaluation.scores.METRICS")
    return METRICS[task.metric](task, predictions, gold, lang)
