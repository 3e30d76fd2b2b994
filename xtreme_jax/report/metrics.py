"""Which number of a task's results a report shows: the primary metric, and the task table.

Results are nested dicts ``{task: {language: {metric: value}}}`` with values in percent, as the
scorers return them. A metric spec is one metric name, or a tuple of names whose mean is the
score (QA: (exact_match + f1) / 2, as XTREME does).

The primary metric of a task, in this order (the one rule; `primary_spec`):
  1. the caller's `metric`: one name for every task, or {task: spec};
  2. a task of the registry (xtreme_jax.tasks): the result keys its scorer writes for the
     task's `metric` (RESULT_KEYS), when the task's results hold them;
  3. otherwise (a task the registry does not know, or results without those keys, say QA
     scored as "em"): the task's first metric, in the order of its results. This is logged as a
     warning naming the task and the metric chosen, and every table labels the metric it used,
     so a report is still written at the end of a run, never with an unnamed choice.
"""
from __future__ import annotations

import logging
import math
import numbers
from typing import Mapping, Union

from xtreme_jax.tasks import REGISTRY

log = logging.getLogger(__name__)

MetricSpec = Union[str, tuple]
MetricArg = Union[None, str, tuple, Mapping[str, MetricSpec]]

_QA = ("exact_match", "f1")
# Task.metric (the scorer's name, evaluation/scores.py) -> the result keys of its primary score.
# A registered metric missing here is an error (tests/test_report_package.py checks them all).
RESULT_KEYS: dict[str, MetricSpec] = {
    "accuracy": "accuracy", "f1": "f1", "seqeval_f1": "f1", "map@20": "map@20",
    "squad_em_f1": _QA, "mlqa_em_f1": _QA, "perplexity": "perplexity",
}

_warned: set = set()


def _names(spec: MetricSpec) -> tuple:
    return (spec,) if isinstance(spec, str) else tuple(spec)


def registry_spec(task: str) -> MetricSpec | None:
    """The primary metric the task registry gives `task`; None for a task it does not know."""
    t = REGISTRY.get(task)
    if t is None:
        return None
    if t.metric not in RESULT_KEYS:
        raise ValueError(f"task {task!r}: metric {t.metric!r} has no result keys; add it to "
                         "xtreme_jax.report.metrics.RESULT_KEYS")
    return RESULT_KEYS[t.metric]


def primary_spec(task: str, metrics: Mapping[str, float], metric: MetricArg = None) -> MetricSpec:
    """The metric spec of `task` whose results hold the metric names `metrics` (the module's rule)."""
    if isinstance(metric, Mapping):
        metric = metric.get(task)
    if metric is not None:
        return metric
    spec = registry_spec(task)
    if spec is not None and all(n in metrics for n in _names(spec)):
        return spec
    first = next(iter(metrics))
    if (task, first) not in _warned:
        _warned.add((task, first))
        why = "is not in the task registry" if spec is None else f"has no {metric_label(spec)} in its results"
        log.warning("report: task %r %s; its primary metric is its first one, %r (pass metric= to choose)",
                    task, why, first)
    return first


def metric_label(spec: MetricSpec) -> str:
    return spec if isinstance(spec, str) else "(" + "+".join(spec) + ")/" + str(len(spec))


def spec_value(spec: MetricSpec, metrics: Mapping[str, float]):
    """Value of `spec` in one language's metrics; None when a metric is missing."""
    names = _names(spec)
    if not all(n in metrics for n in names):
        return None
    return sum(float(metrics[n]) for n in names) / len(names)


def primary_value(task: str, metrics: Mapping[str, float], metric: MetricArg = None):
    """(spec, value) of the primary metric of one language's metrics."""
    spec = primary_spec(task, metrics, metric)
    return spec, spec_value(spec, metrics)


def lang_order(langs) -> list[str]:
    # English first: it is the training language, every other column is zero-shot.
    langs = set(langs)
    return (["en"] if "en" in langs else []) + sorted(langs - {"en"})


def check_results(results, *, allow_empty: bool = False) -> None:
    """Raises ValueError naming the offending entry unless results is task -> lang -> metric -> number.
    `allow_empty`: no task at all is fine (an evaluation whose every language had no gold labels)."""
    if not isinstance(results, Mapping) or not (results or allow_empty):
        raise ValueError("results must be a non-empty dict {task: {language: {metric: value}}}")
    for task, by_lang in results.items():
        if not isinstance(by_lang, Mapping) or not by_lang:
            raise ValueError(f"results[{task!r}] must be a non-empty dict {{language: {{metric: value}}}}")
        for lang, metrics in by_lang.items():
            if not isinstance(metrics, Mapping) or not metrics:
                raise ValueError(f"results[{task!r}][{lang!r}] must be a non-empty dict {{metric: value}}")
            for name, v in metrics.items():
                if isinstance(v, bool) or not isinstance(v, numbers.Real):
                    raise ValueError(f"results[{task!r}][{lang!r}][{name!r}] = {v!r} is not a number")


def task_table(results, metric: MetricArg = None) -> dict:
    """{task: {"metric": spec, "langs": {lang: value}, "average": mean over present langs}}."""
    check_results(results)
    out = {}
    for task, by_lang in results.items():
        # One spec per task, chosen on the union of its metric names, so that every
        # language of a task is scored the same way.
        union = {m: 0.0 for ms in by_lang.values() for m in ms}
        spec = primary_spec(task, union, metric)
        langs = {}
        for lang in lang_order(by_lang):
            v = spec_value(spec, by_lang[lang])
            if v is not None:
                langs[lang] = v
        finite = [v for v in langs.values() if math.isfinite(v)]
        avg = sum(finite) / len(finite) if finite else None
        out[task] = {"metric": spec, "langs": langs, "average": avg}
    return out
