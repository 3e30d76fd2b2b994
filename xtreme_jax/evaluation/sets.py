"""Evaluation data: one EvalSet per language (and split) of a task, raw examples + features."""
from __future__ import annotations

import dataclasses

from xtreme_jax.data.cache import cached_features
from xtreme_jax.data.features import Features
from xtreme_jax.evaluation import retrieval
from xtreme_jax.tasks import get_task
from xtreme_jax.tasks.languages import benchmark_languages


@dataclasses.dataclass
class EvalSet:
    """One language (and split) of a task: raw examples and their features.

    `split="candidates"` marks the shared candidate set of mewslix (lang is then ignored).
    """
    lang: str
    examples: list
    features: Features
    split: str = "test"


def load_eval_sets(task, tokenizer, source, *, split: str = "test", languages=None,
                   cache_dir: str | None = None, max_length: int | None = None,
                   **featurize_opts) -> list:
    """EvalSets of every requested language of `task` (default: all the task's languages).

    A retrieval scorer may need more than the requested split (bucc2018 tunes its mining
    threshold on dev, mewslix ranks against its candidate entities): see retrieval.SCORERS.
    With `cache_dir`, features come from the tokenize-once cache.
    """
    task = get_task(task)
    langs = eval_languages(task, source, [languages or ()])
    scorer = retrieval.SCORERS.get(task.name)
    splits = eval_splits(task.name, split)

    def one(sp, lang):
        examples = task.load_examples(sp, lang, source)
        if cache_dir:
            feats = cached_features(task, sp, lang, tokenizer, source=source, cache_dir=cache_dir,
                                    max_length=max_length, progress=False, **featurize_opts)
        else:
            feats = task.featurize(examples, tokenizer, max_length, lang=lang, split=sp,
                                   progress=False, **featurize_opts)
        return EvalSet(lang, examples, feats, task.check_split(sp))

    sets = [one(sp, lang) for sp in splits for lang in langs]
    if scorer and scorer.shared_split:  # one set for all languages
        sets.append(one(scorer.shared_split, langs[0]))
    return sets


def eval_languages(task, source, requested=(), benchmark: str = "") -> list:
    """The one rule for the languages an evaluation of `task` reads: the first non-empty of
    `requested` (comma-separated strings or lists: a task entry's languages, then
    config.evaluate.languages), else the task's list in `benchmark`, else all its languages."""
    for r in requested:
        langs = [l for l in r.split(",") if l] if isinstance(r, str) else list(r)
        if langs:
            return langs
    return (benchmark_languages(task.name, benchmark) if benchmark else None) or list(task.language_list(source))


def eval_splits(task: str, split: str) -> tuple:
    """The splits an evaluation of `task` on `split` reads: a retrieval scorer may need more
    (bucc2018 tunes its threshold on dev, so a test evaluation reads dev and test)."""
    scorer = retrieval.SCORERS.get(task)
    return tuple(dict.fromkeys((*(scorer.splits if scorer else ()), split)))


def check_sets(task, sets):
    if not sets:
        raise ValueError(f"no evaluation data for task {task.name!r}")
    seen = set()
    for s in sets:
        if s.features.kind != task.kind:
            raise ValueError(f"{task.name}/{s.lang}: features of kind {s.features.kind!r}, but the "
                             f"task is {task.kind!r}; featurize with the task's own featurizer")
        if (s.lang, s.split) in seen and s.split != "candidates":
            raise ValueError(f"{task.name}: language {s.lang!r} ({s.split}) given twice")
        seen.add((s.lang, s.split))
        if s.features.num_examples != len(s.examples):
            raise ValueError(f"{task.name}/{s.lang}: {len(s.examples)} examples but features of "
                             f"{s.features.num_examples}; they must come from the same examples")


def main_split(sets):
    """The split the task was scored on: test if present (candidates do not count)."""
    splits = {s.split for s in sets if s.split != "candidates"}
    return "test" if "test" in splits else (sorted(splits)[0] if splits else None)
