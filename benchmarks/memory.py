"""Part `memory`: per-device memory of the compiled train step of XLM-R base and large across
mesh shapes (8 fake CPU devices, abstract inputs), and which TPU generation each fits."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

from benchmarks.common import REPO, make_step

TPU_HBM_GIB = {"v4": 32, "v5e": 16, "v5p": 95, "v6e": 32}
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
    from xtreme_jax import sharding
    from xtreme_jax.models.encoder import preset

    n = math.prod(mesh_shape)
    mesh = sharding.make_mesh(mesh_shape, jax.devices()[:n])
    over = {"dtype": jnp.dtype(dtype), "remat": remat}
    if num_layers:
        over["num_layers"] = num_layers
    if vocab:
        over["vocab_size"] = vocab
    cfg = preset(size, **over)
    setup = make_step(cfg, {"cls": ("classification", 3)}, mesh, total_steps=1000, grad_dtype=grad_dtype,
                      abstract_only=True)
    state, step = setup.state, setup.step("cls")
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
