"""Benchmarks (issue 6): train-step speed against HF PyTorch, padding, evaluation, compilation,
host overhead and per-device memory of sharded XLM-R. Writes JSON.

    python -m benchmarks.bench [--what step,padding,eval,compile,host,memory] [--size base]
                               [--layers N] [--vocab V] [--batch B] [--seq S] [--dtype float32]
                               [--no-torch] [--rounds R] [--out FILE.json]

Parts (`--what`, comma-separated; default `step,padding,eval,compile,host`):

  step     jitted, donated train step (AdamW + clip) against HF transformers' PyTorch
           `XLMRobertaForSequenceClassification` with the same config, batch and data, AdamW +
           clipping, the same number of threads. tokens/s, useful (non-pad) tokens/s, MFU =
           analytic FLOPs (6 N_nonembedding + 12 L S d per token, embedding gather excluded)
           against the peak: on CPU the faster of XLA's and PyTorch's fp32 matmuls measured in
           the same run, interleaved with the steps (XLA's alone without PyTorch); on GPU/TPU the
           bf16 dense peak of the chip (xtreme_jax.metrics.PEAK_FLOPS), with the measured matmul
           peak given too.
  padding  pad-to-max vs length buckets vs packing on sampled XNLI-like pair and PAN-X-like
           sentence lengths: the step is run on real batches of each mode (one per shape), and
           an epoch's useful tokens/s is computed from the epoch plan's shape counts. The same
           examples batched the PyTorch way (pad to max_seq_length as the XTREME scripts, pad
           to the longest in each batch as HF's collator, HF's group_by_length) through HF's
           model of the same config: our modes against each, in useful tokens/s.
  eval     the vectorized multi-language evaluator against the per-language loop
           (benchmarks/eval_bench.py, on the real Tatoeba kit when present;
           --eval-task and --eval-data for another task).
  compile  compiled shapes per phase over realistic bucketed streams, recompiles after warm-up,
           first-step latency with a cold and a warm persistent compilation cache (two
           subprocesses sharing a fresh `jax_compilation_cache_dir`).
  host     host overhead per step = wall time of the real loop (grain iterator -> device_batch
           -> step, metrics fetched every K steps) minus device time (the same step on a
           pre-placed batch, N steps dispatched back to back, one block at the end).
  memory   per-device memory (`jit(...).lower(...).compile().memory_analysis()`) of the train
           step for XLM-R base and large across mesh shapes on 8 fake CPU devices (abstract
           inputs from `create_state(abstract_only=True)`), and which TPU generation each fits.

All speed comparisons interleave the contenders round by round inside one process and report
medians (and medians of per-round ratios), so a machine shared with other work still gives
fair ratios; absolute numbers then depend on the load (`load_average` is recorded).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.eval_bench import benchmark_vs_naive
from benchmarks.machine import uptime
from xtreme_jax import metrics
from xtreme_jax.metrics import flops_per_token

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # children run -m benchmarks.bench
WHAT_DEFAULT = "step,padding,eval,compile,host"
TPU_HBM_GIB = {"v4": 32, "v5e": 16, "v5p": 95, "v6e": 32}

# ============================================================================ length models

# Token-length models (XLM-R sentencepiece tokens, specials included), sampled per example.
# XNLI / MNLI pairs: "<s> premise </s></s> hypothesis </s>"; premise and hypothesis are
# log-normal with medians 24 and 12 tokens, which gives the ~45-token mean of XNLI pairs
# (DESIGN §5: XNLI/PAWS-X pairs average ~40-75 tokens, PAN-X ~20) and a tail past 128 that is
# truncated, as the XTREME scripts do at max_seq_length 128. PAN-X: one Wikipedia sentence
# fragment, median 16 tokens.
LENGTH_MODELS = {
    "xnli": dict(specials=4, parts=((24.0, 0.50), (12.0, 0.45))),
    "panx": dict(specials=2, parts=((16.0, 0.55),)),
}


def sample_lengths(name: str, n: int, max_length: int = 128, seed: int = 0) -> np.ndarray:
    m = LENGTH_MODELS[name]
    rng = np.random.default_rng(seed)
    total = np.full(n, m["specials"], np.float64)
    for median, sigma in m["parts"]:
        total += np.maximum(1.0, np.round(rng.lognormal(math.log(median), sigma, n)))
    return np.minimum(total, max_length).astype(np.int64)


def synthetic_features(kind: str, lengths, vocab_size: int, max_length: int, *, num_labels: int = 3,
                       seed: int = 0, lang: str = "en"):
    """Features (the batcher's input) with random token ids of the given lengths."""
    from xtreme_jax.data.features import Features
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths, np.int64)
    splits = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=splits[1:])
    ids = rng.integers(5, vocab_size, int(splits[-1])).astype(np.int32)
    ids[splits[:-1]] = 0                # <s>
    ids[splits[1:] - 1] = 2             # </s>
    tokens = {"input_ids": ids}
    rows = {"example_index": np.arange(len(lengths), dtype=np.int32)}
    if kind == "classification":
        rows["labels"] = rng.integers(0, num_labels, len(lengths)).astype(np.int32)
    elif kind == "tagging":
        labels = rng.integers(0, num_labels, int(splits[-1])).astype(np.int32)
        labels[rng.random(len(labels)) < 0.3] = -100    # non-first sub-tokens
        labels[splits[:-1]] = -100
        labels[splits[1:] - 1] = -100
        tokens["labels"] = labels
    elif kind == "mlm":
        pass
    meta = {"pad_id": 1, "mask_id": 4, "special_ids": [0, 1, 2, 3, 4], "vocab_size": int(vocab_size),
            "position_offset": 2, "max_length": int(max_length), "num_examples": int(len(lengths)),
            "lang": lang, "labels": [str(i) for i in range(num_labels)]}
    return Features(kind, splits, tokens, rows, meta)


# ============================================================================ helpers

def load_average():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def interleave(contenders: dict, rounds: int, cpu_seconds: dict | None = None) -> dict:
    """Calls each contender once per round, order reversed every other round; returns lists of
    what they return. With `cpu_seconds` (a dict), also records each call's process CPU time:
    on a machine shared with other work, CPU time counts the work done and not the waiting."""
    names = list(contenders)
    out = {n: [] for n in names}
    for r in range(rounds):
        for n in (names if r % 2 == 0 else names[::-1]):
            c = time.process_time()
            out[n].append(contenders[n]())
            if cpu_seconds is not None:
                cpu_seconds.setdefault(n, []).append(time.process_time() - c)
    return out


def med(xs):
    return float(statistics.median(xs)) if len(xs) else float("nan")


def backend():
    import jax
    return jax.default_backend()


def device_info() -> dict:
    """The machine (benchmarks.machine: CPU model and flags, XLA_FLAGS, versions, `uptime`)."""
    from benchmarks.machine import machine_info
    return {**machine_info(), "load_average": load_average()}


def table_peak() -> float | None:
    """bf16 dense peak of the chip from xtreme_jax.metrics.PEAK_FLOPS (None on CPU)."""
    import jax
    return metrics.table_peak(jax.devices()[0].device_kind)


