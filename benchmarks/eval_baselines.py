"""The evaluator's batching against what users of the official scripts run, on the full kit data
(../shared/data): Tatoeba (retrieval, 41 languages), UD dev (udpos tagging, the 7 languages of the
kit) and XCOPA test (multiple choice, 11 languages).

    python -m benchmarks.eval_baselines [--layers 2] [--rounds 3] [--out F.json]

Batchings (every row of every language once):
  ours        the evaluator: one stream over all languages sorted by length, batches of
              --batch units padded to the smallest length bucket (data.batching.DEFAULT_BUCKETS);
  ours_16     the same with a 16-token bucket added;
  official    XTREME's scripts: classification / tagging pad every row to max_seq_length 128,
              language by language, batches of --official-batch; retrieval (run_retrieval.py)
              takes each side's sentences in file order in batches of 100, each padded to its
              own longest sentence;
  jiant       jiant: each language cached as its own task and cut to its longest row
              (MaxValidLengthRecorder), batches of --official-batch;
  pad128      every language padded to 128, batches of --official-batch.

Time: the encoder forward at base width (--layers layers) is timed on a grid of batch shapes
(rows x length), both through our jitted encoder and through HF PyTorch
(XLMRobertaModel, sdpa, no_grad), interleaved round by round (medians); a batching's time is
the sum over its batches of the time of its shape (linear interpolation in the length between
grid points; a partial last batch costs rows/B of a full one). Tokens/s = real (non-pad) tokens
/ that time. The heads (a d x n matmul) and the host-side decoding are left out for every
batching alike. Token counts are exact.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import interleave, med
from benchmarks.machine import machine_info, torch_threads_passive, uptime, write_json
from benchmarks.torch_ref import hf_config

KIT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data"))
TASKS = {"tatoeba": ("tatoeba", "test"), "udpos": ("ud", "dev"), "xcopa": ("xcopa", "test")}
GRID = (8, 16, 24, 32, 48, 64, 96, 128)
RETRIEVAL_BATCH = 100   # XTREME's run_retrieval.py batch size


def load_sets(kit: str, vocab: int):
    """{task: [EvalSet]} of every language found in the kit, one sentencepiece model trained
    on all their text (XLM-R format)."""
    from xtreme_jax.data.sources import Source
    from xtreme_jax.data.spm import train_xlmr_tokenizer
    from xtreme_jax.evaluation import load_eval_sets
    from xtreme_jax.tasks import get_task

    found, texts = {}, []
    for name, (sub, split) in TASKS.items():
        task, source = get_task(name), Source("official", os.path.join(kit, sub))
        langs = []
        for lang in task.language_list(source):
            try:
                exs = task.load_examples(split, lang, source)
            except Exception:  # noqa: BLE001 -- the kit holds some languages only
                continue
            langs.append(lang)
            for e in exs:
                texts += [e[k] for k in ("text", "context") if isinstance(e.get(k), str)]
                texts += [" ".join(e["tokens"])] if "tokens" in e else []
                texts += list(e.get("choices") or [])
        found[name] = (task, source, split, langs)
    tok = train_xlmr_tokenizer(texts, tempfile.mkdtemp(prefix="xtj-evb-tok-"), vocab_size=vocab)
    sets = {name: load_eval_sets(task, tok, source, split=split, languages=langs)
            for name, (task, source, split, langs) in found.items()}
    return tok, sets


def _chunks(n: int, b: int):
    return [min(b, n - i) for i in range(0, n, b)]


def batchings(kind: str, sets: list, batch: int, official_batch: int, buckets) -> dict:
    """{batching: [(rows, padded length, real tokens)]} over all languages of one task."""
    from xtreme_jax.data.batching import DEFAULT_BUCKETS, plan_buckets, resolve_buckets
    from xtreme_jax.data.features import concat

    feats = [s.features for s in sets]
    g = feats[0].group
    allf = concat(feats)
    lens = allf.lengths.reshape(-1, g)
    out = {}
    for name, bks in (("ours", DEFAULT_BUCKETS), ("ours_16", (16,) + tuple(DEFAULT_BUCKETS))):
        plan = plan_buckets(allf.unit_lengths, resolve_buckets(allf, bks), batch)
        out[name] = [(batch * g, length, int(lens[units[units >= 0]].sum())) for length, units in plan]
    for name in ("official", "jiant", "pad128"):
        rows = []
        for s, f in zip(sets, feats):
            lengths = f.lengths
            if name == "official" and kind == "retrieval":
                side = np.asarray(f.rows.get("side", np.zeros(len(lengths), np.int64)))
                for sd in np.unique(side):
                    ls = lengths[side == sd]
                    for i in range(0, len(ls), RETRIEVAL_BATCH):
                        part = ls[i:i + RETRIEVAL_BATCH]
                        rows.append((len(part), int(part.max()), int(part.sum())))
                continue
            pad = int(lengths.max()) if name == "jiant" else 128
            units = lengths.reshape(-1, g)
            for i, n in zip(range(0, len(units), official_batch), _chunks(len(units), official_batch)):
                rows.append((n * g, pad, int(units[i:i + n].sum())))
        out[name] = rows
    return out


def summarize_tokens(plans: dict) -> dict:
    return {name: {"batches": len(rows), "real_tokens": sum(r for _, _, r in rows),
                   "processed_tokens": sum(n * length for n, length, _ in rows),
                   "distinct_shapes": len({(n, length) for n, length, _ in rows})}
            for name, rows in plans.items()}


# ============================================================================ timing

class JaxForward:
    def __init__(self, cfg):
        import jax
        from xtreme_jax import sharding, train_step as T
        from xtreme_jax.models.heads import encode
        self.mesh = sharding.make_mesh((-1, 1, 1))
        model = T.create_model(cfg, {}, self.mesh)
        from flax import nnx
        graphdef, state = nnx.split(model)
        self.state = state

        def fwd(state, batch):
            m = nnx.merge(graphdef, state)
            h = encode(m.encoder, batch, None).last_hidden_state
            return h.mean(axis=1)
        self.fn = jax.jit(fwd)
        self.vocab = cfg.vocab_size

    def shape(self, rows: int, length: int):
        import jax
        from xtreme_jax import sharding
        ids = np.random.default_rng(rows * 1000 + length).integers(5, self.vocab, (rows, length)).astype(np.int32)
        b = sharding.device_batch(dict(input_ids=ids, attention_mask=np.ones_like(ids)), self.mesh)
        jax.block_until_ready(self.fn(self.state, b))

        def run():
            t = time.perf_counter()
            jax.block_until_ready(self.fn(self.state, b))
            return time.perf_counter() - t
        return run


class TorchForward:
    def __init__(self, cfg, threads: int):
        import torch
        import transformers
        torch.manual_seed(0)
        torch.set_num_threads(threads)
        self.torch = torch
        hf = hf_config(cfg)
        self.model = transformers.XLMRobertaModel(hf, add_pooling_layer=False).eval()
        self.vocab = cfg.vocab_size

    def shape(self, rows: int, length: int):
        torch = self.torch
        ids = torch.as_tensor(np.random.default_rng(rows * 1000 + length).integers(5, self.vocab, (rows, length)))
        mask = torch.ones_like(ids)

        def run():
            t = time.perf_counter()
            with torch.inference_mode():
                self.model(input_ids=ids, attention_mask=mask).last_hidden_state.mean(1)
            return time.perf_counter() - t
        run()
        return run


def cost(times: dict, rows: int, length: int, full_rows: int) -> float:
    """Time of one batch from the grid of `full_rows`: interpolated in the length, scaled by
    rows / full_rows for a partial batch."""
    grid = sorted(L for (r, L) in times if r == full_rows)
    t = float(np.interp(length, grid, [times[(full_rows, L)] for L in grid]))
    return t * rows / full_rows


def run(args) -> dict:
    from xtreme_jax.models.encoder import preset
    result = {"command": " ".join(["python -m benchmarks.eval_baselines"] + sys.argv[1:]),
              "machine": machine_info(), "kit": args.kit}
    tok, sets = load_sets(args.kit, args.vocab)
    result["tokenizer_pieces"] = len(tok)
    plans, full_rows = {}, {}
    for name, task_sets in sets.items():
        kind = task_sets[0].features.kind
        g = task_sets[0].features.group
        plans[name] = batchings(kind, task_sets, args.batch, args.official_batch, None)
        full_rows[name] = {"ours": args.batch * g, "ours_16": args.batch * g, "jiant": args.official_batch * g,
                           "pad128": args.official_batch * g,
                           "official": RETRIEVAL_BATCH if kind == "retrieval" else args.official_batch * g}
        result[name] = {"kind": kind, "languages": [s.lang for s in task_sets],
                        "rows": int(sum(s.features.num_rows for s in task_sets)),
                        "tokens": summarize_tokens(plans[name])}
    if args.no_time:
        return result
    cfg = preset(args.size, num_layers=args.layers, vocab_size=len(tok), hidden_dropout=0.0,
                 attention_dropout=0.0)
    row_counts = sorted({r for fr in full_rows.values() for r in fr.values()})
    shapes = [(r, L) for r in row_counts for L in GRID]
    jf = JaxForward(cfg)
    contenders = {("jax",) + s: jf.shape(*s) for s in shapes}
    tf = None
    if not args.no_torch:
        tf = TorchForward(cfg, os.cpu_count())
        contenders.update({("torch",) + s: tf.shape(*s) for s in shapes})
    print(f"[eval_baselines] {len(contenders)} shapes compiled; timing {args.rounds} rounds",
          file=sys.stderr, flush=True)
    res = interleave(contenders, args.rounds)
    times = {fw: {s: med(res[(fw,) + s]) for s in shapes} for fw in ("jax", "torch") if (fw,) + shapes[0] in res}
    result["grid_s"] = {fw: {f"{r}x{L}": t for (r, L), t in ts.items()} for fw, ts in times.items()}
    for name, plan in plans.items():
        out = result[name]["throughput"] = {}
        for batching, rows in plan.items():
            fws = ("jax",) if batching.startswith("ours") else tuple(times)
            for fw in fws:
                total = sum(cost(times[fw], n, L, full_rows[name][batching]) for n, L, _ in rows)
                real = sum(r for _, _, r in rows)
                out[f"{batching}/{fw}"] = {"time_s": total, "real_tokens_per_s": real / total}
        for base in ("official", "jiant", "pad128"):
            for fw in times:
                out[f"ours_vs_{base}/{fw}"] = (out["ours/jax"]["real_tokens_per_s"]
                                              / out[f"{base}/{fw}"]["real_tokens_per_s"])
                out[f"ours_16_vs_{base}/{fw}"] = (out["ours_16/jax"]["real_tokens_per_s"]
                                                 / out[f"{base}/{fw}"]["real_tokens_per_s"])
    result["config"] = {"size": args.size, "hidden_size": cfg.hidden_size, "layers": cfg.num_layers,
                        "vocab": cfg.vocab_size, "batch": args.batch, "official_batch": args.official_batch,
                        "retrieval_batch": RETRIEVAL_BATCH, "rounds": args.rounds, "grid": GRID}
    return result


def main(argv=None):
    torch_threads_passive()
    ap = argparse.ArgumentParser(prog="python -m benchmarks.eval_baselines", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kit", default=KIT)
    ap.add_argument("--size", default="base")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=8000, help="sentencepiece pieces trained on the kit text")
    ap.add_argument("--batch", type=int, default=64, help="the evaluator's global batch (units)")
    ap.add_argument("--official-batch", type=int, default=32, help="per-language batch of the baselines")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-time", action="store_true", help="token counts only")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.kit):
        raise SystemExit(f"error: no data kit at {args.kit}; pass --kit DIR (../shared/data beside the checkout)")
    result = run(args)
    result["machine"]["uptime_end"] = uptime()
    if args.out:
        write_json(args.out, result)
    print(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
