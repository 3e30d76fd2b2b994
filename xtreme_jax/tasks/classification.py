"""Sentence and sentence-pair classification: xnli, pawsx, mnli, qqp, sst2, snli, anli (all
rounds, and anli_r1/r2/r3 one round each), anli+, mnli_easy/mnli_hard (tasks/artifacts.py), and
the bundled demo_nli.

Label orders follow the hub's ClassLabel order (NLI: entailment, neutral, contradiction, as in
GLUE/SNLI/ANLI), so every NLI task shares one 3-way head: a model trained on ANLI+ or MNLI is
evaluated on XNLI without remapping.
"""
from __future__ import annotations

import os

from xtreme_jax.data import formats
from xtreme_jax.tasks import artifacts
from xtreme_jax.tasks.base import HubSpec, Rec, Task, register
from xtreme_jax.tasks.common import INVALID, NO_GOLD, first_existing, norm_label, pick
from xtreme_jax.tasks.languages import XTREME

NLI = ("entailment", "neutral", "contradiction")
NLI_MAP = {"contradictory": "contradiction", "e": "entailment", "n": "neutral", "c": "contradiction"}
GLUE = "nyu-mll/glue"


def _example(rec, idx, text_a, text_b, label, labels, split, mapping=None):
    y = norm_label(label, labels, rec, mapping=mapping)
    if y is INVALID:
        return None
    if y is NO_GOLD:
        if split != "test":  # unlabeled rows (SNLI "-") carry no training signal: drop them
            return None
        y = None
    for name, t in (("text_a", text_a), ("text_b", text_b)):
        if t is not None and not isinstance(t, str):
            rec.error(f"{name} is not text: {t!r}", field=name, reason="bad_field")
            return None
    return {"id": str(idx), "text_a": text_a, "text_b": text_b, "label": y}


# --- the XTREME layout: {split}-{lang}.tsv with sentence1 \t sentence2 \t label ----------------
def read_xtreme_pairs(path, split, lang, labels, on_error, mapping=None):
    """Test files of the official download have the label column removed (2 columns)."""
    out = []
    ncols = (2, 3) if split == "test" else (3,)
    for line, cols in formats.read_tsv(path, ncols, on_error, names="sentence1, sentence2, label"):
        ex = _example(Rec(path, line, on_error), f"{lang}-{split}-{len(out)}", cols[0], cols[1],
                      cols[2] if len(cols) == 3 else None, labels, split, mapping)
        if ex is not None:
            out.append(ex)
    return out


def read_translated_pairs(data_dir, lang, labels, on_error, mapping=None):
    """XTREME translations: original pair (cols 1-2), translated pair (cols 3-4), label (col 5)."""
    names = [f"translate-train/en-{lang}-translated.tsv", f"translated/en-{lang}-translated.tsv",
             f"XNLI-Translated/en-{lang}-translated.tsv", f"en-{lang}-translated.tsv"]
    path = first_existing([os.path.join(data_dir, n) for n in names], "translated training file",
                          fix="download the XTREME translations (gs://xtreme_translations) into "
                              "<data_dir>/translate-train/")
    out = []
    for line, cols in formats.read_tsv(path, (5, 3), on_error,
                                       names="original pair, translated pair, label"):
        a, b, y = (cols[2], cols[3], cols[4]) if len(cols) == 5 else (cols[0], cols[1], cols[2])
        ex = _example(Rec(path, line, on_error), f"{lang}-translate_train-{len(out)}", a, b, y,
                      labels, "train", mapping)
        if ex is not None:
            out.append(ex)
    return out


def _xtreme_layout(labels, mapping=None):
    def read(data_dir, split, lang, on_error):
        if split == "translate_train":
            return read_translated_pairs(data_dir, lang, labels, on_error, mapping)
        path = os.path.join(data_dir, f"{split}-{lang}.tsv")
        formats.require_file(path, fix=f"expected the XTREME layout {{split}}-{{lang}}.tsv in {data_dir}")
        return read_xtreme_pairs(path, split, lang, labels, on_error, mapping)
    return read


