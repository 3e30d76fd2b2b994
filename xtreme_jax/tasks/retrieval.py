"""Retrieval and bitext mining: tatoeba, bucc2018, lareqa (XQuAD-R), mewslix.

Examples are sentences with a side (0 = query / source language, 1 = candidate / English target)
and keys: a query and a candidate match when they share a key. The encoder embeds every row
(pooling and layer are chosen model-side); the evaluator ranks candidates by cosine similarity.
"""
from __future__ import annotations

import json
import os
import re

from xtreme_jax.data import formats
from xtreme_jax.data.errors import DataError
from xtreme_jax.tasks.base import HubSpec, Rec, Task, register
from xtreme_jax.tasks.common import first_existing
from xtreme_jax.tasks.languages import TATOEBA_ISO3, XTREME, XTREME_R


def _sent(idx, text, side, keys):
    return {"id": str(idx), "text": text, "side": side, "keys": [str(k) for k in keys]}


# --- Tatoeba --------------------------------------------------------------------------------
def read_tatoeba(data_dir, split, lang, on_error):
    """LASER files tatoeba.{xxx}-eng.{xxx|eng} (line i <-> line i), or the XTREME copy
    {xx}-en.{xx|en} whose English side is sorted: gold indices then come from test-{xx}.tsv."""
    iso3 = TATOEBA_ISO3.get(lang, lang)
    laser = (os.path.join(data_dir, f"tatoeba.{iso3}-eng.{iso3}"), os.path.join(data_dir, f"tatoeba.{iso3}-eng.eng"))
    xtreme = (os.path.join(data_dir, f"{lang}-en.{lang}"), os.path.join(data_dir, f"{lang}-en.en"))
    if os.path.isfile(laser[0]):
        src_path, tgt_path, gold = laser[0], laser[1], None
    elif os.path.isfile(xtreme[0]):
        src_path, tgt_path = xtreme
        gold_path = next((p for p in (os.path.join(data_dir, f"test-{lang}.tsv"),
                                      os.path.join(data_dir, "labels", f"test-{lang}.tsv")) if os.path.isfile(p)), None)
        gold = [l.strip() for l in formats.read_lines(gold_path)] if gold_path else []
    else:
        raise DataError(f"missing Tatoeba files for {lang!r}", file=laser[0], reason="missing_file",
                        fix=f"put tatoeba.{iso3}-eng.{iso3} and tatoeba.{iso3}-eng.eng (LASER) or "
                            f"{lang}-en.{lang} / {lang}-en.en (XTREME) in {data_dir}")
    src, tgt = formats.read_lines(src_path), formats.read_lines(tgt_path)
    if len(src) != len(tgt):
        raise DataError(f"{len(src)} source lines but {len(tgt)} English lines", file=tgt_path,
                        reason="column_count", fix="the two sides must be line-aligned files of equal length")
    sources_of = {}
    for j, g in enumerate(gold or []):
        sources_of.setdefault(g, []).append(j)
    out = []
    for i, (s, t) in enumerate(zip(src, tgt)):
        if not s.strip() or not t.strip():
            Rec(src_path if not s.strip() else tgt_path, i + 1, on_error).error(
                "empty sentence", field="text", reason="empty", fix="remove the empty line on both sides")
            continue
        out.append(_sent(f"src-{i}", s, 0, [i]))
        tkey = [i] if gold is None else sources_of.get(str(i), [])
        out.append(_sent(f"tgt-{i}", t, 1, tkey))
    return out


def _pair_row(row, rec, lang, split):
    s, t = row.get("source_sentence"), row.get("target_sentence")
    if not isinstance(s, str) or not isinstance(t, str):
        rec.error("row needs source_sentence and target_sentence", field="source_sentence",
                  reason="missing_column")
        return None
    return [_sent(f"src-{rec.index}", s.strip(), 0, [rec.index]),
            _sent(f"tgt-{rec.index}", t.strip(), 1, [rec.index])]


# --- BUCC 2018 ------------------------------------------------------------------------------
def read_bucc(data_dir, split, lang, on_error):
    """{xx}-en.{split}.{xx|en} as `id<TAB>sentence`, gold pairs {xx}-en.{split}.gold."""
    base = os.path.join(data_dir, f"{lang}-en.{split}")
    out, ids = [], {}
    for side, suffix in ((0, lang), (1, "en")):
        path = base + f".{suffix}"
        for line, cols in formats.read_tsv(path, (2,), on_error, names="id, sentence"):
            ids.setdefault(side, []).append(len(out))
            out.append(_sent(cols[0], cols[1], side, [cols[0]] if side == 0 else []))
    gold_path = base + ".gold"
    if os.path.isfile(gold_path):
        by_id = {(e["side"], e["id"]): e for e in out}
        for line, cols in formats.read_tsv(gold_path, (2,), on_error, names="source id, english id"):
            tgt = by_id.get((1, cols[1]))
            if (0, cols[0]) not in by_id or tgt is None:
                Rec(gold_path, line, on_error).error(f"gold pair {cols} names an unknown sentence id",
                                                     field="id", reason="bad_field")
                continue
            tgt["keys"].append(cols[0])
    return out