def make_matmul(n: int, dtype, min_seconds: float = 1.0):
    """A callable returning the FLOP/s of n^3 matmuls run back to back for about `min_seconds`
    (sustained, like a train step: a single short product under load catches idle moments)."""
    import jax
    import jax.numpy as jnp
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32).astype(dtype)
    f = jax.jit(lambda x, y: x @ y)
    f(a, b).block_until_ready()
    t = time.perf_counter()
    f(a, b).block_until_ready()
    reps = max(1, math.ceil(min_seconds / max(time.perf_counter() - t, 1e-6)))

    def run():
        t = time.perf_counter()
        outs = [f(a, b) for _ in range(reps)]
        jax.block_until_ready(outs)
        return reps * 2 * n ** 3 / (time.perf_counter() - t)
    run.flops_per_call = reps * 2 * n ** 3
    return run


def model_config(args, size=None, layers=None, vocab=None, dropout=None):
    import jax.numpy as jnp
    from xtreme_jax.models.encoder import preset
    size = size or args.size
    dropout = getattr(args, "dropout", 0.1) if dropout is None else dropout
    attn_dropout = getattr(args, "attention_dropout", None)
    over = dict(hidden_dropout=dropout, attention_dropout=dropout if attn_dropout is None else attn_dropout,
                dtype=jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32)
    layers = layers if layers is not None else args.layers
    vocab = vocab if vocab is not None else args.vocab
    if layers:
        over["num_layers"] = int(layers)
    if vocab:
        over["vocab_size"] = int(vocab)
    if args.remat:
        over["remat"] = True
    if getattr(args, "attention_impl", None):
        over["attention_impl"] = args.attention_impl
    cfg = preset(size, **over)
    if cfg.max_position_embeddings < args.seq + 2:
        cfg = cfg.replace(max_position_embeddings=max(514, args.seq + 2))
    return cfg


def cfg_dict(cfg) -> dict:
    return {k: (str(v) if k == "dtype" else v) for k, v in vars(cfg).items()}


def padded_batch(lengths, seq: int, vocab: int, num_labels: int = 3, seed: int = 0,
                 kind: str = "classification") -> dict:
    """Random ids padded to `seq`; labels per sequence (classification) or per real token
    (tagging, -100 on padding)."""
    rng = np.random.default_rng(seed)
    b = len(lengths)
    mask = (np.arange(seq)[None] < np.asarray(lengths)[:, None]).astype(np.int32)
    ids = np.where(mask, rng.integers(5, vocab, (b, seq)), 1).astype(np.int32)
    ids[:, 0] = 0
    if kind == "tagging":
        labels = np.where(mask, rng.integers(0, num_labels, (b, seq)), -100).astype(np.int32)
    else:
        labels = rng.integers(0, num_labels, b).astype(np.int32)
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids), labels=labels)


class JaxTrainer:
    """create_state + make_train_step on a mesh over all local devices (data parallel)."""

    def __init__(self, cfg, heads: dict, mesh=None, grad_dtype=None, lr=1e-5, rows: bool = False):
        import jax
        from xtreme_jax import optim, sharding, train_step as train
        self.mesh = mesh or sharding.make_mesh((-1, 1, 1))
        opt = dict(lr=lr, total_steps=10 ** 6, warmup=0.1)
        tx, sched = optim.make_optimizer(**opt)
        row_update = optim.make_row_update(**opt) if rows else None   # embedding_update=rows
        self.graphdef, self.state, self.shardings = train.create_state(cfg, heads, tx, self.mesh, row_embeddings=rows)
        self.new_step = lambda h: train.make_train_step(self.graphdef, self.shardings, h, sched,
                                                        grad_dtype=grad_dtype, row_update=row_update)
        self.steps = {h: self.new_step(h) for h in heads}
        self.n = 0
        self.key = jax.random.key(0)

    def put(self, batch: dict) -> dict:
        from xtreme_jax import sharding
        return sharding.device_batch(batch, self.mesh)

    def step(self, head: str, dev_batch):
        import jax
        self.state, m = self.steps[head](self.state, dev_batch, jax.random.fold_in(self.key, self.n))
        self.n += 1
        return m

    def timed(self, head: str, dev_batch, k: int) -> float:
        """Seconds per step over k steps dispatched back to back (one block at the end)."""
        import jax
        jax.block_until_ready(self.state)
        t = time.perf_counter()
        for _ in range(k):
            m = self.step(head, dev_batch)
        jax.block_until_ready((self.state, m))
        return (time.perf_counter() - t) / k


def make_torch_matmul(n: int, threads: int, min_seconds: float = 1.0):
    """The same fp32 n^3 product through PyTorch (MKL / oneDNN), FLOP/s: the CPU's GEMM as the
    PyTorch path sees it."""
    import torch
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    a @ b
    t = time.perf_counter()
    a @ b
    reps = max(1, math.ceil(min_seconds / max(time.perf_counter() - t, 1e-6)))

    def run():
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        return reps * 2 * n ** 3 / (time.perf_counter() - t)
    run.flops_per_call = reps * 2 * n ** 3
    return run


def hf_config(cfg, **kw):
    """transformers.XLMRobertaConfig of the same shape as our EncoderConfig (dropouts, labels, the
    attention implementation and anything else in `kw`): the PyTorch side of every benchmark."""
    import transformers
    base = dict(vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
                num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
                max_position_embeddings=cfg.max_position_embeddings, type_vocab_size=cfg.type_vocab_size,
                layer_norm_eps=cfg.layer_norm_eps, pad_token_id=cfg.pad_token_id,
                hidden_dropout_prob=cfg.hidden_dropout, attention_probs_dropout_prob=cfg.attention_dropout,
                attn_implementation="sdpa")
    return transformers.XLMRobertaConfig(**{**base, **kw})


