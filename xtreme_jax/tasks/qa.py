"""Extractive QA: xquad, mlqa, tydiqa (GoldP), squad (v1.1) and squad2 (v2.0), all SQuAD JSON."""
from __future__ import annotations

import os

from xtreme_jax.data import formats
from xtreme_jax.tasks.base import HubSpec, Rec, Task, register
from xtreme_jax.tasks.common import first_existing
from xtreme_jax.tasks.languages import XTREME, XTREME_R

TYDIQA_NAMES = dict(ar="arabic", bn="bengali", en="english", fi="finnish", id="indonesian",
                    ko="korean", ru="russian", sw="swahili", te="telugu")


def _qa(rec, qid, question, context, texts, starts, split, impossible=False):
    if not isinstance(context, str) or not isinstance(question, str):
        rec.error("question/context must be text", field="context", reason="bad_field")
        return None
    texts, starts = list(texts or []), list(starts or [])
    if len(texts) != len(starts):
        rec.error(f"{len(texts)} answer texts but {len(starts)} answer starts", field="answers",
                  reason="column_count")
        return None
    keep_t, keep_s = [], []
    for k, (t, s) in enumerate(zip(texts, starts)):
        if t == "" and not impossible:   # official test files have answers blanked as ("", 0)
            continue
        if context[int(s):int(s) + len(t)] != t:
            rec.error(f"answer {t!r} not found in the context at answer_start={s} "
                      f"(context there: {context[int(s):int(s) + len(t)]!r})",
                      field=f"answers[{k}].answer_start", reason="answer_not_in_context",
                      fix="answer_start must be the character offset of the answer text in the context")
            return None
        keep_t.append(t)
        keep_s.append(int(s))
    if split == "train" and not keep_t and not impossible:
        rec.error("training question without an answer", field="answers", reason="answer_not_in_context",
                  fix="give at least one answer (or use squad2 for unanswerable questions)")
        return None
    return {"id": str(qid), "question": question, "context": context,
            "answers": {"text": keep_t, "answer_start": keep_s}}


def read_squad_json(path, split, on_error, keep=None):
    """`keep`: a filter on question ids (one language of TyDiQA's combined GoldP train file)."""
    on_error.seen(path)
    out = []
    for title, context, qa in formats.iter_squad(path):
        qid = qa.get("id", len(out))
        if keep is not None and not keep(str(qid)):
            continue
        answers = qa.get("answers") or []
        ex = _qa(Rec(path, f"question id {qid}", on_error, len(out)), qid, qa.get("question"), context,
                 [a.get("text") for a in answers], [a.get("answer_start") for a in answers], split,
                 impossible=bool(qa.get("is_impossible")))
        if ex is not None:
            out.append(ex)
    return out


def _qa_row(row, rec, lang, split):
    ans = row.get("answers") or {}
    if isinstance(ans, list):  # list of {text, answer_start}
        ans = {"text": [a["text"] for a in ans], "answer_start": [a["answer_start"] for a in ans]}
    return _qa(rec, row.get("id", rec.index), row.get("question"), row.get("context"),
               ans.get("text"), ans.get("answer_start"), split, impossible=not ans.get("text"))


def _translated_squad(data_dir, lang):
    names = [f"translate-train/squad.translate.train.en-{lang}.json",
             f"squad.translate.train.en-{lang}.json"]
    return first_existing([os.path.join(data_dir, n) for n in names], "translated SQuAD file",
                          fix="download the XTREME translations (gs://xtreme_translations/SQuAD)")


def read_squad(version):
    files = {"1.1": {"train": "train-v1.1.json", "dev": "dev-v1.1.json"},
             "2.0": {"train": "train-v2.0.json", "dev": "dev-v2.0.json"}}[version]

    def read(data_dir, split, lang, on_error):
        if split == "translate_train":
            return read_squad_json(_translated_squad(data_dir, lang), "train", on_error)
        return read_squad_json(first_existing([os.path.join(data_dir, files[split])], "SQuAD file"),
                               split, on_error)
    return read


def read_xquad(data_dir, split, lang, on_error):
    """XQuAD has one set per language (XTREME's test set); dev and test both read it."""
    if split == "translate_train":
        return read_squad_json(_translated_squad(data_dir, lang), "train", on_error)
    path = first_existing([os.path.join(data_dir, f"xquad.{lang}.json")], "XQuAD file")
    return read_squad_json(path, split, on_error)


def read_mlqa(data_dir, split, lang, on_error):
    name = f"{split}-context-{lang}-question-{lang}.json"
    path = first_existing([os.path.join(data_dir, name), os.path.join(data_dir, split, name),
                           os.path.join(data_dir, "MLQA_V1", split, name)], "MLQA file")
    return read_squad_json(path, split, on_error)


