"""One script for a session with a GPU (issue 16 part 3): XLM-R large and base, S=128, bf16, the
train step at B=256 and B=32 with each accelerator lever, HF PyTorch (bf16 autocast + SDPA +
fused AdamW) on the same batches, a profile, JSON out; about 8 minutes on one H100/H200.

    python -m benchmarks.gpu --out gpu.json                # the full plan, --budget-s 450
    python -m benchmarks.gpu --smoke --out smoke.json      # toy size on CPU (the test)

Plan, in priority order (each stage is skipped, and says so, once the budget is spent; the
JSON is rewritten after every stage, so a cut-off run keeps what it measured):
  1. large, B=256: the step as it was measured (XLA attention with dropout 0.1, threefry
     16-bit masks) against the levers, interleaved round by round in one process:
       cudnn          cuDNN flash attention from sequence lengths, attention dropout 0
       cudnn_dropout  cuDNN flash attention with attention dropout 0.1 in the kernel
       cudnn_bits8    cudnn with 8-bit hidden-dropout masks
     (the non-finite guard is the select in every variant; `legacy_guard` = the old lax.cond)
  2. a profile of the best large B=256 step (the compiled one): top kernels and by category
  3. large, B=32: baseline, the best of 1, legacy_guard, and best_rows = the best with the
     opt-in row-wise word-embedding update (embedding_update=rows: lazy AdamW on the rows the
     batch uses instead of all 250k; a different optimizer, timed as the lever it is)
  4. PyTorch (HF XLMRobertaForSequenceClassification, bf16 autocast, SDPA, fused AdamW) on the
     same batches: large and base, B=256 and B=32
  5. packed XNLI-like rows (large, B=256, best): MFU on real tokens
  6. base, B=256 and B=32: baseline and the best of 1
  7. XLA GPU flag sets (MaxText-like) in child processes, best large B=256 variant
MFU = model FLOPs (metrics.flops_per_token with the classification head) / time / the chip's
bf16 dense peak (metrics.PEAK_FLOPS); on CPU, against a measured fp32 matmul.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import interleave, make_matmul, make_step, med
from benchmarks.machine import machine_info, uptime, write_json
from benchmarks.perf import Stepper, legacy_train_step
from benchmarks.synthetic import padded_batch, sample_lengths, synthetic_features
from benchmarks.torch_ref import hf_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Variants: encoder settings and step options. attention_dropout None = as hidden dropout (0.1).
VARIANTS = {
    "baseline": dict(attention_impl=None),
    "cudnn": dict(attention_impl="cudnn", attention_dropout=0.0),
    "cudnn_dropout": dict(attention_impl="cudnn_dropout"),
    "cudnn_bits8": dict(attention_impl="cudnn", attention_dropout=0.0, bits=8),
    "legacy_guard": dict(attention_impl=None, legacy=True),
}
# XLA flag sets tried in child processes (single GPU: no collective flags).
XLA_FLAG_SETS = {
    "maxtext": "--xla_gpu_enable_latency_hiding_scheduler=true --xla_gpu_enable_triton_gemm=false "
               "--xla_gpu_enable_highest_priority_async_stream=true",
    "cublaslt": "--xla_gpu_enable_cublaslt=true",
}


class Budget:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def _log(msg: str):
    print(f"[gpu] {msg}", file=sys.stderr, flush=True)


def model_cfg(size: str, dtype, seq: int, smoke: bool, **over):
    from xtreme_jax.models.encoder import preset
    bits = over.get("bits", 16)   # a variant's dropout bits: EncoderConfig.dropout_bits, as a run sets it
    over = {k: v for k, v in over.items() if k not in ("legacy", "bits", "rows")}
    extra = dict(num_layers=1, vocab_size=1024) if smoke else {}
    cfg = preset(size, dtype=dtype, hidden_dropout=0.1, attention_dropout=0.1, dropout_bits=bits,
                 **{**extra, **over})
    if cfg.max_position_embeddings < seq + 2:
        cfg = cfg.replace(max_position_embeddings=seq + 2)
    return cfg


def build_step(cfg, variant: dict, host: dict, init=None):
    """A Stepper for one variant, warmed up (compiled) once. `init`: an initial state to copy
    (every variant starts from the same parameters, and the initializer compiles once)."""
    import jax
    import jax.numpy as jnp
    from xtreme_jax import sharding
    mesh = one_chip()
    rows = bool(variant.get("rows"))
    setup = make_step(cfg, {"cls": ("classification", 3)}, mesh, rows=rows,
                      abstract_only=init is not None and not rows)
    state = setup.state
    if init is not None and rows:   # another optimizer state: the same weights, fresh moments
        state["model"] = jax.tree.map(jnp.copy, init["model"])
    elif init is not None:
        state = jax.tree.map(jnp.copy, init)
    step = (legacy_train_step(setup.graphdef, setup.shardings, "cls", setup.schedule) if variant.get("legacy")
            else setup.step("cls"))
    s = Stepper(step, state, sharding.device_batch(host, mesh))
    t = time.perf_counter()
    s(1)
    s.compile_s = time.perf_counter() - t
    return s


def initial_state(cfg):
    return make_step(cfg, {"cls": ("classification", 3)}, one_chip()).state


def one_chip():
    """The benchmark runs on one chip (the first device), whatever the host has."""
    import jax
    from xtreme_jax import sharding
    return sharding.make_mesh((1, 1, 1), jax.devices()[:1])


def peak(on_cpu: bool) -> tuple:
    import jax
    from xtreme_jax.metrics import table_peak
    chip = table_peak(jax.devices()[0].device_kind)
    if chip and not on_cpu:
        return chip, "chip bf16 dense peak (xtreme_jax.metrics.PEAK_FLOPS)"
    return med([make_matmul(256, np.float32, 0.05)() for _ in range(3)]), "fp32 256^3 matmul measured"


def time_group(cfg_of, variants: dict, host: dict, *, rounds: int, steps: int, flops_step: float,
               peak_flops: float, real_tokens: int) -> dict:
    """Builds every variant, then times them interleaved round by round (k steps each)."""
    steppers, out = {}, {}
    init = initial_state(cfg_of({}))
    for name, v in variants.items():
        try:
            steppers[name] = build_step(cfg_of(v), v, host, init)
            out[name] = {"compile_s": steppers[name].compile_s}
        except Exception as e:  # noqa: BLE001 -- a lever that does not run here is reported, not fatal
            out[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
            _log(f"{name}: {out[name]['error']}")

    def timed(name):
        return steppers[name](steps)
    del init
    res = interleave({n: (lambda n=n: timed(n)) for n in steppers}, rounds)
    for name, ts in res.items():
        t = med(ts)
        out[name].update(step_s=t, per_round_s=ts, tokens_per_s=host["input_ids"].size / t,
                         real_tokens_per_s=real_tokens / t, mfu=flops_step / t / peak_flops,
                         mfu_real_tokens=flops_step * real_tokens / host["input_ids"].size / t / peak_flops,
                         loss=float(steppers[name].metrics["loss"]))
    if "baseline" in res:
        for name, ts in res.items():
            out[name]["speedup_vs_baseline"] = med([b / x for b, x in zip(res["baseline"], ts)])
    HELD.clear()
    HELD.update(steppers)   # the last group's steppers, for the profile
    return out


HELD: dict = {}


def best_of(group: dict) -> str:
    ok = {n: v for n, v in group.items() if isinstance(v, dict) and "step_s" in v and n != "legacy_guard"}
    return min(ok, key=lambda n: ok[n]["step_s"]) if ok else "baseline"


class TorchGPU:
    """HF PyTorch at its best on the same batch: bf16 autocast, SDPA, fused AdamW (CUDA; CPU in
    the smoke run), clipping 1.0, no decay on bias / LayerNorm."""

    def __init__(self, cfg, host: dict, device: str):
        import torch
        import transformers
        self.torch, self.device = torch, device
        torch.manual_seed(0)
        hf = hf_config(cfg, num_labels=3)
        self.model = transformers.XLMRobertaForSequenceClassification(hf).to(device).train()
        named = list(self.model.named_parameters())
        groups = [{"params": [p for n, p in named if not (n.endswith("bias") or "LayerNorm" in n)],
                   "weight_decay": 0.01},
                  {"params": [p for n, p in named if n.endswith("bias") or "LayerNorm" in n], "weight_decay": 0.0}]
        try:
            self.opt, self.adamw = torch.optim.AdamW(groups, lr=1e-5, eps=1e-8, fused=True), "fused"
        except (RuntimeError, TypeError, ValueError) as e:
            self.opt, self.adamw = torch.optim.AdamW(groups, lr=1e-5, eps=1e-8), f"default ({e})"
        self.batch = {k: torch.as_tensor(np.asarray(host[k], np.int64)).to(device)
                      for k in ("input_ids", "attention_mask", "labels")}

    def step(self):
        torch = self.torch
        with torch.autocast(self.device, dtype=torch.bfloat16):
            loss = self.model(**self.batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss

    def sync(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def timed(self, k: int) -> float:
        self.sync()
        t = time.perf_counter()
        for _ in range(k):
            loss = self.step()
        self.sync()
        float(loss.detach())
        return (time.perf_counter() - t) / k


def summarize_profile(directory: str, top: int = 25) -> dict:
    """Kernel time from the trace's xplane: on a GPU the device plane's stream lines, on CPU the
    XLA thunk lines of the host plane. Top kernels and a few categories."""
    from jax.profiler import ProfileData
    paths = glob.glob(os.path.join(directory, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        return {"error": f"no xplane under {directory}"}
    pd = ProfileData.from_file(paths[0])
    per = {}
    for plane in pd.planes:
        device = plane.name.startswith("/device:")
        for line in plane.lines:
            if device and "XLA" in line.name and "Stream" not in line.name:
                continue  # module / op summary lines duplicate the kernels
            if not device and not (plane.name == "/host:CPU" and line.name.startswith("tf_XLA")):
                continue
            for e in line.events:
                per[e.name] = per.get(e.name, 0.0) + e.duration_ns
    total = sum(per.values()) or 1.0
    cats = {"gemm": ("gemm", "cutlass", "xmma", "cublas", "ynn", "dot"), "attention": ("fmha", "flash", "attention"),
            "reduce/norm": ("reduce", "norm"), "rng": ("threefry", "rng", "philox")}
    by_cat = {c: sum(v for k, v in per.items() if any(w in k.lower() for w in words)) / total
              for c, words in cats.items()}
    ranked = sorted(per.items(), key=lambda kv: -kv[1])[:top]
    return {"xplane": paths[0], "kernels": len(per), "total_ms": total / 1e6, "share_by_category": by_cat,
            "top": [{"name": k[:160], "ms": v / 1e6, "share": v / total} for k, v in ranked]}


def packed_batch(batch: int, seq: int, vocab: int) -> tuple:
    """One packed batch of XNLI-like pairs (the real pipeline's packing), and its real tokens."""
    import grain
    from xtreme_jax.data.input_pipeline import make_train_dataset
    f = synthetic_features("classification", sample_lengths("xnli", batch * 4, seq, seed=7), vocab, seq)
    ds = make_train_dataset(f, global_batch_size=batch, seed=0, num_threads=1, packing=True,
                            shard_options=grain.sharding.ShardOptions(0, 1))
    b = {k: v for k, v in next(iter(ds)).items() if not k.startswith("meta_")}
    return b, int(b["attention_mask"].sum())


def run_flag_child(flags: str, argv: list, timeout: float) -> dict:
    env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " " + flags).strip())
    cmd = [sys.executable, "-m", "benchmarks.gpu", "--child"] + argv
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"flags": flags, "error": f"timed out after {timeout:.0f}s"}
    if p.returncode:
        return {"flags": flags, "error": p.stderr.strip().splitlines()[-1][:300] if p.stderr.strip() else "failed"}
    return {"flags": flags, **json.loads(p.stdout.strip().splitlines()[-1])}


