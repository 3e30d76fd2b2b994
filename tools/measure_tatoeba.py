"""Tatoeba retrieval with a pretrained encoder and no fine-tuning (XTREME's encoder-only baseline).

    python -m tools.measure_tatoeba --checkpoint e5 [--langs all] [--max_pairs 1000] \
        [--data_dir ../shared/data/tatoeba] [--prefix "query: "] [--pooling mean] [--out FILE]

Each non-English sentence is matched to its nearest English sentence by the cosine similarity of
pooled hidden states; the score is top-1 accuracy (xx -> en, as XTREME scores Tatoeba). Every
layer is scored from the same forward pass (hidden state 0 = embeddings output). `--checkpoint`
takes an HF directory, or `e5` / `minilm` for the real encoders of `tools.convert_e5` (e5 gets
its "query: " prefix by default, as its model card prescribes for bitext mining).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "tatoeba")


def read_pairs(data_dir: str, lang: str, max_pairs: int | None = None):
    """(xx sentences, their English translations) from LASER's tatoeba.{xxx}-eng.{xxx|eng}."""
    from xtreme_jax.tasks.languages import TATOEBA_ISO3
    iso3 = TATOEBA_ISO3[lang]
    sides = []
    for side in (iso3, "eng"):
        with open(os.path.join(data_dir, f"tatoeba.{iso3}-eng.{side}"), encoding="utf-8") as f:
            sides.append([line.rstrip("\n") for line in f][:max_pairs])
    if len(sides[0]) != len(sides[1]):
        raise ValueError(f"{data_dir}: tatoeba.{iso3}-eng has {len(sides[0])} {iso3} lines but "
                         f"{len(sides[1])} English lines")
    return sides[0], sides[1]


