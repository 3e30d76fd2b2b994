"""Statistics of one data split, as JSON.

    python -m xtreme_jax.data.inspect --task udpos --data_dir ../shared/data/ud --lang de \\
        --split dev --tokenizer xlm-roberta-base

Prints: number of examples and feature rows, label counts, token-length percentiles
(50/90/95/99/max) and padding efficiency (real tokens / processed tokens) under pad-to-max,
the configured length buckets and, for classification and tagging, packing.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys

import numpy as np

from xtreme_jax.data.batching import padding_efficiency
from xtreme_jax.data.errors import DataError, OnError
from xtreme_jax.data.sources import Source
from xtreme_jax.data.tokenization import load_tokenizer
from xtreme_jax.tasks import get_task


def label_counts(task, examples) -> dict:
    c = collections.Counter()
    for e in examples:
        c.update(task.family.label_key(e))
    return dict(sorted(c.items(), key=lambda kv: -kv[1]))


def stats(task, examples, features, batch_size, buckets, pack_length=None, max_segments=None) -> dict:
    lens = features.lengths
    pct = {f"p{q}": int(np.percentile(lens, q)) for q in (50, 90, 95, 99)} if len(lens) else {}
    pct["max"] = int(lens.max()) if len(lens) else 0
    pct["mean"] = round(float(lens.mean()), 2) if len(lens) else 0.0
    eff = padding_efficiency(features, batch_size, buckets, pack_length, max_segments)
    return {"task": task.name, "kind": task.kind, "split": features.meta.get("split"),
            "lang": features.meta.get("lang"), "examples": len(examples), "rows": features.num_rows,
            "max_length": features.max_length, "label_counts": label_counts(task, examples),
            "token_length": pct, "batch_size": batch_size,
            "padding_efficiency": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in eff.items()},
            "split_sentences": features.meta.get("split_sentences"),
            "skipped": features.meta.get("skipped")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True)
    p.add_argument("--data_dir", default="", help="data directory (official/local) or hub id (hub)")
    p.add_argument("--lang", default=None)
    p.add_argument("--split", default=None, help="default: dev (or the task's first split)")
    p.add_argument("--source", default="official", choices=["official", "local", "hub", "tfds"])
    p.add_argument("--config", default="", help="hub/tfds config name override")
    p.add_argument("--tokenizer", required=True, help="tokenizer dir or hub id")
    p.add_argument("--max_length", type=int, default=None)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--buckets", default="32,64,128,256")
    p.add_argument("--pack_length", type=int, default=None)
    p.add_argument("--skip_bad", action="store_true", help="skip and count bad records")
    a = p.parse_args(argv)
    try:
        task = get_task(a.task)
        src = Source(type=a.source, path=a.data_dir, config=a.config)
        split = a.split or ("dev" if "dev" in task.splits else task.splits[0])
        lang = a.lang or task.language_list(src)[0]
        labels = task.label_list(src) if (task.labels is not None or task.label_source) else None
        policy = OnError(skip=a.skip_bad)
        examples = task.load_examples(split, lang, src, errors=policy)
        tok = load_tokenizer(a.tokenizer)
        feats = task.featurize(examples, tok, a.max_length, labels=labels, lang=lang, split=split)
        feats.meta["skipped"] = policy.summary()
        buckets = tuple(int(x) for x in a.buckets.split(",") if x.strip())
        out = stats(task, examples, feats, a.batch_size, buckets, a.pack_length)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
