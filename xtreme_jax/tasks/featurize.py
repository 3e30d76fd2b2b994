"""Examples -> Features, preprocessing as the benchmark does it (one function per task kind).

All tokenization goes through the fast HF tokenizer in batches (it runs in Rust, many texts per
call); the Python loops here only cut, align and map labels.

- classification: the tokenizer's pair encoding (`<s> A </s></s> B </s>` for XLM-R),
  longest-first truncation to max_length (XTREME run_classify).
- multiple choice: one pair (context, choice) per choice, grouped (XTREME run_xcopa / jiant).
- tagging: words pre-split (`is_split_into_words`); the tag goes on the first sub-token of each
  word, -100 elsewhere; a sentence longer than max_length is cut at word boundaries into several
  windows (XTREME splits long sentences in preprocessing) instead of being truncated, and
  `word_index` lets the predictions be put back together per word.
- span (extractive QA): question truncated to max_query_length tokens; the context is cut into
  windows that start every `doc_stride` tokens (BERT / XTREME run_squad semantics: doc_stride is
  the step between window starts); answers are mapped to tokens through the offset mapping;
  an answer outside a window points at token 0, as in HF.
- retrieval: one sentence per row, truncated to max_length.
- mlm: lines tokenized, concatenated and cut into blocks of max_length (masking is done per
  batch by the pipeline so every epoch sees new masks).
"""
from __future__ import annotations

import numpy as np

from xtreme_jax.data.features import Features
from xtreme_jax.data.tokenization import template, tokenizer_meta

CHUNK = 2000          # examples per tokenizer call
PROGRESS_MIN = 20000  # show a progress bar from this many examples on


def _chunks(n: int, progress: bool, what: str):
    starts = range(0, n, CHUNK)
    if progress and n >= PROGRESS_MIN:
        from tqdm.auto import tqdm
        return tqdm(starts, desc=f"tokenizing {what}", unit_scale=CHUNK, total=len(starts))
    return starts


def _meta(tok, kind, max_length, labels, n, **extra):
    m = tokenizer_meta(tok)
    m.update(kind=kind, max_length=int(max_length), labels=list(labels) if labels else None,
             num_examples=int(n), **extra)
    return m


def _label_ids(labels):
    return {l: i for i, l in enumerate(labels)} if labels else {}


# --- classification --------------------------------------------------------------------------
def featurize_classification(examples, tok, *, max_length, labels, progress=True, **_):
    lid = _label_ids(labels)
    pair = examples and examples[0].get("text_b") is not None
    ids, types, ys = [], [], []
    for s in _chunks(len(examples), progress, "pairs" if pair else "sentences"):
        part = examples[s:s + CHUNK]
        enc = tok([e["text_a"] for e in part], [e["text_b"] for e in part] if pair else None,
                  truncation=True, max_length=max_length)
        ids += enc["input_ids"]
        types += enc["token_type_ids"] if "token_type_ids" in enc else [[0] * len(x) for x in enc["input_ids"]]
        ys += [lid[e["label"]] if e.get("label") is not None else -1 for e in part]
    tokens = {"input_ids": ids}
    if "token_type_ids" in tok.model_input_names:
        tokens["token_type_ids"] = types
    return Features.from_rows("classification", tokens,
                              {"example_index": np.arange(len(examples)), "labels": ys},
                              _meta(tok, "classification", max_length, labels, len(examples)))


# --- multiple choice -------------------------------------------------------------------------
def featurize_multiple_choice(examples, tok, *, max_length, labels, num_choices, progress=True, **_):
    c = num_choices
    ids, types = [], []
    for s in _chunks(len(examples), progress, "choices"):
        part = examples[s:s + CHUNK]
        first = [e["context"] for e in part for _ in range(c)]
        second = [ch for e in part for ch in e["choices"]]
        enc = tok(first, second, truncation=True, max_length=max_length)
        ids += enc["input_ids"]
        types += enc["token_type_ids"] if "token_type_ids" in enc else [[0] * len(x) for x in enc["input_ids"]]
    tokens = {"input_ids": ids}
    if "token_type_ids" in tok.model_input_names:
        tokens["token_type_ids"] = types
    ys = [e["label"] if e.get("label") is not None else -1 for e in examples]
    rows = {"example_index": np.repeat(np.arange(len(examples)), c), "labels": np.repeat(ys, c),
            "choice": np.tile(np.arange(c), len(examples))}
    return Features.from_rows("multiple_choice", tokens, rows,
                              _meta(tok, "multiple_choice", max_length, labels, len(examples),
                                    num_choices=c), group=c)