class Pooler:
    """Pooled hidden states of every layer: `pooler(tok, texts)` -> [layers + 1, N, hidden] fp32.

    Texts are sorted by length and padded to a multiple of `pad_to` with a fixed batch size, so a
    few shapes compile once per encoder; mean pooling averages the real tokens (specials included, as
    e5 and XTREME do), cls takes the first token.
    """

    def __init__(self, encoder, pooling: str = "mean", batch_size: int = 64, max_length: int = 128,
                 pad_to: int = 16):
        import jax
        import jax.numpy as jnp
        from flax import nnx
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling {pooling!r}: choose mean or cls")
        self.batch_size, self.max_length, self.pad_to = batch_size, max_length, pad_to
        graphdef, self.state = nnx.split(encoder)

        @jax.jit
        def forward(state, ids, mask):
            out = nnx.merge(graphdef, state)(ids, mask, output_hidden_states=True)
            h = jnp.stack(out.hidden_states).astype(jnp.float32)      # [L+1, B, S, d]
            if pooling == "cls":
                return h[:, :, 0]
            m = mask[None, :, :, None].astype(jnp.float32)
            return (h * m).sum(2) / jnp.maximum(m.sum(2), 1.0)

        self.forward = forward

    def __call__(self, tok, texts):
        ids = tok(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        order = np.argsort([len(x) for x in ids], kind="stable")
        pad, bs, out = int(tok.pad_token_id), self.batch_size, None
        for s in range(0, len(ids), bs):
            rows = order[s:s + bs]
            width = min(-(-max(len(ids[i]) for i in rows) // self.pad_to) * self.pad_to, self.max_length)
            batch = np.full((bs, width), pad, np.int32)
            mask = np.zeros((bs, width), np.int32)
            for j, i in enumerate(rows):
                batch[j, :len(ids[i])], mask[j, :len(ids[i])] = ids[i], 1
            pooled = np.asarray(self.forward(self.state, batch, mask))
            if out is None:
                out = np.zeros((pooled.shape[0], len(ids), pooled.shape[-1]), np.float32)
            out[:, rows] = pooled[:, :len(rows)]
        return out


def top1(src, tgt) -> float:
    """Share of src rows whose most cosine-similar tgt row is their own translation."""
    src = src / np.linalg.norm(src, axis=-1, keepdims=True)
    tgt = tgt / np.linalg.norm(tgt, axis=-1, keepdims=True)
    return float(np.mean(np.argmax(src @ tgt.T, axis=1) == np.arange(len(src))))


def resolve_checkpoint(name: str, prefix: str | None):
    """(HF directory, input prefix) for a directory or the `e5` / `minilm` aliases."""
    if name in ("e5", "minilm"):
        from tools import convert_e5
        if name == "e5":
            return convert_e5.convert_e5(), "query: " if prefix is None else prefix
        return convert_e5.minilm_dir(), prefix or ""
    return name, prefix or ""


def measure(checkpoint: str, data_dir: str, langs, *, max_pairs=None, prefix=None, pooling="mean",
            batch_size=64, log=print):
    from xtreme_jax.data.tokenization import load_tokenizer, with_prefix
    from xtreme_jax.models import from_pretrained
    path, prefix = resolve_checkpoint(checkpoint, prefix)
    pool = Pooler(from_pretrained(path), pooling, batch_size)
    tok = with_prefix(load_tokenizer(path), prefix)
    per_lang = {}
    for lang in langs:
        t0 = time.time()
        xx, en = read_pairs(data_dir, lang, max_pairs)
        a, b = pool(tok, xx), pool(tok, en)
        per_lang[lang] = {"pairs": len(xx), "top1_by_layer": [top1(a[i], b[i]) for i in range(len(a))]}
        log(f"{lang}: {len(xx)} pairs, last layer {per_lang[lang]['top1_by_layer'][-1]:.3f} "
            f"({time.time() - t0:.0f}s)")
    layers = len(next(iter(per_lang.values()))["top1_by_layer"])
    mean = [float(np.mean([r["top1_by_layer"][i] for r in per_lang.values()])) for i in range(layers)]
    return {"checkpoint": os.path.abspath(path), "prefix": prefix, "pooling": pooling,
            "max_pairs": max_pairs, "direction": "xx->en", "mean_top1_by_layer": mean,
            "per_language": per_lang}


def main(argv=None) -> int:
    from xtreme_jax.tasks.languages import TATOEBA_ISO3, XTREME_R
    ap = argparse.ArgumentParser(prog="python -m tools.measure_tatoeba", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="e5", help="HF directory, or e5 / minilm")
    ap.add_argument("--data_dir", default=os.path.normpath(DEFAULT_DATA))
    ap.add_argument("--langs", default="all", help="comma-separated ISO 639-1 codes, or all (41)")
    ap.add_argument("--max_pairs", type=int, default=None, help="first N pairs per language")
    ap.add_argument("--prefix", default=None, help="input prefix (default: 'query: ' for e5, none otherwise)")
    ap.add_argument("--pooling", choices=("mean", "cls"), default="mean")
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--out", help="write the JSON result here")
    a = ap.parse_args(argv)
    langs = XTREME_R["tatoeba"] if a.langs == "all" else a.langs.split(",")
    unknown = [x for x in langs if x not in TATOEBA_ISO3]
    if unknown:
        print(f"error: --langs: no Tatoeba set for {','.join(unknown)}; known: "
              f"{','.join(sorted(TATOEBA_ISO3))}", file=sys.stderr)
        return 2
    try:
        res = measure(a.checkpoint, a.data_dir, langs, max_pairs=a.max_pairs, prefix=a.prefix,
                      pooling=a.pooling, batch_size=a.batch_size, log=lambda m: print(m, file=sys.stderr))
    except (ImportError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(res, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    means = res["mean_top1_by_layer"]
    last, best = len(means) - 1, int(np.argmax(means))
    print(f"mean top-1 over {len(langs)} languages by layer (0 = embeddings): "
          + " ".join(f"{i}:{m:.4f}" for i, m in enumerate(means)))
    cols = [last] if best == last else [last, best]
    print("| lang | pairs | " + " | ".join(f"top-1, layer {c}" for c in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for lang, r in res["per_language"].items():
        print(f"| {lang} | {r['pairs']} | " + " | ".join(f"{r['top1_by_layer'][c]:.3f}" for c in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
