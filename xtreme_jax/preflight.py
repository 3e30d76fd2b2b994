"""Checks of the data a run will read, made before any training: a missing test file or an
unknown evaluation language is otherwise found only after every training phase.

    check_eval_inputs(config)                 every (task, split, language) the evaluate phase
                                              reads is there and parses; lists all that are not
    check_training_inputs(context, phases)    the training (and dev) data of the later phases
                                              tokenizes (into the feature cache the phase then reads)
"""
from __future__ import annotations

import logging

from xtreme_jax.context import source
from xtreme_jax.data.errors import DataError
from xtreme_jax.evaluation.retrieval import SCORERS
from xtreme_jax.validation import dev_features  # the training phases' own rule for dev data
from xtreme_jax.evaluation.sets import eval_languages, eval_splits
from xtreme_jax.tasks import get_task

log = logging.getLogger(__name__)


def eval_sets(config) -> list:
    """(task name, split, language, source) of every set the evaluate phase reads, chosen as
    phases.evaluate_phase and evaluation.sets.load_eval_sets choose them: the configured
    languages (entry, else evaluate.languages, else the benchmark's list, else the task's), the
    splits (evaluation.sets.eval_splits) and a retrieval scorer's shared set."""
    ecfg, out = config.evaluate, []
    for entry in ecfg.tasks:
        task, src = get_task(entry.name), source(entry.source)
        langs = eval_languages(task, src, (entry.languages, ecfg.languages), ecfg.benchmark)
        scorer = SCORERS.get(task.name)
        for split in eval_splits(task.name, ecfg.split):
            out += [(task.name, split, lang, src) for lang in langs]
        if scorer and scorer.shared_split:
            out.append((task.name, scorer.shared_split, langs[0], src))
    return out


def check_eval_inputs(config):
    """Reads the raw examples of every evaluation set (cheap next to tokenizing them); one
    DataError lists every set that is missing or cannot be read."""
    problems, fixes, sets = [], [], eval_sets(config)
    for name, split, lang, src in sets:
        try:
            get_task(name).load_examples(split, lang, src)
        except DataError as e:
            where = f"{e.file}" + (f":{e.line}" if isinstance(e.line, int) else "") if e.file else ""
            problems.append(f"{name}/{split}/{lang} {where}".rstrip() + f" ({e.problem})")
            if e.fix and e.fix not in fixes:
                fixes.append(e.fix)
    if problems:
        raise DataError(f"{len(problems)} of the {len(sets)} evaluation sets cannot be read, found before "
                        "training: " + "; ".join(problems), reason="missing_file",
                        fix="; ".join(fixes + ["or leave those languages out (config.evaluate.languages, "
                                               "or the task entry's languages)"]))


def check_training_inputs(context, phases):
    """Tokenizes the training and dev data of `phases` (the unfinished ones after the first,
    whose data is read at once anyway) into the feature cache: a missing or unreadable file of
    a later phase is found before the first phase trains, and the phase later reads the cache."""
    for name in phases:
        pcfg = context.config[name]
        for t in pcfg.tasks:
            task = get_task(t.name)
            context.features(task, t.split, t.lang, t.source, t.max_length)
            if pcfg.eval_every:
                dev_features(context, task, t, pcfg.eval_examples)