def _tydiqa_prefix(lang):
    return TYDIQA_NAMES.get(lang, lang) + "-"   # GoldP question ids: "{language name}-{number}"


def read_tydiqa(data_dir, split, lang, on_error):
    """XTREME layout; the GoldP dev set is the test set, so 'test' reads the dev files.

    Training data in every language (gold in-language training): XTREME's download_data.sh keeps
    the release's combined tydiqa-goldp-v1.1-train.json and writes one tydiqa.{lang}.train.json
    per language (utils_preprocess.py); either is read, the combined file filtered by id prefix."""
    one = "tydiqa-goldp-v1.1-train.json"
    if split == "train":
        names = [f"tydiqa-goldp-v1.1-train/tydiqa.{lang}.train.json", f"tydiqa.{lang}.train.json",
                 f"tydiqa-goldp-v1.1-train/tydiqa.goldp.{lang}.train.json", f"tydiqa.goldp.{lang}.train.json"]
        names += [f"tydiqa-goldp-v1.1-train/{one}", one]
    else:
        names = [f"tydiqa-goldp-v1.1-dev/tydiqa.goldp.{lang}.dev.json", f"tydiqa.goldp.{lang}.dev.json",
                 f"tydiqa-goldp-v1.1-dev/tydiqa.{lang}.dev.json", f"tydiqa.{lang}.dev.json",
                 f"tydiqa-goldp-v1.1-dev/tydiqa-goldp-dev-{TYDIQA_NAMES.get(lang, lang)}.json"]
    path = first_existing([os.path.join(data_dir, n) for n in names], "TyDiQA-GoldP file")
    keep = (lambda qid, p=_tydiqa_prefix(lang): qid.startswith(p)) if path.endswith(one) else None
    return read_squad_json(path, "dev" if split == "test" else split, on_error, keep)


def _tydiqa_keep(lang):
    prefix = _tydiqa_prefix(lang)
    return lambda row: str(row.get("id", "")).startswith(prefix)


_v = {"dev": "validation"}

register(Task(
    name="squad", kind="span", labels=None, languages=("en",), metric="squad_em_f1",
    group="intermediate", max_length=384, translate_splits=("translate_train",),
    translate_languages=tuple(sorted(set(XTREME["xquad"]) | set(XTREME["mlqa"]) | set(XTREME["tydiqa"]))),
    splits=("train", "dev"),
    hub=lambda split, lang: [HubSpec("rajpurkar/squad", None, _v.get(split, split))],
    parse_row=_qa_row, read_official=read_squad("1.1"),
    tfds=lambda split, lang: ("squad", "v1.1", _v.get(split, split)),
    description="SQuAD v1.1 (English training data of xquad/mlqa)"))

register(Task(
    name="squad2", kind="span", labels=None, languages=("en",), metric="squad_em_f1",
    group="intermediate", max_length=384, splits=("train", "dev"),
    hub=lambda split, lang: [HubSpec("rajpurkar/squad_v2", None, _v.get(split, split))],
    parse_row=_qa_row, read_official=read_squad("2.0"),
    description="SQuAD v2.0 (unanswerable questions point at <s>)"))

register(Task(
    name="xquad", kind="span", labels=None, languages=tuple(XTREME_R["xquad"]), metric="squad_em_f1",
    max_length=384, splits=("dev", "test"), train_from="SQuAD v1.1",
    hub=lambda split, lang: [HubSpec("google/xtreme", f"XQuAD.{lang}", "validation")],
    parse_row=_qa_row, read_official=read_xquad))

register(Task(
    name="mlqa", kind="span", labels=None, languages=tuple(XTREME["mlqa"]), metric="mlqa_em_f1",
    max_length=384, splits=("dev", "test"), train_from="SQuAD v1.1",
    hub=lambda split, lang: [HubSpec("google/xtreme", f"MLQA.{lang}.{lang}", _v.get(split, split))],
    parse_row=_qa_row, read_official=read_mlqa))

register(Task(
    name="tydiqa", kind="span", labels=None, languages=tuple(XTREME["tydiqa"]), metric="squad_em_f1",
    max_length=384, splits=("train", "dev", "test"), train_from="TyDiQA-GoldP en",
    hub=lambda split, lang: [HubSpec("google/xtreme", "tydiqa", "train" if split == "train" else "validation",
                                     keep=_tydiqa_keep(lang))],
    parse_row=_qa_row, read_official=read_tydiqa,
    description="TyDiQA-GoldP; the dev set serves as test; train in each of its nine languages "
                "(gold in-language training: split=train, lang=ar...)"))