# --- tagging ---------------------------------------------------------------------------------
def featurize_tagging(examples, tok, *, max_length, labels, progress=True, **_):
    tpl = template(tok)
    lid = _label_ids(labels)
    budget = max_length - tpl.single_specials
    out = {"input_ids": [], "labels": [], "word_index": []}
    ex_index, windows_split, no_token_words = [], 0, 0
    for s in _chunks(len(examples), progress, "sentences"):
        part = examples[s:s + CHUNK]
        enc = tok([e["tokens"] for e in part], is_split_into_words=True, add_special_tokens=False)
        for j, e in enumerate(part):
            ids, wids = enc["input_ids"][j], enc.word_ids(j)
            tags = e.get("tags")
            # token span of each word; words that tokenize to nothing get no label (see decode)
            first_tok = {}
            for t, w in enumerate(wids):
                if w is not None and w not in first_tok:
                    first_tok[w] = t
            no_token_words += len(e["tokens"]) - len(first_tok)
            # cut into windows at word starts so that no word is split between windows
            bounds, start = [], 0
            starts = sorted(first_tok.values()) + [len(ids)]
            for a, b in zip(starts[:-1], starts[1:]):
                if b - start > budget and a > start:
                    bounds.append((start, a))
                    start = a
                # a single word longer than the window: cut inside it (cannot be avoided)
                while b - start > budget:
                    bounds.append((start, start + budget))
                    start += budget
            bounds.append((start, len(ids)))
            windows_split += len(bounds) - 1
            for a, b in bounds:
                lab, widx = [], []
                for t in range(a, b):
                    w = wids[t]
                    first = w is not None and first_tok[w] == t
                    widx.append(w if first else -1)
                    lab.append(lid[tags[w]] if first and tags is not None else -100)
                out["input_ids"].append(tpl.single(ids[a:b]))
                pre, post = [-100] * len(tpl.single_prefix), [-100] * len(tpl.single_suffix)
                out["labels"].append(pre + lab + post)
                out["word_index"].append([-1] * len(pre) + widx + [-1] * len(post))
                ex_index.append(s + j)
    meta = _meta(tok, "tagging", max_length, labels, len(examples), split_sentences=windows_split,
                 words_without_tokens=no_token_words,
                 num_words=[len(e["tokens"]) for e in examples])
    return Features.from_rows("tagging", out, {"example_index": ex_index}, meta)


