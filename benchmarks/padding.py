"""Part `padding`: pad-to-max vs length buckets vs packing through our step, and the same
examples batched the PyTorch ways through HF's model; an epoch's useful tokens/s of each."""
from __future__ import annotations

import os

import numpy as np

from benchmarks.common import JaxTrainer, cfg_dict, interleave, med, model_config
from benchmarks.synthetic import LENGTH_MODELS, padded_batch, sample_lengths, synthetic_features
from benchmarks.torch_ref import TorchTrainer

PAD_MODES = {"pad_to_max": dict(buckets=None), "buckets": {}, "packing": dict(packing=True)}
# Packing with as many examples per optimizer step as the PyTorch batch (rows per step chosen
# from the packing plan): the comparison at equal examples per step, as a user tuning the batch
# size in examples would run it. Not in the default run (one more compiled shape).
OPTIONAL_PAD_MODES = {"packing_matched": dict(packing=True, match_examples=True)}

# How the PyTorch path batches the same data: the XTREME scripts pad every example to
# max_seq_length; HF's DataCollatorWithPadding pads each shuffled batch to its longest example;
# the HF Trainer with group_by_length=True sorts mega-batches of 50 batches by length first.
TORCH_PAD_MODES = ("pad_to_max", "longest_in_batch", "group_by_length")


