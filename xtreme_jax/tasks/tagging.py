"""Sequence tagging: udpos (UPOS), panx (WikiANN NER, BIO), ccg (CCG supertags, jiant format)."""
from __future__ import annotations

import glob
import json
import os

from xtreme_jax.data import formats
from xtreme_jax.data.errors import DataError
from xtreme_jax.tasks.base import HubSpec, Rec, Task, register
from xtreme_jax.tasks.common import first_existing
from xtreme_jax.tasks.languages import XTREME_R

UPOS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
        "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X")          # google/xtreme udpos ClassLabel order
PANX = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")  # google/xtreme PAN-X order

# google/xtreme names its udpos configs by English language name.
UDPOS_HUB_NAMES = dict(
    af="Afrikaans", ar="Arabic", bg="Bulgarian", de="German", el="Greek", en="English", es="Spanish",
    et="Estonian", eu="Basque", fa="Persian", fi="Finnish", fr="French", he="Hebrew", hi="Hindi",
    hu="Hungarian", id="Indonesian", it="Italian", ja="Japanese", kk="Kazakh", ko="Korean",
    mr="Marathi", nl="Dutch", pt="Portuguese", ru="Russian", ta="Tamil", te="Telugu", th="Thai",
    tl="Tagalog", tr="Turkish", ur="Urdu", vi="Vietnamese", yo="Yoruba", zh="Chinese")


def _clean_word(w: str) -> str:
    # XTREME's udpos preprocessing removes zero-width non-joiners and spaces inside words.
    return "".join(w.replace("\u200c", "").split(" "))


def _tagged(rec, idx, tokens, tags, labels, split):
    if not tokens:
        return None
    if tags is None:
        if split != "test":
            rec.error("no tags", field="tags", reason="tag_count",
                      fix="train/dev files need a tag for every token")
            return None
    else:
        if len(tags) != len(tokens):
            rec.error(f"{len(tokens)} tokens but {len(tags)} tags", field="tags", reason="tag_count",
                      fix="every token needs exactly one tag")
            return None
        if labels is not None:
            bad = [t for t in tags if t not in labels]
            if bad:
                rec.error(f"tag {bad[0]!r} is not in the label set {list(labels)[:20]}", field="tags",
                          reason="unknown_label", fix="fix the tag or the task's tag list")
                return None
    return {"id": str(idx), "tokens": list(tokens), "tags": list(tags) if tags is not None else None}


def read_token_tag_file(path, split, lang, labels, on_error):
    out = []
    labeled = split != "test" or _has_two_columns(path)
    for line, tokens, tags in formats.read_token_tag(path, on_error, labeled=labeled):
        ex = _tagged(Rec(path, line, on_error), f"{lang}-{split}-{len(out)}", tokens, tags, labels, split)
        if ex is not None:
            out.append(ex)
    return out


def _has_two_columns(path) -> bool:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                return "\t" in line.rstrip("\r\n")
    return False


def read_conllu_files(paths, split, lang, on_error):
    out = []
    for path in paths:
        for line, forms, upos in formats.read_conllu(path, on_error):
            ex = _tagged(Rec(path, line, on_error), f"{lang}-{split}-{len(out)}",
                         [_clean_word(w) for w in forms], upos, UPOS, split)
            if ex is not None:
                out.append(ex)
    return out


def read_udpos(data_dir, split, lang, on_error):
    """XTREME layout {split}-{lang}.tsv, else UD CoNLL-U files {lang}_*-ud-{split}.conllu.

    Like XTREME, all treebanks of a language are merged per split.
    """
    tsv = os.path.join(data_dir, f"{split}-{lang}.tsv")
    if os.path.isfile(tsv):
        return read_token_tag_file(tsv, split, lang, UPOS, on_error)
    conllu = sorted(glob.glob(os.path.join(data_dir, "**", f"{lang}_*-ud-{split}.conllu"), recursive=True))
    if not conllu:
        raise DataError(f"missing udpos data for {lang!r} {split!r}", file=tsv, reason="missing_file",
                        fix=f"put {split}-{lang}.tsv (XTREME layout) or {lang}_<treebank>-ud-{split}.conllu "
                            f"(Universal Dependencies) under {data_dir}")
    return read_conllu_files(conllu, split, lang, on_error)


