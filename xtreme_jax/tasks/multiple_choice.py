"""Multiple choice: xcopa, copa, siqa, swag, hellaswag, cosmosqa, commonsenseqa.

Each example becomes one (context, choice) pair per choice, scored jointly by the head.
Contexts are built as the reference code does: XCOPA/COPA `"{premise} What was the {question}?"`
(XTREME run_xcopa), SIQA and Cosmos QA `"{context} {question}"`, HellaSwag `ctx_a` with
`"{ctx_b} {ending}"` choices, SWAG `sent1` with `"{sent2} {ending}"` choices (HF run_swag),
CommonsenseQA the question stem (jiant).
"""
from __future__ import annotations

import os

from xtreme_jax.data import formats
from xtreme_jax.data.errors import DataError
from xtreme_jax.tasks.base import HubSpec, Rec, Task, register
from xtreme_jax.tasks.common import first_existing
from xtreme_jax.tasks.languages import XTREME_R


def _mc(rec, idx, context, choices, label, n, split):
    if not isinstance(context, str) or any(not isinstance(c, str) for c in choices):
        rec.error("context/choices must be text", field="choices", reason="bad_field")
        return None
    if len(choices) != n:
        rec.error(f"expected {n} choices, found {len(choices)}", field="choices", reason="column_count")
        return None
    if label is None or label == "" or (isinstance(label, int) and label < 0):
        if split != "test":
            rec.error("missing label", field="label", reason="unknown_label",
                      fix="training and dev examples need a gold choice")
            return None
        label = None
    else:
        try:
            label = int(label)
        except (TypeError, ValueError):
            label = -1
        if not 0 <= label < n:
            rec.error(f"label {label!r} is not a choice index 0..{n - 1}", field="label",
                      reason="unknown_label", fix="labels are 0-based choice indices")
            return None
    return {"id": str(idx), "context": context, "choices": list(choices), "label": label}


# --- COPA / XCOPA ---------------------------------------------------------------------------
def _copa(obj, rec, split):
    q = obj.get("question")
    if q not in ("cause", "effect"):
        rec.error(f"question must be 'cause' or 'effect', found {q!r}", field="question",
                  reason="bad_field")
        return None
    return _mc(rec, obj.get("idx", rec.index), f"{obj.get('premise')} What was the {q}?",
               [obj.get("choice1"), obj.get("choice2")], obj.get("label"), 2, split)


def _read_jsonl_with(path, split, on_error, fn):
    out = []
    for line, obj in formats.read_jsonl(path, on_error):
        ex = fn(obj, Rec(path, line, on_error, len(out)), split)
        if ex is not None:
            out.append(ex)
    return out


def read_xcopa(data_dir, split, lang, on_error):
    """XTREME layout {val,test}-{lang}.jsonl, or the XCOPA repo's {lang}/{val,test}.{lang}.jsonl."""
    s = {"dev": "val"}.get(split, split)
    names = [f"{s}-{lang}.jsonl", f"{split}-{lang}.jsonl", f"{lang}/{s}.{lang}.jsonl", f"{s}.{lang}.jsonl"]
    path = first_existing([os.path.join(data_dir, n) for n in names], "XCOPA file")
    return _read_jsonl_with(path, split, on_error, lambda o, r, sp: _copa(o, r, sp))


def read_copa(data_dir, split, lang, on_error):
    s = {"dev": "val"}.get(split, split)
    names = [f"{s}.jsonl", f"COPA/{s}.jsonl", f"{s}-en.jsonl", f"{split}-en.jsonl"]
    path = first_existing([os.path.join(data_dir, n) for n in names], "COPA file")
    return _read_jsonl_with(path, split, on_error, lambda o, r, sp: _copa(o, r, sp))


def _copa_row(row, rec, lang, split):
    return _copa(row, rec, split)


# --- SocialIQA ------------------------------------------------------------------------------
_LETTER = {"A": 0, "B": 1, "C": 2}


def _siqa(obj, rec, split, label=None):
    if label is None:
        if "correct" in obj:           # socialIQa_v1.4 files (XTREME download)
            label = _LETTER.get(str(obj["correct"]).strip(), -1)
        elif obj.get("label") not in (None, ""):   # hub: "1".."3"
            label = int(str(obj["label"]).strip()) - 1
    return _mc(rec, obj.get("id", rec.index), f"{obj.get('context')} {obj.get('question')}",
               [obj.get("answerA"), obj.get("answerB"), obj.get("answerC")], label, 3, split)