def torch_batches(mode: str, lengths, batch_size: int, max_length: int, seed: int = 0) -> list:
    """(padded length, example indices) of every batch of one epoch, formed as the PyTorch path
    forms them (drop_last=False, the HF default)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    if mode == "group_by_length":
        from transformers.trainer_pt_utils import get_length_grouped_indices
        order = np.asarray(get_length_grouped_indices([int(n) for n in lengths], batch_size, generator=g))
    else:
        order = torch.randperm(len(lengths), generator=g).numpy()
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [(max_length if mode == "pad_to_max" else int(lengths[idx].max()), idx) for idx in batches]


def quantile_batches(batches: list, k: int) -> list:
    """k batches at evenly spaced quantiles of the padded length: in eager PyTorch a step's cost
    depends on the batch's shape only, so their mean step time x the batch count estimates the
    epoch (a midpoint sum over the sorted lengths)."""
    ranked = sorted(batches, key=lambda b: b[0])
    return [ranked[int((i + 0.5) * len(ranked) / k)] for i in range(min(k, len(ranked)))]


def matched_pack_rows(f, batch_size: int, pack_length: int) -> int:
    """Rows per packed step whose epoch has the number of examples per optimizer step nearest
    to `batch_size` (the examples per step of a padded batch)."""
    from xtreme_jax.data.input_pipeline import TrainPlan
    n_rows = len(TrainPlan(f, 1, seed=0, packing=True, pack_length=pack_length).rows)
    n = f.num_units
    return min(range(1, batch_size + 1), key=lambda g: (abs(n / -(-n_rows // g) - batch_size), g))


def csv_choices(value: str, allowed) -> list:
    names = [x for x in value.split(",") if x]
    bad = [x for x in names if x not in allowed]
    if bad:
        raise SystemExit(f"error: unknown choice(s) {bad}; choose from {','.join(allowed)}")
    return names


def bench_padding(args, trainer=None) -> dict:
    import grain
    from xtreme_jax.data.batching import DEFAULT_BUCKETS
    from xtreme_jax.data.input_pipeline import make_train_dataset

    cfg = model_config(args, layers=args.padding_layers or args.layers)
    B, S = args.batch, args.seq
    dists = csv_choices(getattr(args, "padding_dists", "xnli,panx"), ("xnli", "panx"))
    modes = {m: {**PAD_MODES, **OPTIONAL_PAD_MODES}[m] for m in
             csv_choices(getattr(args, "padding_modes", ",".join(PAD_MODES)), list(PAD_MODES) + list(OPTIONAL_PAD_MODES))}
    torch_modes = csv_choices(getattr(args, "padding_torch_modes", ",".join(TORCH_PAD_MODES)), TORCH_PAD_MODES)
    heads = {"xnli": ("classification", 3), "panx": ("tagging", 7)}
    # rows: both sides update the word embedding lazily (ours: embedding_update=rows; PyTorch: a
    # sparse gradient and SparseAdam), so the comparison stays like for like
    rows = getattr(args, "embedding_update", "dense") == "rows"
    trainer = trainer or JaxTrainer(cfg, {d: heads[d] for d in dists}, rows=rows)
    out = {"config": cfg_dict(cfg), "batch": B, "max_length": S, "buckets": list(DEFAULT_BUCKETS),
           "length_models": LENGTH_MODELS, "rounds": args.rounds,
           "embedding_update": "rows (ours) / SparseAdam (PyTorch)" if rows else "dense AdamW (both)"}
    with_torch = not args.no_torch and bool(torch_modes)
    for dist, kind, head, nl in (("xnli", "classification", "xnli", 3), ("panx", "tagging", "panx", 7)):
        if dist not in dists:
            continue
        lengths = sample_lengths(dist, args.padding_examples, S, seed=2)
        f = synthetic_features(kind, lengths, cfg.vocab_size, S, num_labels=nl, seed=3)
        plans, shapes, rows_per_step = {}, {}, {}
        for mode, kw in modes.items():
            rows_per_step[mode] = matched_pack_rows(f, B, S) if kw.get("match_examples") else B
            ds = make_train_dataset(f, global_batch_size=rows_per_step[mode], seed=0, num_threads=1,
                                    shard_options=grain.sharding.ShardOptions(0, 1),
                                    buckets=kw.get("buckets", DEFAULT_BUCKETS), packing=kw.get("packing", False))
            plan = ds.plan.epoch(0)
            counts = {}
            for length, _ in plan:
                counts[length] = counts.get(length, 0) + 1
            plans[mode] = counts
            it = iter(ds)
            while len([k for k in shapes if k[0] == mode]) < len(counts):   # one real batch per shape
                batch = next(it)
                key = (mode, batch["input_ids"].shape[-1])
                if key not in shapes:
                    shapes[key] = trainer.put({k: v for k, v in batch.items() if not k.startswith("meta_")})
        for key, dev in shapes.items():          # compile every shape before timing
            trainer.timed(head, dev, 1)
        contenders = {key: (lambda d=dev: trainer.timed(head, d, 1)) for key, dev in shapes.items()}
        torch_plans = {}
        if with_torch:   # the same examples batched the PyTorch way, through HF's model of the same config
            try:
                tt = TorchTrainer(cfg, nl, None, args.threads or os.cpu_count(), attn=args.torch_attn, kind=kind,
                                  fused=not args.torch_unfused, sparse_embedding=rows)
                out.setdefault("torch_adamw", tt.adamw)
            except ImportError as e:
                out["torch"], with_torch = {"skipped": f"PyTorch / transformers not importable: {e}"}, False
        if with_torch:
            for mode in torch_modes:
                batches = torch_batches(mode, lengths, B, S, seed=0)
                picks = quantile_batches(batches, args.padding_torch_samples)
                torch_plans[mode] = (len(batches), sum(length * len(idx) for length, idx in batches),
                                     [length for length, _ in picks])
                for length, idx in picks:
                    if ("torch", length) not in contenders:
                        tb = tt.put(padded_batch(lengths[idx], length, cfg.vocab_size, nl, kind=kind))
                        tt.timed(1, tb)
                        contenders[("torch", length)] = lambda tb=tb: tt.timed(1, tb)
        times = interleave(contenders, args.rounds)
        real = int(lengths.sum())
        res = {"examples": len(lengths), "mean_length": float(lengths.mean()),
               "p50_length": float(np.percentile(lengths, 50)), "p95_length": float(np.percentile(lengths, 95)),
               "real_tokens_per_epoch": real}

        def summary(n_batches, processed, epoch_s, **extra):
            return {"batches_per_epoch": int(n_batches), **extra, "efficiency": real / processed,
                    "epoch_s": epoch_s, "useful_tokens_per_s": real / epoch_s,
                    "processed_tokens_per_s": processed / epoch_s}
        for mode, counts in plans.items():
            t_shape = {length: med(times[(mode, length)]) for length in counts}
            g = rows_per_step[mode]
            res[mode] = summary(sum(counts.values()), sum(n * g * length for length, n in counts.items()),
                                sum(n * t_shape[length] for length, n in counts.items()),
                                shapes={str(k): int(v) for k, v in sorted(counts.items())},
                                step_s_per_shape={str(k): v for k, v in sorted(t_shape.items())},
                                rows_per_step=g, examples_per_step=len(lengths) / sum(counts.values()))
        if "pad_to_max" in plans:
            base = res["pad_to_max"]["useful_tokens_per_s"]
            for mode in plans:
                res[mode]["useful_speedup_vs_pad_to_max"] = res[mode]["useful_tokens_per_s"] / base
        for mode, (n_batches, processed, sampled) in torch_plans.items():
            t = {length: med(times[("torch", length)]) for length in sampled}
            res[f"torch_{mode}"] = summary(n_batches, processed, n_batches * float(np.mean([t[x] for x in sampled])),
                                           examples_per_step=len(lengths) / n_batches,
                                           sampled_padded_lengths=sampled,
                                           step_s_per_sampled_length={str(k): v for k, v in sorted(t.items())})
        if torch_plans:   # our trainer's modes against each way of running the PyTorch path
            res["ours_vs_torch_useful_tokens_per_s"] = {
                ours: {theirs: res[ours]["useful_tokens_per_s"] / res[f"torch_{theirs}"]["useful_tokens_per_s"]
                       for theirs in torch_plans} for ours in plans}
        out[dist] = res
    return out