class TorchTrainer:
    """HF transformers' PyTorch XLMRobertaForSequenceClassification (or ...ForTokenClassification
    for tagging) + AdamW (no decay on bias / LayerNorm) + global-norm clipping + linear schedule:
    the jiant / XTREME-scripts path."""

    def __init__(self, cfg, num_labels: int, batch: dict | None, threads: int, attn: str = "sdpa",
                 lr=1e-5, kind: str = "classification", fused: bool = True, sparse_embedding: bool = False):
        import torch
        import transformers
        torch.manual_seed(0)
        torch.set_num_threads(threads)
        self.torch = torch
        hf = hf_config(cfg, num_labels=num_labels, attn_implementation=attn)
        model_cls = (transformers.XLMRobertaForTokenClassification if kind == "tagging"
                     else transformers.XLMRobertaForSequenceClassification)
        self.model = model_cls(hf).train()
        # sparse_embedding: PyTorch's own lazy embedding update, the contender of our
        # embedding_update=rows: a sparse word-embedding gradient and SparseAdam for it (no weight
        # decay there: SparseAdam has none), fused AdamW for the rest.
        word = self.model.roberta.embeddings.word_embeddings
        word.sparse = sparse_embedding
        self.sparse = [word.weight] if sparse_embedding else []
        self.sparse_opt = torch.optim.SparseAdam(self.sparse, lr=lr, eps=1e-8) if sparse_embedding else None
        named = [(n, p) for n, p in self.model.named_parameters() if not any(p is q for q in self.sparse)]
        decay = [p for n, p in named if not (n.endswith("bias") or "LayerNorm" in n)]
        no_decay = [p for n, p in named if n.endswith("bias") or "LayerNorm" in n]
        groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
        # PyTorch at its best: the fused AdamW kernel (CPU support since torch 2.4), else foreach.
        self.adamw = "default (foreach)"
        try:
            self.opt = torch.optim.AdamW(groups, lr=lr, eps=1e-8, fused=fused or None)
            self.adamw = "fused" if fused else self.adamw
        except (RuntimeError, TypeError, ValueError) as e:
            self.opt = torch.optim.AdamW(groups, lr=lr, eps=1e-8)
            self.adamw = f"default (fused unavailable: {e})"
        total, warm = 10 ** 6, 10 ** 5
        lam = lambda s: min((s + 1) / warm, max(0.0, (total - s) / (total - warm)))  # noqa: E731
        self.scheds = [torch.optim.lr_scheduler.LambdaLR(o, lam) for o in (self.opt, self.sparse_opt) if o]
        self.batch = self.put(batch) if batch is not None else None
        self.attn = attn
        self.threads = threads

    def put(self, batch: dict) -> dict:
        return {k: self.torch.as_tensor(np.asarray(v, np.int64)) for k, v in batch.items()
                if k in ("input_ids", "attention_mask", "labels")}

    def step(self, batch=None):
        out = self.model(**(batch if batch is not None else self.batch))
        out.loss.backward()
        if self.sparse:   # clip_grad_norm_ cannot take a sparse gradient: the same rule by hand
            torch = self.torch
            dense = [p.grad for p in self.model.parameters() if p.grad is not None and not p.grad.is_sparse]
            g = self.sparse[0].grad = self.sparse[0].grad.coalesce()
            norm = torch.sqrt(torch.stack([n ** 2 for n in torch._foreach_norm(dense)]).sum()
                              + g._values().pow(2).sum())
            scale = torch.clamp(1.0 / (norm + 1e-6), max=1.0)
            torch._foreach_mul_(dense + [g._values()], scale)
            self.sparse_opt.step()
        else:
            self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        for s in self.scheds:
            s.step()
        for o in (self.opt, self.sparse_opt):
            if o:
                o.zero_grad(set_to_none=True)
        return out.loss

    def timed(self, k: int, batch=None) -> float:
        t = time.perf_counter()
        for _ in range(k):
            loss = self.step(batch)
        float(loss.detach())
        return (time.perf_counter() - t) / k


# ============================================================================ (a) train step

# The step benchmark's timed trainers (jax_rows / torch_sparse with --embedding-update rows).
STEP_CONTENDERS = ("jax", "torch", "jax_rows", "torch_sparse")


def bench_step(args) -> dict:
    import jax
    import jax.numpy as jnp

    cfg = model_config(args)
    B, S = args.batch, args.seq
    lengths = sample_lengths("xnli", B, S, seed=1)
    host = padded_batch(lengths, S, cfg.vocab_size)
    on_cpu = backend() == "cpu"
    trainer = JaxTrainer(cfg, {"cls": ("classification", 3)},
                         grad_dtype=jnp.bfloat16 if args.bf16_grads else None)
    dev = trainer.put(host)
    t0 = time.perf_counter()
    jax.block_until_ready(trainer.step("cls", dev))
    compile_s = time.perf_counter() - t0
    trainer.timed("cls", dev, 1)

    mm_dtype = jnp.float32 if args.dtype == "float32" else jnp.bfloat16
    peak_n = args.peak_n or (2048 if on_cpu else 8192)
    matmul = make_matmul(peak_n, mm_dtype)
    k = args.steps_per_round or (1 if on_cpu else 10)
    contenders = {"peak": matmul,
                  "jax": lambda: trainer.timed("cls", dev, k)}
    if args.embedding_update == "rows":   # the lazy embedding update beside the dense one, same run
        rows_trainer = JaxTrainer(cfg, {"cls": ("classification", 3)}, rows=True,
                                  grad_dtype=jnp.bfloat16 if args.bf16_grads else None)
        rows_trainer.timed("cls", dev, 2)
        contenders["jax_rows"] = lambda: rows_trainer.timed("cls", dev, k)
    torch_info = None
    if not args.no_torch:
        try:
            threads = args.threads or os.cpu_count()
            tt = TorchTrainer(cfg, 3, host, threads, attn=args.torch_attn, fused=not args.torch_unfused)
            tt.timed(1)
            contenders["torch"] = lambda: tt.timed(k)
            torch_info = {"attn_implementation": args.torch_attn, "threads": threads,
                          "torch": tt.torch.__version__, "adamw": tt.adamw}
            if args.embedding_update == "rows":
                ts = TorchTrainer(cfg, 3, host, threads, attn=args.torch_attn, fused=not args.torch_unfused,
                                  sparse_embedding=True)
                ts.timed(1)
                contenders["torch_sparse"] = lambda: ts.timed(k)
                torch_info["sparse_adamw"] = f"SparseAdam (word embedding) + {ts.adamw} AdamW (the rest)"
            contenders["torch_peak"] = make_torch_matmul(peak_n, threads)

        except ImportError as e:
            torch_info = {"skipped": f"PyTorch / transformers not importable: {e}"}
    cpu = {}
    res = interleave(contenders, args.rounds, cpu)
    if args.profile:   # one more round of our step under the profiler (xprof / ProfileData)
        with jax.profiler.trace(args.profile):
            trainer.timed("cls", dev, k)

    fpt = flops_per_token(cfg, S, kind="classification", num_labels=3)   # encoder + head, as computed
    flops_step = fpt * B * S
    processed, useful = B * S, int(np.sum(host["attention_mask"]))
    peaks = res["peak"]
    chip = table_peak()
    out = {"config": cfg_dict(cfg), "batch": B, "seq": S, "dtype": args.dtype, "remat": args.remat,
           "bf16_grads": args.bf16_grads, "rounds": args.rounds, "steps_per_round": k,
           "flops_per_token": fpt, "flops_per_step": flops_step,
           "processed_tokens_per_step": processed, "useful_tokens_per_step": useful,
           "first_step_s_incl_compile": compile_s,
           "matmul_peak": {"n": peak_n, "dtype": str(jnp.dtype(mm_dtype)), "flops_per_s": med(peaks),
                           "per_round": peaks},
           "chip_peak_flops_per_s": chip}
    step_contenders = [n for n in STEP_CONTENDERS if n in res]
    for name in step_contenders:
        ts = res[name]
        r = {"step_s": med(ts), "per_round_s": ts,
             "tokens_per_s": processed / med(ts), "useful_tokens_per_s": useful / med(ts),
             "model_flops_per_s": flops_step / med(ts),
             "mfu_vs_measured_matmul": med([flops_step / t / p for t, p in zip(ts, peaks)]),
             "process_cpu_s_per_step": med(cpu[name]) / k,
             "mfu_vs_measured_matmul_cpu_time": med([flops_step * k / c / (matmul.flops_per_call / cp)
                                                     for c, cp in zip(cpu[name], cpu["peak"])])}
        if chip:
            r["mfu_vs_chip_peak"] = flops_step / med(ts) / chip
        out[name] = r
    if "torch_peak" in res:
        tp = res["torch_peak"]
        out["matmul_peak_torch"] = {"n": peak_n, "dtype": "float32", "flops_per_s": med(tp), "per_round": tp,
                                    "xla_over_torch": med([x / y for x, y in zip(peaks, tp)])}
        for name in step_contenders:   # against the faster GEMM, round by round
            out[name]["mfu_vs_best_matmul"] = med([flops_step / t / max(p, q)
                                                   for t, p, q in zip(res[name], peaks, tp)])
    if "torch" in res:
        out["torch"].update(torch_info)
        out["speedup_vs_torch"] = med([t / j for t, j in zip(res["torch"], res["jax"])])
        out["speedup_vs_torch_cpu_time"] = med([t / j for t, j in zip(cpu["torch"], cpu["jax"])])
    if "torch_sparse" in res:
        out["torch_sparse"]["adamw"] = torch_info["sparse_adamw"]
    if "jax_rows" in res:   # ratios round by round: the lever itself, and against PyTorch's lazy update
        out["rows_speedup_vs_dense"] = med([d / r for d, r in zip(res["jax"], res["jax_rows"])])
        if "torch_sparse" in res:
            out["rows_speedup_vs_torch_sparse"] = med([t / r for t, r in zip(res["torch_sparse"], res["jax_rows"])])
            out["rows_speedup_vs_torch_dense"] = med([t / r for t, r in zip(res["torch"], res["jax_rows"])])
    elif torch_info:
        out["torch"] = torch_info
    # The headline MFU on CPU is against the faster of the two measured GEMMs (XLA's own is the
    # slower one here, and dividing by it flatters the step).
    if chip and not on_cpu:
        out["mfu"], out["mfu_basis"] = out["jax"]["mfu_vs_chip_peak"], "chip bf16 dense peak"
    elif "mfu_vs_best_matmul" in out["jax"]:
        out["mfu"] = out["jax"]["mfu_vs_best_matmul"]
        out["mfu_basis"] = (f"the faster of XLA's and PyTorch's {out['matmul_peak']['dtype']} {peak_n}^3 "
                            "matmuls, measured in this run, round by round")
    else:
        out["mfu"] = out["jax"]["mfu_vs_measured_matmul"]
        out["mfu_basis"] = f"XLA {out['matmul_peak']['dtype']} {peak_n}^3 matmul measured in this run (no PyTorch)"
    return out