def main(argv=None) -> dict:
    import jax
    import jax.numpy as jnp
    from xtreme_jax.metrics import flops_per_token

    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="")
    ap.add_argument("--budget-s", type=float, default=450.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="steps per contender per round")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--prng", default="threefry2x32")
    ap.add_argument("--smoke", action="store_true", help="toy sizes (1 layer, 1k vocab, B=4/2, S=32)")
    ap.add_argument("--stages", default="", help="comma-separated stage names to run (default: all): "
                    "large_big,profile,large_small,torch,packed,base,xla_flags")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child-settings", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    jax.config.update("jax_default_prng_impl", args.prng)
    on_cpu = jax.default_backend() == "cpu"
    smoke = args.smoke
    S = 32 if smoke else args.seq
    batches = (4, 2) if smoke else (256, 32)
    sizes = ("tiny", "tiny") if smoke else ("large", "base")
    steps, rounds = (1, 1) if smoke else (args.steps, args.rounds)
    dtype = jnp.float32 if on_cpu else jnp.bfloat16
    budget = Budget(args.budget_s)
    peak_flops, peak_basis = peak(on_cpu)

    def batch_for(B, vocab):
        return padded_batch(sample_lengths("xnli", B, S, seed=1), S, vocab)

    def group(size, B, names, host=None, real=None, **extra_variants):
        variants = {n: VARIANTS[n] for n in names}
        variants.update(extra_variants)
        cfg0 = model_cfg(size, dtype, S, smoke)
        host = host if host is not None else batch_for(B, cfg0.vocab_size)
        real = real if real is not None else int(host["attention_mask"].sum())
        fl = flops_per_token(cfg0, S, kind="classification", num_labels=3) * B * S
        return time_group(lambda v: model_cfg(size, dtype, S, smoke, **v), variants, host, rounds=rounds,
                          steps=steps, flops_step=fl, peak_flops=peak_flops, real_tokens=real)

    if args.child:   # one variant under this process's XLA_FLAGS
        g = group(sizes[0], batches[0], [], child=json.loads(args.child_settings))
        print(json.dumps(g["child"]))
        return g

    result = {"command": " ".join(["python -m benchmarks.gpu"] + (argv if argv is not None else sys.argv[1:])),
              "machine": machine_info(), "peak_flops": peak_flops, "peak_basis": peak_basis, "seq": S,
              "dtype": str(jnp.dtype(dtype)), "prng": args.prng, "rounds": rounds, "steps_per_round": steps,
              "skipped": []}

    def save():
        result["machine"]["uptime_end"] = uptime()
        if args.out:
            write_json(args.out, result)

    wanted = {w for w in args.stages.split(",") if w}

    def stage(name, need_s, fn, key):
        if wanted and key not in wanted:
            return None
        if budget.left() < need_s:
            result["skipped"].append(f"{name} (budget: {budget.left():.0f}s left, needs ~{need_s:.0f}s)")
            _log(f"skip {name}")
            return None
        t = time.perf_counter()
        _log(f"{name} ...")
        try:
            out = fn()
        except Exception as e:  # noqa: BLE001 -- keep the other stages
            out = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
        out["stage_s"] = time.perf_counter() - t
        result[name] = out
        save()
        return out

    large, base = sizes
    b_big, b_small = batches
    first = ["baseline", "cudnn_dropout"] if smoke else ["baseline", "cudnn", "cudnn_dropout", "cudnn_bits8"]
    g1 = stage(f"{large}_b{b_big}", 0, lambda: group(large, b_big, first), "large_big")
    best = best_of(g1 or {})
    best_v = dict(VARIANTS[best])
    result["best_variant"] = {"name": best, "settings": best_v}
    profiled = dict(HELD)   # the large B=big steppers, compiled: the profile reuses the best
    HELD.clear()
    VARIANTS["best"] = best_v

    def profile_stage():
        s = profiled.get(best)
        if s is None:
            cfg = model_cfg(large, dtype, S, smoke, **best_v)
            s = build_step(cfg, best_v, batch_for(b_big, cfg.vocab_size))
        d = tempfile.mkdtemp(prefix="xtj-gpu-prof-")
        with jax.profiler.trace(d):
            step_s = s(max(1, min(steps, 3)))
        return {"variant": best, "step_s": step_s, "trace_dir": d, **summarize_profile(d)}
    stage("profile", 30, profile_stage, "profile")
    profiled.clear()
    VARIANTS["best_rows"] = dict(best_v, rows=True)
    if smoke:  # the toy run checks every path once, not every size
        stage(f"{large}_b{b_small}", 0, lambda: group(large, b_small, ["best", "legacy_guard", "best_rows"]),
              "large_small")
    else:
        stage(f"{large}_b{b_small}", 60, lambda: group(large, b_small, ["baseline", "best", "legacy_guard",
                                                                       "best_rows"]), "large_small")

    def torch_stage():
        import importlib.util
        if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
            return {"skipped": "torch / transformers not installed"}
        import torch
        device = "cuda" if torch.cuda.is_available() and not on_cpu else "cpu"
        out = {"device": device, "torch": torch.__version__}
        plan = ((large, b_big),) if smoke else ((large, b_big), (large, b_small), (base, b_big), (base, b_small))
        for size, B in plan:
            if budget.left() < 20:
                out[f"{size}_b{B}"] = {"skipped": "budget"}
                continue
            cfg = model_cfg(size, dtype, S, smoke)
            host = batch_for(B, cfg.vocab_size)
            tt = TorchGPU(cfg, host, device)
            tt.timed(1)
            ts = [tt.timed(steps) for _ in range(rounds)]
            fl = flops_per_token(cfg, S, kind="classification", num_labels=3) * B * S
            out[f"{size}_b{B}"] = {"step_s": med(ts), "per_round_s": ts, "mfu": fl / med(ts) / peak_flops,
                                   "adamw": tt.adamw, "attn_implementation": "sdpa", "autocast": "bfloat16"}
            del tt
            if device == "cuda":
                torch.cuda.empty_cache()
        return out
    stage("torch", 60, torch_stage, "torch")

    def packed_stage():
        cfg = model_cfg(large, dtype, S, smoke)
        host, real = packed_batch(b_big, S, cfg.vocab_size)
        return group(large, b_big, ["best"], host=host, real=real)
    stage(f"{large}_b{b_big}_packed", 60, packed_stage, "packed")
    if not smoke:
        stage(f"{base}_b{b_big}", 60, lambda: group(base, b_big, ["baseline", "best"]), "base")
        stage(f"{base}_b{b_small}", 45, lambda: group(base, b_small, ["baseline", "best"]), "base")

    def flags_stage():
        out = {}
        for name, flags in XLA_FLAG_SETS.items():
            if on_cpu:
                out[name] = {"flags": flags, "skipped": "GPU flags (CPU run)"}
                continue
            if budget.left() < 60:
                out[name] = {"flags": flags, "skipped": "budget"}
                continue
            child = ["--child-settings", json.dumps(best_v), "--rounds", str(rounds),
                     "--steps", str(steps), "--seq", str(S), "--prng", args.prng]
            out[name] = run_flag_child(flags, child, timeout=budget.left() - 10)
        return out
    stage("xla_flags", 60, flags_stage, "xla_flags")
    result["summary"] = summary(result, large, base, batches)
    save()
    print(json.dumps(result, indent=1, default=str))
    return result


def summary(r: dict, large: str, base: str, batches) -> dict:
    s = {}
    for size in (large, base):
        for B in batches:
            g = r.get(f"{size}_b{B}") or {}
            for name, v in g.items():
                if isinstance(v, dict) and "mfu" in v:
                    s[f"{size}_b{B}/{name}"] = round(v["mfu"], 4)
            t = (r.get("torch") or {}).get(f"{size}_b{B}") or {}
            if "mfu" in t:
                s[f"{size}_b{B}/torch"] = round(t["mfu"], 4)
    pk = r.get(f"{large}_b{batches[0]}_packed") or {}
    if "best" in pk and "mfu_real_tokens" in pk["best"]:
        s["packed_mfu_real_tokens"] = round(pk["best"]["mfu_real_tokens"], 4)
    return s


if __name__ == "__main__":
    main()
