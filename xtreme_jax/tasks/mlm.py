"""Masked language modelling over raw text files, one language per file.

Layout under source.path: `{lang}.txt` (or `train-{lang}.txt`; dev: `dev-{lang}.txt` /
`{lang}.dev.txt`), one sentence or document per line. Languages: `languages.txt` if present,
else every `{lang}.txt` found. Lines are tokenized, concatenated and cut into max_length blocks;
masking (15%: 80% <mask>, 10% random, 10% kept) is applied per batch by the pipeline.
"""
from __future__ import annotations

import glob
import os

from xtreme_jax.data import formats
from xtreme_jax.data.errors import DataError
from xtreme_jax.tasks.base import Task, register
from xtreme_jax.tasks.common import first_existing


def read_mlm(data_dir, split, lang, on_error):
    names = ([f"{lang}.txt", f"train-{lang}.txt", f"{lang}/train.txt"] if split == "train"
             else [f"dev-{lang}.txt", f"{lang}.dev.txt", f"{lang}/dev.txt"])
    path = first_existing([os.path.join(data_dir, n) for n in names], "MLM text file")
    return [{"id": f"{lang}-{i}", "text": line} for i, line in enumerate(formats.read_lines(path))
            if line.strip()]


def mlm_languages(source):
    listed = os.path.join(source.path, "languages.txt")
    if os.path.isfile(listed):
        langs = [l.strip() for l in formats.read_lines(listed) if l.strip()]
    else:
        langs = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(source.path, "*.txt"))
                       if "." not in os.path.basename(p)[:-4] and "-" not in os.path.basename(p))
    if not langs:
        raise DataError("no MLM text files", file=source.path, reason="empty",
                        fix="put one {lang}.txt file per language there")
    return langs


register(Task(
    name="mlm", kind="mlm", labels=None, languages=("en",), metric="perplexity", group="mlm",
    splits=("train", "dev"), max_length=128, read_official=read_mlm, language_source=mlm_languages,
    description="continued multilingual MLM on raw text ({lang}.txt per language)"))