# ============================================================================ (b) padding

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


def _csv(value: str, allowed) -> list:
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
    dists = _csv(getattr(args, "padding_dists", "xnli,panx"), ("xnli", "panx"))
    modes = {m: {**PAD_MODES, **OPTIONAL_PAD_MODES}[m] for m in
             _csv(getattr(args, "padding_modes", ",".join(PAD_MODES)), list(PAD_MODES) + list(OPTIONAL_PAD_MODES))}
    torch_modes = _csv(getattr(args, "padding_torch_modes", ",".join(TORCH_PAD_MODES)), TORCH_PAD_MODES)
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


# ============================================================================ (c) evaluation

def bench_eval(args) -> dict:
    """The evaluator (one stream over all languages) against the per-language loop
    (benchmarks/eval_bench.py), end to end, on --eval-task's data: by default the real Tatoeba
    kit, each language cut to its first --eval-max-pairs lines."""
    data_dir = args.eval_data or (_kit("tatoeba") if args.eval_task == "tatoeba" else None)
    if not data_dir or not os.path.isdir(data_dir):
        return {"todo": f"no {args.eval_task} data (the shared data kit was not found); pass --eval-data DIR"}
    from xtreme_jax import sharding
    from xtreme_jax.data.sources import Source
    from xtreme_jax.data.spm import train_xlmr_tokenizer
    from xtreme_jax.evaluation import Evaluator, load_eval_sets
    from xtreme_jax.tasks import get_task
    from xtreme_jax.train_step import create_model

    if args.eval_max_pairs:   # the first N lines of every file, in a temp dir
        cut = tempfile.mkdtemp(prefix="xtj-bench-eval-")
        for name in os.listdir(data_dir):
            src = os.path.join(data_dir, name)
            if os.path.isfile(src):
                with open(src, encoding="utf-8") as fi, open(os.path.join(cut, name), "w", encoding="utf-8") as fo:
                    for i, line in enumerate(fi):
                        if i >= args.eval_max_pairs:
                            break
                        fo.write(line)
        data_dir_used = cut
    else:
        data_dir_used = data_dir
    task = get_task(args.eval_task)
    source = Source("official", data_dir_used)
    langs = [l for l in args.eval_languages.split(",") if l] or list(task.language_list(source))
    found, texts = [], []
    for lang in langs:
        try:
            exs = task.load_examples(args.eval_split, lang, source)
        except Exception as err:  # noqa: BLE001 -- missing languages are skipped and listed
            print(f"[bench eval] skipping {lang}: {str(err).splitlines()[0]}", file=sys.stderr)
            continue
        found.append(lang)
        for e in exs:
            texts += [e[k] for k in ("text", "text_a", "text_b", "context", "question") if isinstance(e.get(k), str)]
            texts += [" ".join(e["tokens"])] if "tokens" in e else []
            texts += list(e.get("choices") or [])
    tok = train_xlmr_tokenizer(texts, tempfile.mkdtemp(prefix="xtj-bench-tok-"), vocab_size=args.eval_vocab)
    sets = load_eval_sets(task, tok, source, split=args.eval_split, languages=found)
    cfg = model_config(args, size=args.eval_size, layers=args.eval_layers, vocab=len(tok), dropout=0.0)
    mesh = sharding.make_mesh((-1, 1, 1))
    heads = {task.name: (task.kind, task.num_labels(source))} if task.has_head else {}
    evaluator = Evaluator(create_model(cfg, heads, mesh), mesh, batch_size=args.eval_batch)
    result = benchmark_vs_naive(evaluator, task, sets, repeats=args.eval_repeats)
    result.update(config=cfg_dict(cfg), data_dir=data_dir, max_pairs_per_language=args.eval_max_pairs,
                  vocab_size=len(tok), retrieval_layer=evaluator.retrieval_layer,
                  sentences=int(sum(s.features.num_rows for s in sets)))
    return result


def _kit(name: str) -> str | None:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for root in (os.path.join(here, "..", "shared", "data"), os.path.join(here, "shared", "data")):
        p = os.path.normpath(os.path.join(root, name))
        if os.path.isdir(p):
            return p
    return None


# ============================================================================ (d) compilation

LOWERING_EVENT = "/jax/core/compile/jaxpr_to_mlir_module_duration"


class CompileCounter:
    """Counts lowerings (= new compilations, persistent-cache hits included) of any jitted
    function while active."""

    def __init__(self):
        self.count = 0

    def _cb(self, event, duration, **kw):
        if event == LOWERING_EVENT:
            self.count += 1

    def __enter__(self):
        import jax
        jax.monitoring.register_event_duration_secs_listener(self._cb)
        return self

    def __exit__(self, *exc):
        from jax._src import monitoring
        monitoring.unregister_event_duration_listener(self._cb)


