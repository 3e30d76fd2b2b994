"""Padding efficiency on real length distributions (the data kit), for docs/data.md.

    python -m benchmarks.padding_report --data_dir ../shared/data [--tokenizer DIR]

Without --tokenizer, a sentencepiece model (XLM-R format) is trained on the kit's own text with
xtreme_jax.data.spm. Prints a Markdown table and writes JSON with --json_out. Efficiency is real
tokens / processed tokens for one training epoch at the given global batch size, padding units
included: pad-to-max (every batch at max_length), length buckets, and packing where the task
kind supports it (classification, tagging).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import random
import tempfile

from xtreme_jax.data.batching import DEFAULT_BUCKETS, packable, padding_efficiency
from xtreme_jax.data.sources import Source
from xtreme_jax.tasks import get_task


def corpus(data_dir: str, per_file: int = 400, seed: int = 0) -> list:
    rng = random.Random(seed)
    texts = []
    for path in sorted(glob.glob(os.path.join(data_dir, "xquad", "*.json"))):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        paras = [p for a in data["data"] for p in a["paragraphs"]]
        texts += [p["context"] for p in rng.sample(paras, min(60, len(paras)))]
        texts += [qa["question"] for p in paras for qa in p["qas"]][:per_file]
    for path in sorted(glob.glob(os.path.join(data_dir, "ud", "*.conllu"))):
        with open(path, encoding="utf-8") as f:
            texts += [l[9:].strip() for l in f if l.startswith("# text = ")][:per_file]
    for path in sorted(glob.glob(os.path.join(data_dir, "tatoeba", "tatoeba.*"))):
        with open(path, encoding="utf-8") as f:
            texts += [l.strip() for l in f][:per_file // 4]
    return [t for t in texts if t]


def measure(data_dir: str, tok, batch_size: int = 32) -> list:
    rows = []

    def add(name, task, examples, max_length, buckets=DEFAULT_BUCKETS, **opts):
        f = task.featurize(examples, tok, max_length, progress=False, **opts)
        eff = padding_efficiency(f, batch_size, buckets, pack_length=max_length if packable(f) else None)
        lens = f.lengths
        rows.append({"data": name, "kind": f.kind, "rows": f.num_rows, "max_length": max_length,
                     "mean_len": round(float(lens.mean()), 1), "p95_len": int(sorted(lens)[int(0.95 * (len(lens) - 1))]),
                     **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in eff.items()}})

    ud, ud_src = get_task("udpos"), Source("official", os.path.join(data_dir, "ud"))
    add("UD English GUM train (udpos)", ud, ud.load_examples("train", "en", ud_src), 128)
    dev = [e for lang in ("en", "de", "ja", "zh", "fi", "ur", "mr") for e in ud.load_examples("dev", lang, ud_src)]
    add("UD dev, 7 languages (udpos)", ud, dev, 128)

    tat, tat_src = get_task("tatoeba"), Source("official", os.path.join(data_dir, "tatoeba"))
    sents, pairs = [], []
    for lang in tat.languages:
        ex = tat.load_examples("test", lang, tat_src)
        sents += ex
        src = [e for e in ex if e["side"] == 0]
        tgt = [e for e in ex if e["side"] == 1]
        pairs += [{"id": s["id"], "text_a": s["text"], "text_b": t["text"], "label": "entailment"}
                  for s, t in zip(src, tgt)]
    single = [{"id": e["id"], "text_a": e["text"], "text_b": None, "label": "positive"} for e in sents]
    add("Tatoeba sentences, 41 languages (single sentence, as sst2)", get_task("sst2"), single, 128)
    add("Tatoeba xx/en pairs (sentence pair, as xnli)", get_task("xnli"), pairs, 128)

    xq, xq_src = get_task("xquad"), Source("official", os.path.join(data_dir, "xquad"))
    qa = [e for lang in xq.languages for e in xq.load_examples("test", lang, xq_src)]
    add("XQuAD, 12 languages (QA windows 384/128/64)", xq, qa, 384, buckets=(128, 256))

    xc, xc_src = get_task("xcopa"), Source("official", os.path.join(data_dir, "xcopa"))
    mc = [e for lang in xc.languages for e in xc.load_examples("test", lang, xc_src)]
    add("XCOPA test, 11 languages (2 choices)", xc, mc, 128)
    return rows


def markdown(rows) -> str:
    head = ("| data | kind | rows | mean / p95 tokens | pad-to-max | buckets | packing |\n"
            "|---|---|---|---|---|---|---|\n")
    body = ""
    for r in rows:
        pack = f"{r['packing']:.1%} ({r['mean_segments_per_row']:.1f}/row at {r['pack_length']})" \
            if "packing" in r else "n/a"
        body += (f"| {r['data']} | {r['kind']} | {r['rows']} | {r['mean_len']} / {r['p95_len']} | "
                 f"{r['pad_to_max']:.1%} (S={r['max_length']}) | {r['buckets']:.1%} "
                 f"({'/'.join(map(str, r['bucket_lengths']))}) | {pack} |\n")
    return head + body


def main(argv=None):
    from xtreme_jax.data.tokenization import load_tokenizer
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True, help="the data kit (shared/data)")
    p.add_argument("--tokenizer", default=None, help="tokenizer dir; default: train one on the kit")
    p.add_argument("--vocab_size", type=int, default=16000)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--json_out", default=None)
    a = p.parse_args(argv)
    tok_dir = a.tokenizer
    if tok_dir is None:
        from xtreme_jax.data.spm import train_xlmr_tokenizer
        tok_dir = tempfile.mkdtemp(prefix="padding-report-tok-")
        train_xlmr_tokenizer(corpus(a.data_dir), tok_dir, vocab_size=a.vocab_size)
    rows = measure(a.data_dir, load_tokenizer(tok_dir), a.batch_size)
    print(markdown(rows))
    if a.json_out:
        with open(a.json_out, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