# --- LAReQA (XQuAD-R) -----------------------------------------------------------------------
def read_lareqa(data_dir, split, lang, on_error):
    """XQuAD-R {lang}.json: SQuAD JSON with sentence_breaks; questions vs answer sentences.

    Candidates of one language are returned with its queries; LAReQA ranks each question
    against the candidates of all languages, so the evaluator unions side-1 rows over languages.
    """
    path = first_existing([os.path.join(data_dir, n, f"{lang}.json") for n in ("xquad-r", "lareqa/xquad-r", ".")],
                          "XQuAD-R file")
    data = formats.read_json(path)
    out = []
    for a, article in enumerate(data.get("data", [])):
        for p, para in enumerate(article.get("paragraphs", [])):
            ctx, breaks = para["context"], para.get("sentence_breaks")
            if not breaks:
                Rec(path, f"paragraph {a}.{p}", on_error).error("no sentence_breaks", field="sentence_breaks",
                                                               reason="bad_field", fix="use the XQuAD-R files")
                continue
            cands = [_sent(f"{lang}_{a}_{p}_{k}", ctx[s:e], 1, []) for k, (s, e) in enumerate(breaks)]
            for qa in para.get("qas", []):
                start = qa["answers"][0]["answer_start"] if qa.get("answers") else -1
                k = next((k for k, (s, e) in enumerate(breaks) if s <= start < e), None)
                if k is None:  # as XTREME: skip questions whose answer is in no single sentence
                    continue
                cands[k]["keys"].append(str(qa["id"]))
                out.append(_sent(f"{lang}_{qa['id']}", qa["question"], 0, [qa["id"]]))
            out += cands
    return out


# --- Mewsli-X -------------------------------------------------------------------------------
_MARK = re.compile(r"\{(.*?)\}")


def _norm(s):
    return " ".join(s.splitlines()).replace("  ", " ").strip()


def mention_text(context: dict, mention: dict) -> str:
    """XTREME-R's baseline query: `mention: left { mention } right` over the mention's sentence."""
    text, m = context["text"], mention["mention_span"]
    start, end = m["start"], m["end"]
    s0, s1 = 0, len(text)
    for sp in context.get("sentence_spans", []):
        if sp["start"] <= start < sp["end"]:
            s0, s1 = sp["start"], max(sp["end"], end)
            break
    left, right = _MARK.sub(r"(\1)", text[s0:start]), _MARK.sub(r"(\1)", text[end:s1])
    span = text[start:end]
    return _norm(f"{span}: {left} {{ {span} }} {right}")


def entity_text(entity: dict) -> str:
    d = entity.get("description", "")
    spans = entity.get("sentence_spans") or []
    return _norm(" ".join(d[s["start"]:s["end"]] for s in spans) if spans else d)


def read_mewslix(data_dir, split, lang, on_error):
    """Queries from wikinews_mentions/{split}-{lang}.jsonl; split 'candidates' gives the entities."""
    if split == "candidates":
        path = formats.require_file(os.path.join(data_dir, "candidate_set_entities.jsonl"))
        return [_sent(e["entity_id"], entity_text(e), 1, [e["entity_id"]])
                for _, e in formats.read_jsonl(path, on_error)]
    path = formats.require_file(os.path.join(data_dir, "wikinews_mentions", f"{split}-{lang}.jsonl"))
    gold = {}
    gpath = os.path.join(data_dir, "wikinews_labels", f"{split}-{lang}.json")
    if os.path.isfile(gpath):
        with open(gpath, encoding="utf-8") as f:
            gold = json.load(f)
    out = []
    for line, doc in formats.read_jsonl(path, on_error):
        for m in doc.get("mentions", []):
            keys = gold.get(m["example_id"]) or ([m["entity_id"]] if m.get("entity_id") else [])
            out.append(_sent(m["example_id"], mention_text(doc["context"], m), 0, keys))
    return out


register(Task(
    name="tatoeba", kind="retrieval", labels=None, languages=tuple(XTREME_R["tatoeba"]),
    metric="accuracy", splits=("test",), train_from="none (encoder only)",
    hub=lambda split, lang: [HubSpec("google/xtreme", f"tatoeba.{TATOEBA_ISO3.get(lang, lang)}", "validation")],
    parse_row=_pair_row, read_official=read_tatoeba,
    description="Tatoeba sentence retrieval xx->en, top-1 accuracy"))

register(Task(
    name="bucc2018", kind="retrieval", labels=None, languages=tuple(XTREME["bucc2018"]),
    metric="f1", splits=("dev", "test"), train_from="none (encoder only)",
    hub=lambda split, lang: [HubSpec("google/xtreme", f"bucc18.{lang}", {"dev": "validation"}.get(split, split))],
    parse_row=_pair_row, read_official=read_bucc,
    description="BUCC bitext mining; the hub copy holds gold pairs only (no distractors)"))

register(Task(
    name="lareqa", kind="retrieval", labels=None, languages=tuple(XTREME_R["lareqa"]),
    metric="map@20", splits=("test",), max_length=96, read_official=read_lareqa,
    description="LAReQA on XQuAD-R: language-agnostic answer-sentence retrieval"))

register(Task(
    name="mewslix", kind="retrieval", labels=None, languages=tuple(XTREME_R["mewslix"]),
    metric="map@20", splits=("dev", "test", "candidates"), max_length=64, read_official=read_mewslix,
    description="Mewsli-X entity linking; split 'candidates' = the entity set (all languages)"))
