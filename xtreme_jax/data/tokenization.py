"""Tokenizer helpers shared by the featurizers: loading, identity hash, special-token layout,
input prefixes.

This module is below `xtreme_jax.models` (models.hf imports it, never the reverse).
"""
from __future__ import annotations

import hashlib
import json
import os
import weakref

import numpy as np

HF_FILES = ["config.json", "*.safetensors", "*.safetensors.index.json", "pytorch_model.bin",
            "sentencepiece.bpe.model", "tokenizer*", "vocab.txt", "special_tokens_map.json"]


def resolve(name_or_path: str,
            expected: str = "config.json and model.safetensors or pytorch_model.bin") -> str:
    """A local checkpoint directory, or a hub id downloaded (or found in the HF cache)."""
    if os.path.isdir(name_or_path):
        return name_or_path
    if os.path.exists(name_or_path):
        raise FileNotFoundError(f"{name_or_path}: not a checkpoint directory (expected {expected} inside)")
    if _looks_local(name_or_path):  # a misspelled path: say so before any hub talk
        raise FileNotFoundError(f"{name_or_path}: not a checkpoint directory (expected {expected} inside): "
                                f"no such directory{_near_names(name_or_path)}")
    from huggingface_hub import snapshot_download
    try:
        return snapshot_download(name_or_path, allow_patterns=HF_FILES)
    except Exception as e:  # offline, unknown repo, no network
        raise OSError(f"could not fetch {name_or_path!r} from the HF hub ({type(e).__name__}: {e}). "
                      "Offline? Download it once (huggingface-cli download "
                      f"{name_or_path} --local-dir DIR) and pass the directory instead.") from e


def _looks_local(name: str) -> bool:
    """A path rather than a hub id (`owner/name`): absolute, relative, deeper than one slash, or
    inside a directory that exists here (`runs/targt` when runs/ exists)."""
    parent = os.path.dirname(name.rstrip("/"))
    return (name.startswith(("/", ".", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name
            or bool(parent) and os.path.isdir(parent))


def _near_names(name: str) -> str:
    import difflib
    parent, base = os.path.split(name.rstrip("/"))
    if not os.path.isdir(parent or "."):
        return f" ({parent} does not exist either)" if parent else ""
    near = difflib.get_close_matches(base, sorted(os.listdir(parent or ".")), n=3)
    return f" (did you mean {', '.join(os.path.join(parent, n) for n in near)}?)" if near else ""


def _tokenizer_class(path: str):
    """The class tokenizer_config.json names, else the one config.json names (a BERT-layout model
    may carry an XLM-R tokenizer: config.json says so with `tokenizer_class`)."""
    import transformers
    for name in ("tokenizer_config.json", "config.json"):
        try:
            with open(os.path.join(path, name)) as f:
                cls = getattr(transformers, json.load(f).get("tokenizer_class") or "", None)
        except (OSError, ValueError, AttributeError):
            cls = None
        if cls is not None:
            return cls
    return None


def load_tokenizer(name_or_path: str):
    """An HF tokenizer from a checkpoint dir (sentencepiece.bpe.model / tokenizer.json) or hub id."""
    import transformers
    path = resolve(name_or_path, expected="tokenizer.json or sentencepiece.bpe.model, with "
                                          "tokenizer_config.json")
    # The named class directly: AutoTokenizer would also import torch (through AutoConfig),
    # seconds of start-up for every process.
    return (_tokenizer_class(path) or transformers.AutoTokenizer).from_pretrained(path)


_FINGERPRINTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_TEMPLATES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------- input prefixes

class PrefixedTokenizer:
    """`tok` with `prefix` put before every text segment it is called on (e5 was trained with
    "query: " / "passage: " before every input).

    `wrapped(texts, pairs, ...)` gives exactly the tokens of `tok([prefix + t for t in texts],
    [prefix + p for p in pairs], ...)`; offsets are shifted back onto the caller's texts (prefix
    tokens get (0, 0), like special tokens). With pre-split words the prefix's own words come
    first and `word_ids` leaves them out (None), so labels stay on the caller's words. Only
    `__call__` adds the prefix; every other attribute is the wrapped tokenizer's.
    """

    def __init__(self, tok, prefix: str):
        self.tokenizer, self.input_prefix = tok, prefix

    def __getattr__(self, name):
        if name in ("tokenizer", "input_prefix"):  # not set yet (copy, unpickling)
            raise AttributeError(name)
        return getattr(self.tokenizer, name)

    def __len__(self):
        return len(self.tokenizer)

    def __call__(self, text=None, text_pair=None, *, is_split_into_words=False, **kw):
        words = self.input_prefix.split()
        if is_split_into_words:
            single = bool(text) and isinstance(text[0], str)
            add = lambda ws: words + list(ws)  # noqa: E731
        else:
            single = isinstance(text, str)
            add = lambda t: self.input_prefix + t  # noqa: E731

        def prefixed(x):
            return None if x is None else add(x) if single else [add(t) for t in x]

        enc = self.tokenizer(prefixed(text), prefixed(text_pair),
                             is_split_into_words=is_split_into_words, **kw)
        if is_split_into_words:  # the prefix's words are not the caller's: no word id
            word_ids = enc.word_ids
            enc.word_ids = lambda i=0: [None if w is None or w < len(words) else w - len(words)
                                        for w in word_ids(i)]
        if kw.get("return_offsets_mapping") and not is_split_into_words:
            enc["offset_mapping"] = self._shift(enc["offset_mapping"], single)
        return enc

    def _shift(self, offsets, single):
        """Offsets into `prefix + text` -> into `text`; prefix tokens clamp to (0, 0)."""
        n = len(self.input_prefix)
        if isinstance(offsets, np.ndarray):  # return_tensors="np"
            return np.maximum(offsets - n, 0).astype(offsets.dtype)
        if not isinstance(offsets, list):
            raise TypeError("offsets with an input prefix need Python lists or return_tensors='np'")

        def row(r):  # special tokens' (0, 0) stays (0, 0)
            return [(max(a - n, 0), max(b - n, 0)) for a, b in r]

        return row(offsets) if single else [row(r) for r in offsets]


def with_prefix(tok, prefix: str | None):
    """`tok` that tokenizes every text as `prefix + text` (unchanged if prefix is empty)."""
    if not prefix:
        return tok
    if isinstance(tok, PrefixedTokenizer):
        raise ValueError(f"tokenizer already has input prefix {tok.input_prefix!r}; "
                         f"refusing to add {prefix!r} on top")
    return PrefixedTokenizer(tok, prefix)


def _fingerprint(tok) -> str:
    h = hashlib.sha1()
    prefix = tok.input_prefix if isinstance(tok, PrefixedTokenizer) else ""
    if prefix:  # the same tokenizer with another prefix makes other features
        h.update(b"input_prefix:" + prefix.encode())
        tok = tok.tokenizer
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
    """The tokenizer's guess at a sequence's first position id (padding_idx + 1 for RoBERTa/XLM-R
    tokenizers, else 0). Only a fallback for features used without a model: position ids are the
    model's convention (`EncoderConfig.first_position_id`; a BERT-layout model may carry an XLM-R
    tokenizer), which a run stamps into the features' meta (`data.batching.first_position_id`)."""
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
        **({"input_prefix": tok.input_prefix} if isinstance(tok, PrefixedTokenizer) else {}),
    }