def _pair_row(labels, a_names, b_names, label_names, mapping=None, split_of=None):
    """Hub-schema row parser for (sentence, sentence, label) tasks."""
    def parse(row, rec, lang, split):
        a = pick(row, *a_names)
        b = pick(row, *b_names) if b_names else None
        if a is None or (b_names and b is None):
            rec.error(f"row lacks text columns {a_names} / {b_names}; has {sorted(row)}",
                      field=a_names[0], reason="missing_column", fix="use files in the hub's schema")
            return None
        y = pick(row, *label_names)
        idx = pick(row, "id", "idx", "uid", "pairID", default=rec.index)
        return _example(rec, idx, a, b, y, labels, split, mapping)
    return parse


_nli_row = _pair_row(NLI, ("premise", "sentence1", "context"), ("hypothesis", "sentence2"),
                     ("label", "gold_label"), NLI_MAP)


# --- GLUE / SNLI / ANLI original release files ---------------------------------------------
def _read_glue_tsv(path, split, cols, label_col, labels, on_error, mapping=None):
    required = tuple(c for c in cols if c) + ((label_col,) if split != "test" else ())
    out = []
    for line, row in formats.read_tsv_header(path, required, on_error):
        ex = _example(Rec(path, line, on_error), row.get("id", row.get("pairID", len(out))),
                      row[cols[0]], row[cols[1]] if cols[1] else None,
                      row.get(label_col) if split != "test" else None, labels, split, mapping)
        if ex is not None:
            out.append(ex)
    return out


def _read_nli_jsonl(path, split, a, b, y, on_error):
    out = []
    for line, obj in formats.read_jsonl(path, on_error):
        ex = _example(Rec(path, line, on_error), obj.get("uid", obj.get("pairID", len(out))),
                      obj.get(a), obj.get(b), obj.get(y), NLI, split, NLI_MAP)
        if ex is not None:
            out.append(ex)
    return out


def read_mnli(data_dir, split, lang, on_error):
    if split == "translate_train":
        return read_translated_pairs(data_dir, lang, NLI, on_error, NLI_MAP)
    name = {"train": "train.tsv", "dev": "dev_matched.tsv", "test": "test_matched.tsv"}[split]
    path = first_existing([os.path.join(data_dir, name), os.path.join(data_dir, "MNLI", name)],
                          "GLUE MNLI file")
    return _read_glue_tsv(path, split, ("sentence1", "sentence2"), "gold_label", NLI, on_error, NLI_MAP)


def read_snli(data_dir, split, lang, on_error):
    path = first_existing([os.path.join(data_dir, f"snli_1.0_{split}.jsonl"),
                           os.path.join(data_dir, "snli_1.0", f"snli_1.0_{split}.jsonl")], "SNLI file")
    return _read_nli_jsonl(path, split, "sentence1", "sentence2", "gold_label", on_error)


def read_anli_round(r: int):
    """One ANLI round's official files: <dir>/R{r}/{split}.jsonl (or under anli_v1.0/)."""
    def read(data_dir, split, lang, on_error):
        path = first_existing([os.path.join(data_dir, f"R{r}", f"{split}.jsonl"),
                               os.path.join(data_dir, "anli_v1.0", f"R{r}", f"{split}.jsonl")], "ANLI file")
        return _read_nli_jsonl(path, split, "context", "hypothesis", "label", on_error)
    return read


def read_anli(data_dir, split, lang, on_error):
    return [ex for r in (1, 2, 3) for ex in read_anli_round(r)(data_dir, split, lang, on_error)]