def read_siqa(data_dir, split, lang, on_error):
    v14 = {"train": "trn", "dev": "dev", "test": "tst"}[split]
    plain = {"dev": "dev"}.get(split, split)
    path = first_existing([os.path.join(data_dir, f"socialIQa_v1.4_{v14}.jsonl"),
                           os.path.join(data_dir, "socialIQa_v1.4", f"socialIQa_v1.4_{v14}.jsonl"),
                           os.path.join(data_dir, f"{plain}.jsonl")], "SocialIQA file")
    labels_path = os.path.join(data_dir, f"{plain}-labels.lst")
    if path.endswith(f"{plain}.jsonl") and os.path.isfile(labels_path):
        labels = [l.strip() for l in formats.read_lines(labels_path) if l.strip()]
        rows = list(formats.read_jsonl(path, on_error))
        if len(labels) != len(rows):
            raise DataError(f"{len(labels)} labels for {len(rows)} examples", file=labels_path,
                            reason="column_count", fix="the .lst file needs one label per jsonl line")
        out = []
        for (line, obj), y in zip(rows, labels):
            ex = _siqa(obj, Rec(path, line, on_error, len(out)), split, int(y) - 1)
            if ex is not None:
                out.append(ex)
        return out
    return _read_jsonl_with(path, split, on_error, _siqa)


# --- HellaSwag ------------------------------------------------------------------------------
def _hellaswag(obj, rec, split):
    endings = obj.get("endings") or []
    ctx_b = obj.get("ctx_b") or ""
    return _mc(rec, obj.get("ind", rec.index), obj.get("ctx_a"),
               [f"{ctx_b} {e}".strip() for e in endings], obj.get("label"), 4, split)


def read_hellaswag(data_dir, split, lang, on_error):
    s = {"dev": "val"}.get(split, split)
    path = first_existing([os.path.join(data_dir, f"hellaswag_{s}.jsonl"),
                           os.path.join(data_dir, f"{s}.jsonl")], "HellaSwag file")
    return _read_jsonl_with(path, split, on_error, _hellaswag)


# --- SWAG ---------------------------------------------------------------------------------
def _swag(obj, rec, split):
    """As BERT's SWAG setup and HF run_swag: context sent1, choices "{sent2} {ending}"."""
    return _mc(rec, obj.get("fold-ind", rec.index), obj.get("sent1"),   # test: no label (None / -1)
               [f"{obj.get('sent2')} {obj.get(f'ending{i}')}" for i in range(4)], obj.get("label"), 4, split)


def read_swag(data_dir, split, lang, on_error):
    """rowanz/swagaf's data/{train,val,test}.csv (the regular config: one gold ending, three
    adversarial ones)."""
    s = {"dev": "val"}.get(split, split)
    path = first_existing([os.path.join(data_dir, f"{s}.csv"), os.path.join(data_dir, "data", f"{s}.csv")],
                          "SWAG file")
    cols = ("sent1", "sent2", "ending0", "ending1", "ending2", "ending3") + (("label",) if split != "test" else ())
    out = []
    for line, row in formats.read_csv(path, cols, on_error):
        ex = _swag(row, Rec(path, line, on_error, len(out)), split)
        if ex is not None:
            out.append(ex)
    return out


# --- Cosmos QA ------------------------------------------------------------------------------
def _cosmos(obj, rec, split):
    return _mc(rec, obj.get("id", rec.index), f"{obj.get('context')} {obj.get('question')}",
               [obj.get(f"answer{i}") for i in range(4)], obj.get("label"), 4, split)


def read_cosmosqa(data_dir, split, lang, on_error):
    s = {"dev": "valid"}.get(split, split)
    paths = [os.path.join(data_dir, f"{s}.{ext}") for ext in ("csv", "jsonl")]
    path = first_existing(paths, "Cosmos QA file")
    if path.endswith(".csv"):
        cols = ("context", "question", "answer0", "answer1", "answer2", "answer3")
        out = []
        for line, row in formats.read_csv(path, cols + (("label",) if split != "test" else ()), on_error):
            ex = _cosmos(row, Rec(path, line, on_error, len(out)), split)
            if ex is not None:
                out.append(ex)
        return out
    return _read_jsonl_with(path, split, on_error, _cosmos)


