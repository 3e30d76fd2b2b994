"""Part `step`: the jitted, donated train step against HF PyTorch on the same batch; tokens/s and
MFU against the faster of XLA's and PyTorch's measured GEMM (CPU) or the chip's peak."""
from __future__ import annotations

import os
import time

import numpy as np

from benchmarks.common import JaxTrainer, backend, cfg_dict, interleave, make_matmul, med, model_config, table_peak
from benchmarks.synthetic import padded_batch, sample_lengths
from benchmarks.torch_ref import TorchTrainer, make_torch_matmul
from xtreme_jax.metrics import flops_per_token

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