def read_anli_plus(data_dir, split, lang, on_error):
    """ANLI R1-R3 + MNLI + SNLI for training; the ANLI rounds alone for dev/test."""
    out = read_anli(os.path.join(data_dir, "anli"), split, lang, on_error)
    if split == "train":
        out += read_mnli(os.path.join(data_dir, "mnli"), split, lang, on_error)
        out += read_snli(os.path.join(data_dir, "snli"), split, lang, on_error)
    return out


def read_qqp(data_dir, split, lang, on_error):
    name = f"{split}.tsv"
    path = first_existing([os.path.join(data_dir, name), os.path.join(data_dir, "QQP", name)], "GLUE QQP file")
    return _read_glue_tsv(path, split, ("question1", "question2"), "is_duplicate", QQP, on_error,
                          {"0": QQP[0], "1": QQP[1]})


def read_sst2(data_dir, split, lang, on_error):
    name = f"{split}.tsv"
    path = first_existing([os.path.join(data_dir, name), os.path.join(data_dir, "SST-2", name)], "GLUE SST-2 file")
    return _read_glue_tsv(path, split, ("sentence", None), "label", SST2, on_error,
                          {"0": SST2[0], "1": SST2[1]})


QQP = ("not_duplicate", "duplicate")
SST2 = ("negative", "positive")
_glue = {"train": "train", "dev": "validation", "test": "test"}


register(Task(
    name="xnli", kind="classification", labels=NLI, languages=tuple(XTREME["xnli"]), metric="accuracy",
    train_from="MNLI (train-en.tsv of the XTREME download)", translate_splits=("translate_train",),
    hub=lambda split, lang: ([HubSpec(GLUE, "mnli", "train")] if split == "train" else
                             [HubSpec("google/xtreme", "XNLI", _glue[split],
                                      keep=lambda r, l=lang: r.get("language") == l)]),
    parse_row=_nli_row, read_official=_xtreme_layout(NLI, NLI_MAP),
    description="XNLI: 3-way NLI, English MNLI training, zero-shot on 15 languages"))

register(Task(
    name="pawsx", kind="classification", labels=("0", "1"), languages=tuple(XTREME["pawsx"]),
    metric="accuracy", train_from="PAWS (en)", translate_splits=("translate_train",),
    hub=lambda split, lang: [HubSpec("google/xtreme", f"PAWS-X.{lang}", _glue[split])],
    parse_row=_pair_row(("0", "1"), ("sentence1",), ("sentence2",), ("label",)),
    read_official=_xtreme_layout(("0", "1")),
    tfds=lambda split, lang: ("xtreme_pawsx", lang, _glue[split]),
    description="PAWS-X: paraphrase identification"))

_MNLI_HUB = {"train": "train", "dev": "validation_matched", "test": "test_matched"}

register(Task(
    name="mnli", kind="classification", labels=NLI, languages=("en",), metric="accuracy",
    group="intermediate", translate_splits=("translate_train",),
    translate_languages=tuple(XTREME["xnli"]),
    hub=lambda split, lang: [HubSpec(GLUE, "mnli", _MNLI_HUB[split])],
    parse_row=_nli_row, read_official=read_mnli,
    tfds=lambda split, lang: ("glue", "mnli", {"dev": "validation_matched", "test": "test_matched"}.get(split, split))))

for _which in ("easy", "hard"):  # difficulty within one format and one source (tasks/artifacts.py)
    register(Task(
        name=f"mnli_{_which}", kind="classification", labels=NLI, languages=("en",), metric="accuracy",
        group="intermediate", splits=("train", "dev"),
        hub=lambda split, lang: [HubSpec(GLUE, "mnli", _MNLI_HUB[split])],
        parse_row=_nli_row, read_official=read_mnli, select=artifacts.subset(_which, NLI),
        description=f"MNLI examples (train; dev = matched dev) that a hypothesis-only classifier "
                    f"gets {'right' if _which == 'easy' else 'wrong'} (Gururangan et al. 2018's "
                    "rule: multinomial naive Bayes on hypothesis unigrams+bigrams, cross-fitted "
                    "over 5 folds on train, dev judged by the all-train model; tasks/artifacts.py). "
                    "The paper's fastText got about 53% of MNLI right: expect roughly 53% easy / 47% "
                    "hard (a synthetic 393k-row twin with 30% artifact rows: 53.35% easy, split in "
                    "~9 s). Official layout: that of mnli"))