def read_panx(data_dir, split, lang, on_error):
    path = os.path.join(data_dir, f"{split}-{lang}.tsv")
    formats.require_file(path, fix=f"expected the XTREME layout {{split}}-{{lang}}.tsv in {data_dir}")
    return read_token_tag_file(path, split, lang, PANX, on_error)


def _tag_row(labels, tag_names):
    def parse(row, rec, lang, split):
        tokens = row.get("tokens", row.get("words"))
        tags = next((row[n] for n in tag_names if n in row), None)
        if tokens is None:
            rec.error(f"row lacks 'tokens'; has {sorted(row)}", field="tokens", reason="missing_column")
            return None
        if tags is not None and labels is not None:
            tags = [labels[t] if isinstance(t, int) and 0 <= t < len(labels) else t for t in tags]
        return _tagged(rec, row.get("id", f"{lang}-{split}-{rec.index}"), tokens, tags, labels, split)
    return parse


# --- CCG supertagging (jiant format; CCGbank is LDC-licensed, users bring the data) ----------
def _ccg_path(data_dir, split):
    return first_existing([os.path.join(data_dir, n) for n in (f"ccg.{split}", f"{split}.tsv", f"{split}.txt")],
                          "CCG file", fix="CCG lines are `space-separated tokens<TAB>space-separated tags`")


def read_ccg(data_dir, split, lang, on_error, labels=None):
    path = _ccg_path(data_dir, split)
    labels = labels if labels is not None else ccg_labels_from_dir(data_dir)
    out = []
    for line, cols in formats.read_tsv(path, (2,), on_error, names="tokens, tags"):
        ex = _tagged(Rec(path, line, on_error), f"en-{split}-{len(out)}", cols[0].split(),
                     cols[1].split(), labels, split)
        if ex is not None:
            out.append(ex)
    return out


def ccg_labels_from_dir(data_dir):
    """Tag list: tags_to_id.json (jiant) or tags.txt if given, else every tag seen in the files."""
    js = os.path.join(data_dir, "tags_to_id.json")
    if os.path.isfile(js):
        with open(js, encoding="utf-8") as f:
            m = json.load(f)
        return tuple(sorted(m, key=m.get))
    txt = os.path.join(data_dir, "tags.txt")
    if os.path.isfile(txt):
        return tuple(l.strip() for l in formats.read_lines(txt) if l.strip())
    seen = set()
    for split in ("train", "dev", "test"):
        try:
            path = _ccg_path(data_dir, split)
        except DataError:
            continue
        for line in formats.read_lines(path):
            cols = line.split("\t")
            if len(cols) == 2:
                seen.update(cols[1].split())
    if not seen:
        raise DataError("no CCG tags found", file=data_dir, reason="empty",
                        fix="give tags.txt (one tag per line) or the train/dev files")
    return tuple(sorted(seen))


register(Task(
    name="udpos", kind="tagging", labels=UPOS, languages=tuple(XTREME_R["udpos"]),
    metric="seqeval_f1", train_from="UD English treebanks",
    hub=lambda split, lang: [HubSpec("google/xtreme", f"udpos.{UDPOS_HUB_NAMES.get(lang, lang)}",
                                     {"dev": "validation"}.get(split, split))],
    parse_row=_tag_row(UPOS, ("pos_tags", "upos", "tags")), read_official=read_udpos,
    description="UD POS tagging; official layout or CoNLL-U (multi-word ranges skipped)"))

register(Task(
    name="panx", kind="tagging", labels=PANX, languages=tuple(XTREME_R["panx"]),
    metric="seqeval_f1", train_from="WikiANN en",
    hub=lambda split, lang: [HubSpec("google/xtreme", f"PAN-X.{lang}", {"dev": "validation"}.get(split, split))],
    parse_row=_tag_row(PANX, ("ner_tags", "ner", "tags")), read_official=read_panx,
    description="WikiANN NER (PER/ORG/LOC, BIO)"))

register(Task(
    name="ccg", kind="tagging", labels=None, languages=("en",), metric="accuracy",
    group="intermediate",
    read_official=lambda d, split, lang, on_error: read_ccg(d, split, lang, on_error),
    label_source=lambda source: ccg_labels_from_dir(source.path),
    description="CCG supertagging (1,363 supertags in CCGbank); file format only, no data shipped"))