def compile_counts(cfg=None, *, batch_size: int = 16, examples: int = 600, epochs: int = 2,
                   max_length: int = 128, languages: int = 15, mesh=None, phases=None,
                   evaluate: bool = True, mixed: bool = True) -> dict:
    """Compiled shapes per phase over realistic bucketed streams; recompiles after warm-up.

    Phases: intermediate/target training (XNLI-like classification and PAN-X-like tagging over
    length buckets, packed classification, MLM over buckets) and the vectorized evaluation of
    `languages` XNLI-like languages. Warm-up = the first epoch; a "recompile" is any
    compilation in a later epoch, or at a step whose input shape was already seen.
    """
    import grain
    import jax
    from xtreme_jax.data.batching import DEFAULT_BUCKETS
    from xtreme_jax.data.input_pipeline import make_train_dataset
    from xtreme_jax.models.encoder import preset

    cfg = cfg or preset("tiny", num_layers=1)
    all_phases = {   # name: (length model, task kind, head, labels, iterator options)
        "target_classification_buckets": ("xnli", "classification", "xnli", 3, {}),
        "target_tagging_buckets": ("panx", "tagging", "panx", 7, {}),
        "target_classification_packed": ("xnli", "classification", "xnli", 3, {"packing": True}),
        "mlm_buckets": ("panx", "mlm", "mlm", 0, {}),
    }
    phases = {k: all_phases[k] for k in (phases or all_phases)}
    heads = {"xnli": ("classification", 3), "panx": ("tagging", 7), "mlm": ("mlm", 0)}
    heads = {h: v for h, v in heads.items() if any(p[2] == h for p in phases.values())}
    if evaluate:
        heads.setdefault("xnli", ("classification", 3))
    if mixed:
        heads.setdefault("xnli", ("classification", 3))
        heads.setdefault("mlm", ("mlm", 0))
    trainer = JaxTrainer(cfg, heads, mesh=mesh, lr=1e-4)
    out = {"buckets": list(DEFAULT_BUCKETS), "max_length": max_length, "batch_size": batch_size,
           "epochs": epochs, "model": {"hidden_size": cfg.hidden_size, "num_layers": cfg.num_layers}}
    for name, (dist, kind, head, nl, kw) in phases.items():
        trainer.steps[head] = trainer.new_step(head)   # a fresh jit cache per phase
        lengths = sample_lengths(dist, examples, max_length, seed=4)
        f = synthetic_features(kind, lengths, cfg.vocab_size, max_length, num_labels=max(nl, 1), seed=5)
        ds = make_train_dataset(f, global_batch_size=batch_size, seed=0, num_threads=1,
                                shard_options=grain.sharding.ShardOptions(0, 1), **kw)
        n_epoch = ds.plan.batches_per_epoch
        it = iter(ds)
        seen, warm, after, recompiles = set(), 0, 0, 0
        for i in range(epochs * n_epoch):
            b = next(it)
            shape = b["input_ids"].shape
            with CompileCounter() as cc:
                m = trainer.step(head, trainer.put(b))
                jax.block_until_ready(m)
            if i < n_epoch:
                warm += cc.count
            else:
                after += cc.count
            if shape in seen:
                recompiles += cc.count
            seen.add(shape)
        out[name] = {"steps": epochs * n_epoch, "distinct_input_shapes": len(seen),
                     "compiled_shapes": int(trainer.steps[head]._cache_size()),
                     "compilations_in_warmup_epoch": warm, "compilations_after_warmup": after,
                     "recompiles_of_seen_shapes": recompiles}
    if mixed:
        out["mixed_mlm_classification"] = mixed_compile_counts(trainer, cfg, batch_size=batch_size,
                                                               examples=examples, epochs=epochs,
                                                               max_length=max_length)
    if evaluate:
        out["evaluate_vectorized"] = _eval_compiles(trainer, cfg, batch_size, examples, max_length, languages)
    worst = max(v["compiled_shapes"] for k, v in out.items() if isinstance(v, dict) and "compiled_shapes" in v)
    out["max_compiled_shapes_per_phase"] = worst
    out["total_recompiles_after_warmup"] = sum(
        v["compilations_after_warmup"] + v["recompiles_of_seen_shapes"]
        for v in out.values() if isinstance(v, dict) and "compilations_after_warmup" in v)
    return out


def mixed_compile_counts(trainer, cfg, *, batch_size: int, examples: int, epochs: int, max_length: int,
                         heads=(("xnli", "xnli", "classification", 3), ("mlm", "panx", "mlm", 0))) -> dict:
    """A phase with several heads (multi-task, or MLM beside a task as continued pretraining):
    train_loop compiles one step per head, each for the shapes of its own stream, so the
    phase's compiled programs = the sum over heads of their stream's shapes <= buckets x heads.
    Streams alternate step by step; warm-up = the first epoch of the longest stream."""
    import grain
    import jax
    from xtreme_jax.data.batching import DEFAULT_BUCKETS
    from xtreme_jax.data.input_pipeline import make_train_dataset

    its, n_epoch = {}, 0
    for i, (head, dist, kind, nl) in enumerate(heads):
        trainer.steps[head] = trainer.new_step(head)
        f = synthetic_features(kind, sample_lengths(dist, examples, max_length, seed=30 + i), cfg.vocab_size,
                               max_length, num_labels=max(nl, 1), seed=40 + i)
        ds = make_train_dataset(f, global_batch_size=batch_size, seed=i, num_threads=1,
                                shard_options=grain.sharding.ShardOptions(0, 1))
        its[head] = iter(ds)
        n_epoch = max(n_epoch, ds.plan.batches_per_epoch)
    seen, warm, after, recompiles = set(), 0, 0, 0
    for i in range(epochs * n_epoch):
        for head in its:
            b = next(its[head])
            with CompileCounter() as cc:
                jax.block_until_ready(trainer.step(head, trainer.put(b)))
            warm, after = (warm + cc.count, after) if i < n_epoch else (warm, after + cc.count)
            key = (head, b["input_ids"].shape)
            recompiles += cc.count if key in seen else 0
            seen.add(key)
    compiled = {head: int(trainer.steps[head]._cache_size()) for head in its}
    buckets = [b for b in DEFAULT_BUCKETS if b < max_length] + [max_length]
    return {"heads": [h[0] for h in heads], "steps": epochs * n_epoch * len(heads),
            "distinct_input_shapes": len(seen), "compiled_shapes": sum(compiled.values()),
            "compiled_shapes_per_head": compiled, "bound_buckets_x_heads": len(buckets) * len(heads),
            "compilations_in_warmup_epoch": warm, "compilations_after_warmup": after,
            "recompiles_of_seen_shapes": recompiles}


