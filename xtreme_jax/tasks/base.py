"""The Task object and the registry it is registered in.

A Task knows everything data-side about one benchmark task: its kind (which selects the model
head and the featurizer), label space, languages, splits, metric name, how to read raw examples
from each source type, and how to turn them into features (the batch contract's arrays).

Examples are plain dicts, one schema per kind:
    classification   {id, text_a, text_b (or None), label (name or None)}
    multiple_choice  {id, context, choices: [str]*C, label (int or None)}
    tagging          {id, tokens: [str], tags: [str] or None}
    span             {id, question, context, answers: {text: [..], answer_start: [..]}}
    retrieval        {id, text, side (0 = query/source, 1 = candidate/target), keys: [str]}
                     (a query and a candidate match when they share a key)
    mlm              {id, text}
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Callable

from xtreme_jax.data import sources as S
from xtreme_jax.data.errors import DataError, OnError, as_policy
from xtreme_jax.tasks.kinds import KINDS, Kind

log = logging.getLogger(__name__)

SPLIT_ALIASES = {"validation": "dev", "val": "dev"}

REGISTRY: dict[str, "Task"] = {}  # filled by the task families (tasks/__init__.py)


class Rec:
    """Location of one raw record, so a parser can report a precise error."""

    def __init__(self, file, line, on_error: OnError, index: int = 0):
        self.file, self.line, self.on_error, self.index = file, line, on_error, index

    def error(self, problem: str, field: str | None = None, fix: str | None = None,
              reason: str = "bad_record") -> None:
        """Reports a bad record: raises (default policy) or counts it; the caller then drops it."""
        self.on_error(DataError(problem, file=self.file, line=self.line, field=field, fix=fix,
                                reason=reason))


@dataclasses.dataclass
class HubSpec:
    repo: str
    config: str | None
    split: str
    keep: Callable[[dict], bool] | None = None   # row filter (e.g. XNLI rows of one language)


@dataclasses.dataclass
class Task:
    name: str
    kind: str
    labels: tuple | None
    languages: tuple
    metric: str
    splits: tuple = ("train", "dev", "test")
    group: str = "target"              # target | intermediate | mlm | demo
    num_choices: int = 0
    max_length: int = 128
    train_from: str = ""               # docs: where the English training data comes from
    hub: Callable | None = None        # (split, lang) -> list[HubSpec]
    parse_row: Callable | None = None  # (row, rec, lang, split) -> example | None  (hub schema)
    read_official: Callable | None = None  # (data_dir, split, lang, on_error) -> list[example]
    tfds: Callable | None = None       # (split, lang) -> (name, config, tfds_split)
    label_source: Callable | None = None     # (source) -> labels, for data-defined label sets
    language_source: Callable | None = None  # (source) -> languages, for data-defined languages
    translate_splits: tuple = ()       # machine-translated training splits, e.g. ("translate_train",)
    translate_languages: tuple = ()    # languages of those splits (default: the task's languages)
    select: Callable | None = None     # (examples, split, read) -> the subset this task keeps, where
                                       # read(split) gives another split of the same source (mnli_easy)
    description: str = ""

    def __post_init__(self):
        assert self.kind in KINDS, self.kind

    @property
    def family(self) -> Kind:
        """What this task's kind does: featurizer, head, evaluator output (tasks/kinds.py)."""
        return KINDS[self.kind]

    @property
    def has_head(self) -> bool:
        return self.family.head_labels is not None

    # --- label / language lists ---
    def num_labels(self, source=None) -> int:
        """Outputs of this task's head, the one source of truth wherever a head is built: classes
        or tags (a data-defined label set needs `source`), 1 per choice for multiple choice."""
        if not self.has_head:
            raise ValueError(f"task {self.name!r} ({self.kind}) has no trained head")
        return self.family.head_labels(self, source)

    def label_list(self, source=None) -> tuple:
        if self.labels is not None:
            return tuple(self.labels)
        if self.label_source is None or source is None:
            raise DataError(f"task {self.name!r} builds its label set from the data; pass the source",
                            reason="config")
        return tuple(self.label_source(S.as_source(source)))

    def language_list(self, source=None) -> tuple:
        """The registry's languages, or those the data copy lists (see sources.listed_languages)."""
        if source is not None:
            source = S.as_source(source)
            if self.language_source is not None:
                return tuple(self.language_source(source))
            return S.listed_languages(source) or tuple(self.languages)
        return tuple(self.languages)

    def check_language(self, lang: str, source=None, split: str | None = None) -> str:
        langs = self.language_list(source)
        if split in self.translate_splits:
            langs = self.translate_languages or langs
        if lang not in langs:
            raise DataError(f"unknown language code {lang!r} for task {self.name!r}",
                            field="lang", reason="unknown_language",
                            fix=f"use one of {', '.join(langs)}")
        return lang

    def check_split(self, split: str) -> str:
        split = SPLIT_ALIASES.get(split, split)
        if split not in self.splits and split not in self.translate_splits:
            raise DataError(f"task {self.name!r} has no split {split!r}", field="split",
                            reason="unknown_split",
                            fix=f"use one of {list(self.splits) + list(self.translate_splits)}")
        return split

    # --- reading ---
    def load_examples(self, split: str, lang: str | None = None, source=None, errors=None) -> list:
        """Raw examples of one split and language from the configured source.

        `errors`: None/"raise" (default: first bad record raises a DataError naming file, line
        and field), "skip" or an `OnError(skip=True)` to skip and count bad records.
        """
        source = S.as_source(source)
        policy = as_policy(errors)
        split = self.check_split(split)
        lang = lang or self.language_list(source)[0]
        self.check_language(lang, source, split)
        examples, where = self._read(split, lang, source, policy)
        if self.select is not None:
            # the other split is read under its own policy: its skipped records are not this split's
            examples = self.select(examples, split,
                                   lambda s: self._read(s, lang, source, OnError(skip=policy.skip))[0])
        if not examples:
            raise DataError(f"no {split!r} examples for language {lang!r} of task {self.name!r}",
                            file=", ".join(policy.files) or where, reason="empty",
                            fix="the file is empty or every record was skipped; check the path "
                                "and the language code")
        policy.log_summary(f"{self.name}/{split}/{lang}")
        return examples

    def _read(self, split, lang, source, policy):
        if source.type == "official":
            if self.read_official is None:
                raise DataError(f"task {self.name!r} has no official file layout", field="source.type",
                                reason="config", fix="use source.type='hub' or 'local'")
            return self.read_official(source.path, split, lang, policy), source.path
        return self._load_hub_schema(source, split, lang, policy)

    def _load_hub_schema(self, source, split, lang, policy):
        if self.parse_row is None:
            raise DataError(f"task {self.name!r} is not on the Hugging Face hub (no hub schema)",
                            field="source.type", reason="config",
                            fix="use source.type='official' with the downloaded files")
        multilingual = len(self.language_list(source)) > 1
        if source.type == "local":
            path, per_language = S.find_local(source.path, split, lang if multilingual else None)
            # a file holding every language (like the hub's XNLI split) is filtered by its
            # language column; per-language files are taken whole
            mixed = multilingual and not per_language

            def local_rows():
                for r in S.dataset_rows(S.load_local(path, source.cache_dir)):
                    if not mixed or r.get("language", r.get("lang", lang)) == lang:
                        yield r
            parts = [(path, local_rows)]
        elif source.type == "hub":
            if source.path:
                specs = [HubSpec(source.path, source.config.format(lang=lang) if source.config else None,
                                 source.split or _hf_split(split))]
            elif self.hub is not None:
                specs = self.hub(split, lang)
            else:
                raise DataError(f"task {self.name!r} is not on the Hugging Face hub", field="source.type",
                                reason="config", fix="use source.type='official' with the downloaded files")
            parts = [(f"{h.repo}[{h.config}]/{h.split}", functools.partial(_hub_rows, h, source.cache_dir))
                     for h in specs]
        else:  # tfds
            if source.path:
                spec = (source.path, source.config.format(lang=lang), source.split or split)
            elif self.tfds is not None:
                spec = self.tfds(split, lang)
            else:
                raise DataError(f"no TFDS dataset known for task {self.name!r}", field="source.path",
                                reason="config", fix="set source.path to the TFDS dataset name")
            parts = [(f"tfds:{spec[0]}/{spec[1]}", functools.partial(S.load_tfds_rows, *spec))]
        out = []
        for where, rows in parts:
            for i, row in enumerate(rows()):
                ex = self.parse_row(row, Rec(where, f"row {i}", policy, i), lang, split)
                if isinstance(ex, list):  # one row can hold two sentences (retrieval pairs)
                    out.extend(ex)
                elif ex is not None:
                    out.append(ex)
        return out, parts[0][0]

    # --- features ---
    def featurize(self, examples: list, tokenizer, max_length: int | None = None, *,
                  labels=None, lang: str | None = None, split: str | None = None,
                  progress: bool = True, **opts):
        """Tokenized features (see xtreme_jax.data.features.Features) of `examples`."""
        max_length = max_length or self.max_length
        labels = tuple(labels) if labels is not None else (tuple(self.labels) if self.labels else None)
        if labels is None and self.family.labels_from_data:
            raise DataError(f"task {self.name!r} builds its label set from the data", field="labels",
                            reason="config", fix="pass labels=task.label_list(source) (cached_features "
                                                 "does this itself)")
        feats = self.family.featurize(examples, tokenizer, max_length=max_length, labels=labels, progress=progress,
                   num_choices=self.num_choices, **opts)
        feats.meta.update(task=self.name, lang=lang, split=split)
        return feats

    def info(self) -> dict:
        static = self.has_head and (self.labels is not None or self.label_source is None)
        return {"name": self.name, "kind": self.kind, "group": self.group, "metric": self.metric,
                "num_labels": self.num_labels() if static else None, "labels": list(self.labels) if self.labels else None,
                "languages": list(self.languages), "splits": list(self.splits),
                "num_choices": self.num_choices, "max_length": self.max_length}


def _hub_rows(spec: HubSpec, cache_dir: str):
    for row in S.dataset_rows(S.load_hub(spec.repo, spec.config, spec.split, cache_dir)):
        if spec.keep is None or spec.keep(row):
            yield row


def _hf_split(split: str) -> str:
    return {"dev": "validation"}.get(split, split)


def register(task: Task) -> Task:
    if task.name in REGISTRY:
        raise ValueError(f"task {task.name!r} registered twice")
    REGISTRY[task.name] = task
    return task
