"""Tokenizer helpers shared by the featurizers: loading, identity hash, special-token layout."""
from __future__ import annotations

import hashlib
import json
import weakref

import numpy as np


def load_tokenizer(name_or_path: str):
    """An HF tokenizer from a checkpoint dir (sentencepiece.bpe.model / tokenizer.json) or hub id."""
    import os

    import transformers
    from xtreme_jax.models.hf import resolve
    path = resolve(name_or_path, expected="tokenizer.json or sentencepiece.bpe.model, with "
                                          "tokenizer_config.json")
    try:
        with open(os.path.join(path, "tokenizer_config.json")) as f:
            cls = getattr(transformers, json.load(f).get("tokenizer_class") or "", None)
    except (OSError, ValueError):
        cls = None
    # The class named in tokenizer_config.json directly: AutoTokenizer would also import torch
    # (through AutoConfig), seconds of start-up for every process.
    return (cls or transformers.AutoTokenizer).from_pretrained(path)


_FINGERPRINTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_TEMPLATES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _fingerprint(tok) -> str:
    h = hashlib.sha1()
    h.update(type(tok).__name__.encode())
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:  # slow tokenizer: vocabulary and special tokens identify it well enough
        h.update(json.dumps(sorted(tok.get_vocab().items())).encode())
    h.update(json.dumps(sorted(map(str, tok.all_special_tokens))).encode())
    return h.hexdigest()


def tokenizer_fingerprint(tok) -> str:
    """Hash of the tokenizer's full definition (vocab, normalizer, post-processor, specials)."""
    if tok not in _FINGERPRINTS:
        _FINGERPRINTS[tok] = _fingerprint(tok)
    return _FINGERPRINTS[tok]


class Template:
    """Where a tokenizer puts its special tokens around one sequence or a pair.

    Read off the tokenizer's own pair encoding, so XLM-R gives `<s> A </s></s> B </s>` and BERT
    `[CLS] A [SEP] B [SEP]` without hard-coding either. Used to build QA windows and tagging
    windows from already tokenized pieces.
    """

    def __init__(self, tok):
        enc = tok(["a"], ["b"], add_special_tokens=True)
        ids, seq = enc["input_ids"][0], enc.sequence_ids(0)
        tt = enc["token_type_ids"][0] if "token_type_ids" in enc else [0] * len(ids)
        first = [i for i, s in enumerate(seq) if s == 0]
        second = [i for i, s in enumerate(seq) if s == 1]
        self.pair_prefix = ids[:first[0]]
        self.pair_middle = ids[first[-1] + 1:second[0]]
        self.pair_suffix = ids[second[-1] + 1:]
        self.type_a, self.type_b = tt[first[0]], tt[second[0]]
        self.pair_prefix_types = tt[:first[0]]
        self.pair_middle_types = tt[first[-1] + 1:second[0]]
        self.pair_suffix_types = tt[second[-1] + 1:]
        enc = tok(["a"], add_special_tokens=True)
        ids, seq = enc["input_ids"][0], enc.sequence_ids(0)
        first = [i for i, s in enumerate(seq) if s == 0]
        self.single_prefix = ids[:first[0]]
        self.single_suffix = ids[first[-1] + 1:]
        self.uses_token_types = "token_type_ids" in tok.model_input_names

    @property
    def pair_specials(self) -> int:
        return len(self.pair_prefix) + len(self.pair_middle) + len(self.pair_suffix)

    @property
    def single_specials(self) -> int:
        return len(self.single_prefix) + len(self.single_suffix)

    def single(self, ids):
        return list(self.single_prefix) + list(ids) + list(self.single_suffix)

    def pair(self, a, b):
        """(input_ids, token_type_ids, offset of b's first token) as int32 arrays."""
        ids = np.concatenate([self.pair_prefix, a, self.pair_middle, b, self.pair_suffix]).astype(np.int32)
        types = np.concatenate([self.pair_prefix_types, np.full(len(a), self.type_a), self.pair_middle_types,
                                np.full(len(b), self.type_b), self.pair_suffix_types]).astype(np.int32)
        return ids, types, len(self.pair_prefix) + len(a) + len(self.pair_middle)


def template(tok) -> Template:
    if tok not in _TEMPLATES:
        _TEMPLATES[tok] = Template(tok)
    return _TEMPLATES[tok]


def position_offset(tok) -> int:
    """First position id of a sequence: padding_idx + 1 for RoBERTa/XLM-R, 0 for BERT-style."""
    name = type(tok).__name__.lower()
    if "roberta" in name or "camembert" in name:
        return int(tok.pad_token_id) + 1
    return 0


def tokenizer_meta(tok) -> dict:
    """What the batcher needs to know about the tokenizer, stored with the features."""
    return {
        "pad_id": int(tok.pad_token_id),
        "mask_id": int(tok.mask_token_id) if tok.mask_token_id is not None else -1,
        "special_ids": sorted(int(i) for i in tok.all_special_ids),
        "vocab_size": int(len(tok)),
        "position_offset": position_offset(tok),
        "uses_token_types": "token_type_ids" in tok.model_input_names,
        "tokenizer": str(getattr(tok, "name_or_path", "")),
        "tokenizer_hash": tokenizer_fingerprint(tok),
    }