def _eval_compiles(trainer, cfg, batch_size, examples, max_length, languages) -> dict:
    import jax
    from flax import nnx
    from xtreme_jax.evaluation import Evaluator
    feats = [synthetic_features("classification", sample_lengths("xnli", examples // 3, max_length, seed=10 + i),
                                cfg.vocab_size, max_length, seed=20 + i, lang=f"l{i}") for i in range(languages)]
    model = nnx.merge(trainer.graphdef, trainer.state).model
    ev = Evaluator(model, trainer.mesh, batch_size=batch_size)
    with CompileCounter() as first:
        jax.block_until_ready(ev.run("classification", feats, head="xnli"))
    with CompileCounter() as second:
        jax.block_until_ready(ev.run("classification", feats, head="xnli"))
    return {"languages": languages, "compiled_shapes": int(ev.compile_count),
            "compilations_first_pass": first.count, "compilations_after_warmup": second.count,
            "recompiles_of_seen_shapes": 0}


def first_step_latency(args) -> dict:
    """Cold vs warm persistent compilation cache: the same child run twice on a fresh dir."""
    cache = tempfile.mkdtemp(prefix="xtj-bench-jitcache-")
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    cmd = [sys.executable, "-m", "benchmarks.bench", "--what", "_first_step", "--size", args.first_step_size,
           "--layers", str(args.first_step_layers), "--vocab", str(args.vocab or 0), "--batch", str(args.batch),
           "--seq", str(args.seq), "--dtype", args.dtype]
    runs = {}
    for name in ("cold", "warm"):
        t = time.perf_counter()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
        wall = time.perf_counter() - t
        if p.returncode:
            return {"error": p.stderr[-2000:]}
        runs[name] = json.loads(p.stdout.strip().splitlines()[-1])
        runs[name]["process_wall_s"] = wall
    out = {"cache_dir": cache, "size": args.first_step_size, "layers": args.first_step_layers, **runs}
    out["first_step_speedup_warm_vs_cold"] = runs["cold"]["first_step_s"] / runs["warm"]["first_step_s"]
    return out


def _first_step_child(args) -> dict:
    """Child of first_step_latency: from create_state to the first step's metrics on host."""
    import jax
    t0 = time.perf_counter()
    cfg = model_config(args)
    trainer = JaxTrainer(cfg, {"cls": ("classification", 3)})
    dev = trainer.put(padded_batch(sample_lengths("xnli", args.batch, args.seq), args.seq, cfg.vocab_size))
    t1 = time.perf_counter()
    m = trainer.step("cls", dev)
    float(jax.device_get(m["loss"]))
    t2 = time.perf_counter()
    return {"state_init_s": t1 - t0, "first_step_s": t2 - t1, "total_s": t2 - t0,
            "persistent_cache": os.environ.get("JAX_COMPILATION_CACHE_DIR")}


def bench_compile(args) -> dict:
    out = {"phases": compile_counts(max_length=args.seq if args.seq <= 128 else 128)}
    out["first_step_latency"] = first_step_latency(args)
    return out


# ============================================================================ (e) host overhead

def bench_host(args) -> dict:
    """Host overhead per step = wall step time of the real loop - device time of the step.

    device: the step on one pre-placed batch, N steps dispatched back to back and one
        block_until_ready at the end (the host runs ahead; time/N is the device time per step
        whenever the host is faster than the device).
    loop: what train_phase does: next(grain iterator) -> device_batch -> step, metrics fetched
        every `log_every` steps. Same shapes (pad-to-max stream), so the device work is equal.
    sync: dispatch then block_until_ready every step (a loop that syncs each step).
    Also: host time inside the loop body (iterator + transfer + dispatch), and dispatch alone.
    """
    import grain
    import jax
    from xtreme_jax.data.input_pipeline import make_train_dataset

    out = {"method": bench_host.__doc__.split("\n\n", 1)[1].strip()}
    for size, layers in ((args.size, args.layers), ("tiny", 0)):
        cfg = model_config(args, size=size, layers=layers, vocab=args.vocab if size != "tiny" else 0)
        B, S = args.batch, min(args.seq, cfg.max_position_embeddings - 2)
        trainer = JaxTrainer(cfg, {"xnli": ("classification", 3)})
        f = synthetic_features("classification", sample_lengths("xnli", 4000, S, seed=6), cfg.vocab_size, S)
        ds = make_train_dataset(f, global_batch_size=B, seed=0, buckets=None, num_threads=2,
                                shard_options=grain.sharding.ShardOptions(0, 1))
        it = iter(ds)
        dev = trainer.put({k: v for k, v in next(it).items() if not k.startswith("meta_")})
        n = args.host_steps if size != "tiny" else max(args.host_steps, 40)
        log_every = 10
        trainer.timed("xnli", dev, 2)

        def device():
            return trainer.timed("xnli", dev, n)

        def loop():
            host = []
            jax.block_until_ready(trainer.state)
            t = time.perf_counter()
            pending = []
            for i in range(n):
                h = time.perf_counter()
                b = next(it)
                d = trainer.put({k: v for k, v in b.items() if not k.startswith("meta_")})
                pending.append(trainer.step("xnli", d))
                host.append(time.perf_counter() - h)
                if (i + 1) % log_every == 0:
                    jax.device_get(pending)
                    pending = []
            jax.block_until_ready((trainer.state, pending))
            loop.host.append(med(host))
            return (time.perf_counter() - t) / n
        loop.host = []

        def sync():
            t = time.perf_counter()
            disp = []
            for _ in range(max(2, n // 4)):
                h = time.perf_counter()
                m = trainer.step("xnli", dev)
                disp.append(time.perf_counter() - h)
                jax.block_until_ready((trainer.state, m))
            sync.dispatch.append(med(disp))
            return (time.perf_counter() - t) / max(2, n // 4)
        sync.dispatch = []

        res = interleave({"device": device, "loop": loop, "sync": sync},
                         args.rounds if size == "tiny" else min(args.rounds, 3))
        dev_s, loop_s, sync_s = med(res["device"]), med(res["loop"]), med(res["sync"])
        out[f"{size}" + (f"_{cfg.num_layers}l" if layers else "")] = {
            "hidden_size": cfg.hidden_size, "num_layers": cfg.num_layers, "batch": B, "seq": S,
            "steps_per_round": n, "device_step_s": dev_s, "loop_step_s": loop_s, "sync_step_s": sync_s,
            "host_overhead_s": loop_s - dev_s, "host_overhead_fraction": (loop_s - dev_s) / loop_s,
            "host_overhead_per_round_s": [l - d for l, d in zip(res["loop"], res["device"])],
            "sync_overhead_s": sync_s - dev_s, "loop_body_host_s": med(loop.host),
            "dispatch_s": med(sync.dispatch)}
    return out


# ============================================================================ memory (TPU/GPU)

MEMORY_MESHES = ((8, 1, 1), (2, 4, 1), (1, 8, 1), (2, 2, 2))
# Depths compiled for the extrapolation. Not 1 and 2: there the peak is set by buffers outside the
# layers (embedding gradient, optimizer update) and the growth per layer is underestimated (large,
# (8,1,1): +0.14 GiB from 1 to 2 layers, +0.50 GiB per layer from 4 to 8).
MEMORY_DEPTHS = (4, 8)


def memory_analysis(size: str, mesh_shape, *, batch: int, seq: int = 128, dtype="bfloat16",
                    grad_dtype=None, remat: bool = False, vocab: int | None = None,
                    num_layers: int | None = None) -> dict:
    """Per-device bytes of the compiled train step (abstract inputs, nothing allocated)."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec as P
    from xtreme_jax import optim, sharding, train_step as train
    from xtreme_jax.models.encoder import preset

    n = math.prod(mesh_shape)
    mesh = sharding.make_mesh(mesh_shape, jax.devices()[:n])
    over = {"dtype": jnp.dtype(dtype), "remat": remat}
    if num_layers:
        over["num_layers"] = num_layers
    if vocab:
        over["vocab_size"] = vocab
    cfg = preset(size, **over)
    tx, sched = optim.make_optimizer(lr=1e-5, total_steps=1000)
    graphdef, state, shardings = train.create_state(cfg, {"cls": ("classification", 3)}, tx, mesh,
                                                    abstract_only=True)
    step = train.make_train_step(graphdef, shardings, "cls", sched, grad_dtype=grad_dtype)
    bs = NamedSharding(mesh, P(("data", "fsdp"), None))
    i32 = lambda shape, s: jax.ShapeDtypeStruct(shape, jnp.int32, sharding=s)  # noqa: E731
    b = {"input_ids": i32((batch, seq), bs), "attention_mask": i32((batch, seq), bs),
         "token_type_ids": i32((batch, seq), bs),
         "labels": i32((batch,), NamedSharding(mesh, P(("data", "fsdp"))))}
    key = jax.eval_shape(lambda: jax.random.key(0))
    t = time.perf_counter()
    with jax.set_mesh(mesh):
        compiled = step.lower(state, b, key).compile()
    ma = compiled.memory_analysis()
    leaves = jax.tree.leaves(state)
    state_dev = sum(math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize for x in leaves)
    params = sum(math.prod(x.shape) for x in jax.tree.leaves(state["model"]))
    arg, out_b, tmp, alias = (int(getattr(ma, a, 0) or 0) for a in (
        "argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes", "alias_size_in_bytes"))
    total = arg + out_b + tmp - alias
    return {"size": size, "num_layers": cfg.num_layers, "mesh": list(mesh_shape), "global_batch": batch, "per_device_batch": batch // (
        mesh_shape[0] * mesh_shape[1]), "seq": seq, "dtype": str(jnp.dtype(dtype)), "remat": remat,
        "grad_dtype": None if grad_dtype is None else str(jnp.dtype(grad_dtype)),
        "params": int(params), "state_bytes_per_device": int(state_dev),
        "argument_bytes": arg, "output_bytes": out_b, "temp_bytes": tmp, "alias_bytes": alias,
        "peak_bytes_per_device": int(total), "peak_gib_per_device": total / 2 ** 30,
        "compile_s": time.perf_counter() - t}


def fits(gib: float, headroom: float = 0.9) -> dict:
    return {chip: gib <= headroom * hbm for chip, hbm in TPU_HBM_GIB.items()}


def bench_memory(args) -> dict:
    """Runs in a child with 8 fake CPU devices (the flag must precede jax's import)."""
    if args.what != "_memory_child":
        env = dict(os.environ, JAX_PLATFORMS="cpu",
                   XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip())
        cmd = [sys.executable, "-m", "benchmarks.bench", "--what", "_memory_child",
               "--memory-sizes", args.memory_sizes, "--memory-batches", args.memory_batches,
               "--memory-meshes", args.memory_meshes, "--seq", str(args.seq), "--prng", args.prng] + (["--remat"] if args.remat else []) + (
                   ["--memory-full-depth"] if args.memory_full_depth else [])
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
        if p.returncode:
            return {"error": p.stderr[-3000:]}
        return json.loads(p.stdout.strip().splitlines()[-1])
    from xtreme_jax.models.encoder import PRESETS
    rows = []
    meshes = [tuple(int(x) for x in m.split("x")) for m in args.memory_meshes.split(",")]
    keys = ("argument_bytes", "output_bytes", "temp_bytes", "alias_bytes", "peak_bytes_per_device",
            "state_bytes_per_device", "params")
    for size in args.memory_sizes.split(","):
        for batch in (int(x) for x in args.memory_batches.split(",")):
            for mesh in meshes:
                kw = dict(batch=batch, seq=args.seq, remat=args.remat)
                if args.memory_full_depth:
                    r = memory_analysis(size, mesh, **kw)
                    r["method"] = "compiled at full depth"
                else:
                    # Every layer holds the same state and saves the same activations, so bytes are
                    # affine in depth once the layers dominate the peak: compile MEMORY_DEPTHS layers,
                    # extrapolate to the preset's depth (a full-depth SPMD compile of XLM-R large
                    # takes many CPU-minutes).
                    n1, n2 = MEMORY_DEPTHS
                    a, b = (memory_analysis(size, mesh, num_layers=n, **kw) for n in (n1, n2))
                    depth = PRESETS[size]["num_layers"]
                    r = dict(b, num_layers=depth, compile_s=a["compile_s"] + b["compile_s"],
                             method=f"affine in depth from compiled {n1}- and {n2}-layer steps")
                    for k in keys:
                        r[k] = int(a[k] + (b[k] - a[k]) * (depth - n1) / (n2 - n1))
                    r["peak_gib_per_device"] = r["peak_bytes_per_device"] / 2 ** 30
                r["state_gib_per_device"] = r["state_bytes_per_device"] / 2 ** 30
                r["fits_tpu_8_chips"] = fits(r["peak_gib_per_device"])
                print(f"[memory] {size} mesh={mesh} batch={batch}: {r['peak_gib_per_device']:.2f} GiB/device "
                      f"(compile {r['compile_s']:.0f}s)", file=sys.stderr, flush=True)
                rows.append(r)
    return {"tpu_hbm_gib": TPU_HBM_GIB, "headroom": 0.9,
            "note": "compiled by the CPU backend for 8 fake devices, bf16 compute, fp32 params and "
                    "AdamW moments: an estimate of TPU/GPU usage (buffer assignment and fusion differ "
                    "per backend)", "rows": rows}


# ============================================================================ CLI

def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--what", default=WHAT_DEFAULT,
                    help=f"comma-separated parts: step,padding,eval,compile,host,memory (default {WHAT_DEFAULT})")
    ap.add_argument("--size", default="base", help="encoder preset: tiny, small, base, large")
    ap.add_argument("--layers", type=int, default=None,
                    help="override the number of layers (default: 2 on CPU, the preset's elsewhere)")
    ap.add_argument("--vocab", type=int, default=None,
                    help="override the vocabulary (default: 32000 on CPU, the preset's 250002 elsewhere)")
    ap.add_argument("--batch", type=int, default=None, help="global batch (default 16 on CPU, 256 elsewhere)")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--dtype", default=None, choices=["float32", "bfloat16"],
                    help="compute dtype (default float32 on CPU, bfloat16 elsewhere)")
    ap.add_argument("--remat", action="store_true", help="rematerialize each layer in the backward pass")
    ap.add_argument("--attention-impl", default=None,
                    help="EncoderConfig.attention_impl, e.g. cudnn (flash attention) on GPU; "
                         "applies to dropout-free attention")
    ap.add_argument("--dropout", type=float, default=0.1, help="hidden and attention dropout of the step")
    ap.add_argument("--attention-dropout", type=float, default=None,
                    help="attention-probability dropout (default: --dropout); 0 lets --attention-impl cudnn run")
    ap.add_argument("--prng", default="threefry2x32", choices=["rbg", "threefry2x32", "unsafe_rbg"],
                    help="jax_default_prng_impl for dropout masks (xtreme_jax.main uses threefry2x32)")
    ap.add_argument("--bf16-grads", action="store_true", help="reduce gradients in bf16 (make_train_step grad_dtype)")
    ap.add_argument("--embedding-update", default="dense", choices=["dense", "rows"],
                    help="step: rows adds the lazy word-embedding update (ours and PyTorch's SparseAdam) "
                         "beside the dense contenders; padding: rows runs both sides with it")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    ap.add_argument("--profile", default="", help="step: write a jax.profiler trace of K more steps to this dir")
    ap.add_argument("--torch-attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument("--torch-unfused", action="store_true",
                    help="PyTorch's default AdamW instead of the fused kernel (the default: PyTorch at its best)")
    ap.add_argument("--threads", type=int, default=0, help="PyTorch threads (default: all cores, as XLA uses)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians are reported)")
    ap.add_argument("--steps-per-round", type=int, default=0, help="steps per contender per round (default 1 on CPU, 10 elsewhere)")
    ap.add_argument("--peak-n", type=int, default=0, help="matmul size for the measured peak (2048 CPU, 8192 GPU)")
    ap.add_argument("--padding-examples", type=int, default=4000)
    ap.add_argument("--padding-torch-samples", type=int, default=8,
                    help="padding: PyTorch batches timed per batching mode (quantiles of the padded length)")
    ap.add_argument("--padding-layers", type=int, default=1,
                    help="layers of the padding model (same width as --size; 0 = as --layers)")
    ap.add_argument("--padding-dists", default="xnli,panx", help="padding: length models (xnli,panx)")
    ap.add_argument("--padding-modes", default=",".join(PAD_MODES),
                    help="padding: our batchings, from " + ",".join(list(PAD_MODES) + list(OPTIONAL_PAD_MODES))
                         + " (packing_matched: packed rows per step chosen for the PyTorch batch's examples per step)")
    ap.add_argument("--padding-torch-modes", default=",".join(TORCH_PAD_MODES),
                    help="padding: PyTorch batchings, from " + ",".join(TORCH_PAD_MODES))
    ap.add_argument("--eval-task", default="tatoeba", help="task of the evaluator benchmark")
    ap.add_argument("--eval-data", default="", help="its official-layout data dir (default for tatoeba: the shared data kit)")
    ap.add_argument("--eval-split", default="test")
    ap.add_argument("--eval-languages", default="", help="comma-separated (default: all found)")
    ap.add_argument("--eval-size", default="small")
    ap.add_argument("--eval-layers", type=int, default=1)
    ap.add_argument("--eval-max-pairs", type=int, default=50,
                    help="first N sentence pairs of each Tatoeba language (0 = all); keeps the "
                         "per-language loop affordable on CPU")
    ap.add_argument("--eval-batch", type=int, default=64)
    ap.add_argument("--eval-vocab", type=int, default=8000)
    ap.add_argument("--eval-repeats", type=int, default=2)
    ap.add_argument("--first-step-size", default="base")
    ap.add_argument("--first-step-layers", type=int, default=2)
    ap.add_argument("--host-steps", type=int, default=4)
    ap.add_argument("--memory-sizes", default="base,large")
    ap.add_argument("--memory-batches", default="256")
    ap.add_argument("--memory-full-depth", action="store_true",
                    help="compile the full-depth model (slow on CPU) instead of extrapolating from MEMORY_DEPTHS layers")
    ap.add_argument("--memory-meshes", default=",".join("x".join(map(str, m)) for m in MEMORY_MESHES))
    ap.add_argument("--out", default="", help="write the JSON here (also printed)")
    return ap.parse_args(argv)


def _fill_defaults(args):
    on_cpu = backend() == "cpu"
    if args.layers is None:
        args.layers = 2 if on_cpu else 0
    if args.vocab is None:
        args.vocab = 32000 if on_cpu else 0
    if args.batch is None:
        args.batch = 16 if on_cpu else 256
    if args.dtype is None:
        args.dtype = "float32" if on_cpu else "bfloat16"
    return args


PARTS = {"step": bench_step, "padding": bench_padding, "eval": bench_eval, "compile": bench_compile,
         "host": bench_host, "memory": bench_memory}


def main(argv=None) -> dict:
    from benchmarks.machine import torch_threads_passive
    torch_threads_passive()
    import jax
    args = parse_args(argv)
    jax.config.update("jax_default_prng_impl", args.prng)
    if args.what == "_memory_child":
        args.dtype = args.dtype or "bfloat16"
        print(json.dumps(bench_memory(args)))
        return {}
    args = _fill_defaults(args)
    if args.what == "_first_step":
        print(json.dumps(_first_step_child(args)))
        return {}
    parts = [p.strip() for p in args.what.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"unknown --what part(s) {unknown}; choose from {sorted(PARTS)}")
    result = {"command": " ".join(["python -m benchmarks.bench"] + (argv if argv is not None else sys.argv[1:])),
              "device": device_info(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for p in parts:
        t = time.perf_counter()
        print(f"[bench] {p} ...", file=sys.stderr, flush=True)
        result[p] = PARTS[p](args)
        result[p]["part_wall_s"] = time.perf_counter() - t
        result["device"]["load_average_end"] = load_average()
        result["device"]["uptime_end"] = uptime()
        if args.out:   # partial results survive an interrupted run
            _write(args.out, result)
    result["summary"] = summarize(result)
    text = json.dumps(result, indent=1, default=str)
    print(text)
    if args.out:
        _write(args.out, result)
    return result


def _write(path, result):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1, default=str)
    os.replace(tmp, path)


def summarize(r: dict) -> dict:
    """The numbers the issue's targets are about."""
    s = {}
    if "step" in r and "jax" in r["step"]:
        st = r["step"]
        s["mfu"] = st["mfu"]
        s["mfu_basis"] = st["mfu_basis"]
        s["jax_tokens_per_s"] = st["jax"]["tokens_per_s"]
        for k in ("speedup_vs_torch", "rows_speedup_vs_dense", "rows_speedup_vs_torch_sparse",
                  "rows_speedup_vs_torch_dense"):
            if k in st:
                s[k] = st[k]
    if "padding" in r and "xnli" in r["padding"]:
        s["xnli_useful_speedup_vs_pad_to_max"] = {m: v["useful_speedup_vs_pad_to_max"]
                                                  for m, v in r["padding"]["xnli"].items()
                                                  if isinstance(v, dict) and "useful_speedup_vs_pad_to_max" in v}
        if "ours_vs_torch_useful_tokens_per_s" in r["padding"]["xnli"]:
            s["xnli_ours_vs_torch_useful_tokens_per_s"] = r["padding"]["xnli"]["ours_vs_torch_useful_tokens_per_s"]
    if "eval" in r and "speedup" in r["eval"]:
        s["eval_speedup_vs_loop"] = r["eval"]["speedup"]
    if "compile" in r:
        ph = r["compile"]["phases"]
        s["max_compiled_shapes_per_phase"] = ph["max_compiled_shapes_per_phase"]
        s["recompiles_after_warmup"] = ph["total_recompiles_after_warmup"]
        fs = r["compile"]["first_step_latency"]
        if "cold" in fs:
            s["first_step_s_cold_warm"] = [fs["cold"]["first_step_s"], fs["warm"]["first_step_s"]]
    if "host" in r:
        s["host_overhead_s"] = {k: v["host_overhead_s"] for k, v in r["host"].items() if isinstance(v, dict)}
    return s


if __name__ == "__main__":
    main()