register(Task(
    name="snli", kind="classification", labels=NLI, languages=("en",), metric="accuracy",
    group="intermediate",
    hub=lambda split, lang: [HubSpec("stanfordnlp/snli", None, _glue[split])],
    parse_row=_nli_row, read_official=read_snli,
    description="SNLI; rows without a gold label (-1 / '-') are dropped"))

register(Task(
    name="anli", kind="classification", labels=NLI, languages=("en",), metric="accuracy",
    group="intermediate",
    hub=lambda split, lang: [HubSpec("facebook/anli", None, f"{split}_r{r}") for r in (1, 2, 3)],
    parse_row=_nli_row, read_official=read_anli))

for _r in (1, 2, 3):  # one round each: difficulty rises by round (Nie et al. 2020), same format
    register(Task(
        name=f"anli_r{_r}", kind="classification", labels=NLI, languages=("en",), metric="accuracy",
        group="intermediate",
        hub=lambda split, lang, r=_r: [HubSpec("facebook/anli", None, f"{split}_r{r}")],
        parse_row=_nli_row, read_official=read_anli_round(_r),
        description=f"ANLI round {_r} alone (train/dev/test of R{_r}), the 3-way NLI head of mnli/anli. "
                    f"Official layout: <dir>/R{_r}/{{train,dev,test}}.jsonl"))

register(Task(
    name="anli+", kind="classification", labels=NLI, languages=("en",), metric="accuracy",
    group="intermediate",
    hub=lambda split, lang: ([HubSpec("facebook/anli", None, f"{split}_r{r}") for r in (1, 2, 3)]
                             + ([HubSpec(GLUE, "mnli", "train"), HubSpec("stanfordnlp/snli", None, "train")]
                                if split == "train" else [])),
    parse_row=_nli_row, read_official=read_anli_plus,
    description="ANLI R1-R3 + MNLI + SNLI training, one 3-way NLI head; dev/test = ANLI rounds. "
                "Official layout: <dir>/anli/R{1,2,3}/*.jsonl, <dir>/mnli/*.tsv, <dir>/snli/*.jsonl"))

register(Task(
    name="qqp", kind="classification", labels=QQP, languages=("en",), metric="accuracy",
    group="intermediate",
    hub=lambda split, lang: [HubSpec(GLUE, "qqp", _glue[split])],
    parse_row=_pair_row(QQP, ("question1",), ("question2",), ("label", "is_duplicate"), {"0": QQP[0], "1": QQP[1]}),
    read_official=read_qqp, tfds=lambda split, lang: ("glue", "qqp", _glue[split])))

register(Task(
    name="sst2", kind="classification", labels=SST2, languages=("en",), metric="accuracy",
    group="intermediate",
    hub=lambda split, lang: [HubSpec(GLUE, "sst2", _glue[split])],
    parse_row=_pair_row(SST2, ("sentence",), (), ("label",), {"0": SST2[0], "1": SST2[1]}),
    read_official=read_sst2, tfds=lambda split, lang: ("glue", "sst2", _glue[split])))

register(Task(
    name="demo_nli", kind="classification", labels=NLI, languages=("en",), metric="accuracy",
    group="demo", splits=("train", "dev", "test"), translate_splits=("translate_train",),
    read_official=_xtreme_layout(NLI, NLI_MAP), parse_row=_nli_row,
    description="bundled synthetic NLI in the XNLI layout; languages from <dir>/languages.txt "
                "(sources.listed_languages)"))
