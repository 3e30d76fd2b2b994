"""Tokenize once: features cached on disk as .npy files, memory-mapped on read.

The cache key covers everything that changes the features: task, split, language, the data
source and a cheap fingerprint of its files (names, sizes, mtimes), the tokenizer's full
definition hash, max length, featurizer options, the label list and PREPROCESSING_VERSION (bump
it whenever a featurizer changes output). A cache entry is written into a temporary directory
and renamed into place, so a killed job never leaves a half-written entry behind, and two hosts
racing on a shared file system both end with a complete entry.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile

from xtreme_jax.data.errors import DataError, as_policy
from xtreme_jax.data.features import Features
from xtreme_jax.data.sources import as_source, source_fingerprint
from xtreme_jax.data.tokenization import tokenizer_fingerprint
from xtreme_jax.tasks import get_task

log = logging.getLogger(__name__)

PREPROCESSING_VERSION = 1


def cache_key(task, split, lang, tokenizer, source, max_length, labels, opts) -> str:
    parts = {"task": task.name, "split": split, "lang": lang, "source": source_fingerprint(source),
             "tokenizer": tokenizer_fingerprint(tokenizer), "max_length": max_length,
             "labels": list(labels) if labels else None, "opts": opts,
             "version": PREPROCESSING_VERSION}
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def cached_features(task, split: str, lang: str | None, tokenizer, *, source, cache_dir: str | None,
                    max_length: int | None = None, errors=None, progress: bool = True, **opts) -> Features:
    """Features of (task, split, lang), from the cache when present, else built and stored.

    `cache_dir=None` disables the cache (features stay in memory).
    """
    task = get_task(task)
    source = as_source(source)
    split = task.check_split(split)
    lang = lang or task.language_list(source)[0]
    max_length = max_length or task.max_length
    labels = task.label_list(source) if (task.labels is not None or task.label_source) else None

    def build():
        policy = as_policy(errors)
        examples = task.load_examples(split, lang, source, errors=policy)
        if all(_blank(ex) for ex in examples):
            raise DataError(f"every one of the {len(examples)} {split!r} examples of {task.name}/{lang} has empty "
                            "text (premise, hypothesis, sentence...): nothing to learn or score",
                            file=", ".join(policy.files) or source.path, reason="empty",
                            fix="check the file's columns (a wrong separator or schema leaves them blank)")
        feats = task.featurize(examples, tokenizer, max_length, labels=labels, lang=lang, split=split,
                               progress=progress, **opts)
        feats.meta["skipped"] = policy.summary()
        return feats

    if cache_dir is None:
        return build()
    key = cache_key(task, split, lang, tokenizer, source, max_length, labels, opts)
    final = os.path.join(cache_dir, f"{task.name}.{split}.{lang}.{key}")
    if os.path.exists(os.path.join(final, "meta.json")):
        log.info("features cache hit: %s", final)
        return Features.load(final)
    feats = build()
    try:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir)
    except OSError as e:
        raise DataError(f"cannot write the feature cache ({e.strerror or e})", file=cache_dir, reason="config",
                        fix="set --config.data.cache_dir to a writable directory") from None
    try:
        feats.save(tmp)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first; its entry is equivalent
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # One INFO line per cache directory and process (a run caches dozens of task/split/language
    # entries: one line each was console noise); every entry at DEBUG.
    if cache_dir not in _ANNOUNCED:
        _ANNOUNCED.add(cache_dir)
        log.info("features are tokenized once and cached in %s (one entry per task, split and language; "
                 "later runs reuse them)", cache_dir)
    log.debug("features cached: %s (%d rows)", final, feats.num_rows)
    return Features.load(final)


_ANNOUNCED: set = set()


def _blank(example) -> bool:
    """Text fields, and none holds a word (ids, labels and tags aside)."""
    if not isinstance(example, dict):
        return False
    fields = [v for k, v in example.items() if k not in ("id", "label", "labels", "tags", "lang")]
    texts = [v for v in fields if isinstance(v, str)] + [
        w for v in fields if isinstance(v, (list, tuple)) for w in v if isinstance(w, str)]
    return bool(texts) and not any(t.strip() for t in texts)
