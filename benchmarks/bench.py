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

One module per part (its `bench_<part>(args) -> dict`): step.py, padding.py, eval_bench.py,
compilation.py, host.py, memory.py; what they share is in common.py (timing, the machine,
make_step: the one assembly of optimizer + state + step), synthetic.py (length models, synthetic
features and batches) and torch_ref.py (the HF PyTorch side). This module is the CLI.

All speed comparisons interleave the contenders round by round inside one process and report
medians (and medians of per-round ratios), so a machine shared with other work still gives
fair ratios; absolute numbers then depend on the load (`load_average` is recorded).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from benchmarks.common import backend, device_info, load_average
from benchmarks.compilation import first_step_child, bench_compile
from benchmarks.eval_bench import bench_eval
from benchmarks.host import bench_host
from benchmarks.machine import uptime
from benchmarks.memory import MEMORY_MESHES, bench_memory
from benchmarks.padding import OPTIONAL_PAD_MODES, PAD_MODES, TORCH_PAD_MODES, bench_padding
from benchmarks.step import bench_step
# Names tests, docs and scripts use as bench.<name> (each defined in its part's module).
from benchmarks.common import JaxTrainer, interleave, make_matmul, make_step, med  # noqa: F401
from benchmarks.compilation import compile_counts  # noqa: F401
from benchmarks.memory import MEMORY_DEPTHS, memory_analysis  # noqa: F401
from benchmarks.padding import csv_choices as _csv, matched_pack_rows, quantile_batches, torch_batches  # noqa: F401
from benchmarks.synthetic import LENGTH_MODELS, padded_batch, sample_lengths, synthetic_features  # noqa: F401

WHAT_DEFAULT = "step,padding,eval,compile,host"


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
        print(json.dumps(first_step_child(args)))
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