# --- extractive QA ---------------------------------------------------------------------------
def featurize_span(examples, tok, *, max_length, labels=None, progress=True, doc_stride=128,
                   max_query_length=64, **_):
    tpl = template(tok)
    uses_types = "token_type_ids" in tok.model_input_names
    out = {"input_ids": [], "offsets": [], "max_context": []}
    if uses_types:
        out["token_type_ids"] = []
    rows = {"example_index": [], "start_positions": [], "end_positions": []}
    for s in _chunks(len(examples), progress, "questions"):
        part = examples[s:s + CHUNK]
        q_enc = tok([e["question"].lstrip() for e in part], add_special_tokens=False,
                    truncation=True, max_length=max_query_length)
        c_enc = tok([e["context"] for e in part], add_special_tokens=False, return_offsets_mapping=True)
        for j, e in enumerate(part):
            q, c = q_enc["input_ids"][j], c_enc["input_ids"][j]
            offs = np.asarray(c_enc["offset_mapping"][j], dtype=np.int64).reshape(-1, 2)
            window = max_length - len(q) - tpl.pair_specials
            if window <= 0:
                raise ValueError(f"max_length {max_length} leaves no room for the context after a "
                                 f"{len(q)}-token question; raise max_length or lower max_query_length")
            tok_s = tok_e = -1
            ans = e.get("answers") or {}
            if ans.get("text"):
                a0, text = int(ans["answer_start"][0]), ans["text"][0]
                if len(offs):
                    tok_s = int(np.searchsorted(offs[:, 1], a0, side="right"))
                    tok_e = int(np.searchsorted(offs[:, 0], a0 + len(text), side="left")) - 1
            spans, start = [], 0
            while True:
                length = min(len(c) - start, window)
                spans.append((start, length))
                if start + length >= len(c):
                    break
                start += min(length, doc_stride)
            best = _max_context_windows(spans, len(c))
            q_arr, c_arr = np.asarray(q, np.int32), np.asarray(c, np.int32)
            for w, (start, length) in enumerate(spans):
                ids, types, ctx0 = tpl.pair(q_arr, c_arr[start:start + length])
                off = np.full((len(ids), 2), -1, dtype=np.int32)
                off[ctx0:ctx0 + length] = offs[start:start + length]
                maxc = np.zeros(len(ids), dtype=np.int32)
                maxc[ctx0:ctx0 + length] = best[start:start + length] == w
                if 0 <= tok_s and start <= tok_s and tok_e < start + length and tok_e >= tok_s:
                    sp, ep = ctx0 + tok_s - start, ctx0 + tok_e - start
                else:
                    sp = ep = 0
                out["input_ids"].append(np.asarray(ids, np.int32))
                out["offsets"].append(off)
                out["max_context"].append(maxc)
                if uses_types:
                    out["token_type_ids"].append(np.asarray(types, np.int32))
                rows["example_index"].append(s + j)
                rows["start_positions"].append(sp)
                rows["end_positions"].append(ep)
    meta = _meta(tok, "span", max_length, None, len(examples), doc_stride=doc_stride,
                 max_query_length=max_query_length)
    return Features.from_rows("span", out, rows, meta)


def _max_context_windows(spans, n):
    """For each context token, the window where it has the most context on both sides (BERT).

    With overlapping windows a token is seen several times; at decode time an answer may only
    start at a token in its max-context window, as in the original SQuAD code XTREME runs.
    """
    best = np.zeros(n, dtype=np.int64)
    score = np.full(n, -1.0)
    for w, (start, length) in enumerate(spans):
        k = np.arange(length)
        sc = np.minimum(k, length - 1 - k) + 0.01 * length
        pos = start + k
        better = sc > score[pos]
        best[pos[better]] = w
        score[pos[better]] = sc[better]
    return best


# --- retrieval -------------------------------------------------------------------------------
def featurize_retrieval(examples, tok, *, max_length, labels=None, progress=True, **_):
    ids = []
    for s in _chunks(len(examples), progress, "sentences"):
        enc = tok([e["text"] for e in examples[s:s + CHUNK]], truncation=True, max_length=max_length)
        ids += enc["input_ids"]
    rows = {"example_index": np.arange(len(examples)), "side": [e["side"] for e in examples]}
    return Features.from_rows("retrieval", {"input_ids": ids}, rows,
                              _meta(tok, "retrieval", max_length, None, len(examples)))


# --- masked LM -------------------------------------------------------------------------------
def featurize_mlm(examples, tok, *, max_length, labels=None, progress=True, **_):
    tpl = template(tok)
    block = max_length - tpl.single_specials
    stream = []
    for s in _chunks(len(examples), progress, "lines"):
        enc = tok([e["text"] for e in examples[s:s + CHUNK]], add_special_tokens=False)
        for x in enc["input_ids"]:
            stream += x
    blocks = [tpl.single(stream[i:i + block]) for i in range(0, len(stream), block)]
    blocks = [b for b in blocks if len(b) > tpl.single_specials]
    return Features.from_rows("mlm", {"input_ids": blocks}, {"example_index": np.arange(len(blocks))},
                              _meta(tok, "mlm", max_length, None, len(blocks), num_lines=len(examples)))