# --- CommonsenseQA --------------------------------------------------------------------------
def _csqa(obj, rec, split):
    q = obj.get("question")
    if isinstance(q, dict):  # original release: question: {stem, choices: [{label, text}]}
        keys = [c.get("label") for c in q.get("choices", [])]
        texts = [c.get("text") for c in q.get("choices", [])]
        stem = q.get("stem")
    else:                    # hub: question (str), choices: {label: [...], text: [...]}
        ch = obj.get("choices") or {}
        keys, texts, stem = list(ch.get("label", [])), list(ch.get("text", [])), q
    key = obj.get("answerKey")
    label = keys.index(key) if key in keys else (None if not key else -1)
    return _mc(rec, obj.get("id", rec.index), stem, texts, label, 5, split)


def read_commonsenseqa(data_dir, split, lang, on_error):
    names = {"train": ["train_rand_split.jsonl"], "dev": ["dev_rand_split.jsonl"],
             "test": ["test_rand_split_no_answers.jsonl", "test_rand_split.jsonl"]}[split]
    path = first_existing([os.path.join(data_dir, n) for n in names + [f"{split}.jsonl"]],
                          "CommonsenseQA file")
    return _read_jsonl_with(path, split, on_error, _csqa)


_hf = {"train": "train", "dev": "validation", "test": "test"}


def _row(fn):
    return lambda row, rec, lang, split: fn(row, rec, split)


register(Task(
    name="xcopa", kind="multiple_choice", labels=None, num_choices=2,
    languages=tuple(XTREME_R["xcopa"]), metric="accuracy", splits=("dev", "test"),
    train_from="SIQA then COPA (English)",
    hub=lambda split, lang: [HubSpec("cambridgeltl/xcopa", lang, _hf[split])],
    parse_row=_copa_row, read_official=read_xcopa,
    description="XCOPA: causal commonsense, 2 choices"))

register(Task(
    name="copa", kind="multiple_choice", labels=None, num_choices=2, languages=("en",),
    metric="accuracy", group="intermediate",
    hub=lambda split, lang: [HubSpec("aps/super_glue", "copa", _hf[split])],
    parse_row=_copa_row, read_official=read_copa,
    tfds=lambda split, lang: ("super_glue", "copa", _hf[split])))

register(Task(
    name="siqa", kind="multiple_choice", labels=None, num_choices=3, languages=("en",),
    metric="accuracy", group="intermediate",
    hub=lambda split, lang: [HubSpec("allenai/social_i_qa", None, _hf[split])],
    parse_row=_row(_siqa), read_official=read_siqa))

register(Task(
    name="hellaswag", kind="multiple_choice", labels=None, num_choices=4, languages=("en",),
    metric="accuracy", group="intermediate",
    hub=lambda split, lang: [HubSpec("Rowan/hellaswag", None, _hf[split])],
    parse_row=_row(_hellaswag), read_official=read_hellaswag))

register(Task(
    name="swag", kind="multiple_choice", labels=None, num_choices=4, languages=("en",),
    metric="accuracy", group="intermediate",
    hub=lambda split, lang: [HubSpec("allenai/swag", "regular", _hf[split])],
    parse_row=_row(_swag), read_official=read_swag,
    description="SWAG (regular): HellaSwag's predecessor, the same 4-way ending format with "
                "easier (pre-BERT) adversarial endings. Official layout: swagaf's data/{train,val,test}.csv"))

register(Task(
    name="cosmosqa", kind="multiple_choice", labels=None, num_choices=4, languages=("en",),
    metric="accuracy", group="intermediate", max_length=256,
    hub=lambda split, lang: [HubSpec("allenai/cosmos_qa", None, _hf[split])],
    parse_row=_row(_cosmos), read_official=read_cosmosqa))

register(Task(
    name="commonsenseqa", kind="multiple_choice", labels=None, num_choices=5, languages=("en",),
    metric="accuracy", group="intermediate",
    hub=lambda split, lang: [HubSpec("tau/commonsense_qa", None, _hf[split])],
    parse_row=_row(_csqa), read_official=read_commonsenseqa))
