"""Issue 16 measurements: waste removed from the train step, each as a ratio of contenders
interleaved round by round in one process (medians of the per-round ratios).

    python -m benchmarks.perf --what mlm,optimizer [--layers L] [--batch B] [--rounds R] --out F.json

  mlm        the MLM train step with the head at the masked positions only (a static
             `heads.max_masked` count) against the same step computing the 250k-vocabulary
             logits at every position (`head_options={"dense": True}`); MFU of each with the FLOPs
             it computes (`metrics.flops_per_token(kind="mlm", predicted_fraction=...)`) against
             the faster of XLA's and PyTorch's fp32 GEMM, measured in the same rounds.
  optimizer  the classification step as it is (guard "auto": lax.cond on CPU, one shared global
             norm, the divide folded into the loss), the same with the select guard (the GPU
             choice), and the pre-issue-16 step (`legacy_train_step`: lax.cond whose branch
             recomputes the clipping norm, separate divide pass); and the share of the step spent on
             the dense zero-filled word-embedding gradient and its AdamW update (the same ops on
             a [V, d] table, timed alone in the same rounds).

Every JSON records the CPU model and flags, XLA_FLAGS, versions and `uptime` before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from benchmarks.common import cfg_dict, interleave, make_matmul, make_step, med
from benchmarks.machine import machine_info, torch_threads_passive, uptime, write_json
from benchmarks.synthetic import padded_batch, sample_lengths
from benchmarks.torch_ref import make_torch_matmul


def _gemms(rounds_contenders: dict, n: int = 2048):
    """Adds XLA's and PyTorch's fp32 n^3 GEMM (FLOP/s) to the contenders of a CPU run."""
    rounds_contenders["gemm_xla"] = make_matmul(n, np.float32)
    try:
        rounds_contenders["gemm_torch"] = make_torch_matmul(n, os.cpu_count())
    except ImportError:
        pass


def _best_gemm(res: dict) -> list:
    return [max(x) for x in zip(*[res[k] for k in ("gemm_xla", "gemm_torch") if k in res])]


def _cfg(args, **over):
    from xtreme_jax.models.encoder import preset
    over = dict(hidden_dropout=args.dropout, attention_dropout=args.dropout, **over)
    if args.layers:
        over["num_layers"] = args.layers
    if args.vocab:
        over["vocab_size"] = args.vocab
    return preset(args.size, **over)


def _setup(cfg, heads):
    from xtreme_jax import sharding
    mesh = sharding.make_mesh((-1, 1, 1))
    return mesh, make_step(cfg, heads, mesh)


class Stepper:
    """A jitted step and its state, stepped k times per call (one block at the end)."""

    def __init__(self, step, state, batch):
        import jax
        self.step, self.state, self.batch, self.n = step, state, batch, 0
        self.key = jax.random.key(0)

    def __call__(self, k: int = 1) -> float:
        import jax
        jax.block_until_ready(self.state)
        t = time.perf_counter()
        for _ in range(k):
            self.state, m = self.step(self.state, self.batch, jax.random.fold_in(self.key, self.n))
            self.n += 1
        jax.block_until_ready((self.state, m))
        self.metrics = m
        return (time.perf_counter() - t) / k


# ============================================================================ MLM head

def bench_mlm(args) -> dict:
    from xtreme_jax import sharding
    from xtreme_jax.data.batching import apply_mlm_mask
    from xtreme_jax.metrics import flops_per_token
    from xtreme_jax.models.heads import max_masked

    cfg = _cfg(args)
    B, S = args.batch, args.seq
    rng = np.random.default_rng(0)
    ids = rng.integers(5, cfg.vocab_size, (B, S)).astype(np.int32)
    ids[:, 0], ids[:, -1] = 0, 2
    meta = {"vocab_size": cfg.vocab_size, "special_ids": [0, 1, 2, 3, 4], "mask_id": 4}
    host = apply_mlm_mask(dict(input_ids=ids, attention_mask=np.ones_like(ids)), meta, rng, 0.15)
    steppers = {}
    for name, opts in (("gathered", None), ("dense", {"dense": True})):
        mesh, setup = _setup(cfg, {"mlm": ("mlm", 2)})
        step = setup.step("mlm", head_options=opts)
        steppers[name] = Stepper(step, setup.state, sharding.device_batch(host, mesh))
        t = time.perf_counter()
        steppers[name](1)
        print(f"[perf mlm] {name}: first step (compile + run) {time.perf_counter() - t:.1f}s",
              file=sys.stderr, flush=True)
    losses = {n: float(s.metrics["loss"]) for n, s in steppers.items()}
    contenders = {n: (lambda s=s: s(1)) for n, s in steppers.items()}
    _gemms(contenders)
    res = interleave(contenders, args.rounds)
    k = max_masked(B * S)
    frac = {"gathered": k / (B * S), "dense": 1.0}
    gemm = _best_gemm(res)
    out = {"config": cfg_dict(cfg), "batch": B, "seq": S, "masked_tokens": int((host["labels"] >= 0).sum()),
           "computed_positions": {"gathered": k, "dense": B * S}, "first_step_losses": losses,
           "rounds": args.rounds}
    for n in steppers:
        fl = flops_per_token(cfg, S, kind="mlm", predicted_fraction=frac[n]) * B * S
        out[n] = {"step_s": med(res[n]), "per_round_s": res[n], "flops_per_step": fl,
                  "tokens_per_s": B * S / med(res[n]),
                  "mfu_vs_best_gemm": med([fl / t / p for t, p in zip(res[n], gemm)])}
    out["speedup_gathered_vs_dense"] = med([d / g for d, g in zip(res["dense"], res["gathered"])])
    out["gemm_flops_per_s"] = {k_: med(res[k_]) for k_ in ("gemm_xla", "gemm_torch") if k_ in res}
    return out


# ============================================================================ optimizer passes

def legacy_train_step(graphdef, shardings, task, schedule=None):
    """The train step before issue 16 (accumulation 1), for the comparison only: gradients of
    the summed loss divided in a separate pass, the update inside a lax.cond non-finite guard
    (whose branch recomputes the clipping's global norm)."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx
    from xtreme_jax.sharding import DEFAULT_RULES

    def step_fn(state, batch, rng):
        ts = nnx.merge(graphdef, state)
        model_def, params, rest = nnx.split(ts.model, nnx.Param, ...)

        def summed_loss(p):
            _, (total, count) = nnx.merge(model_def, p, rest).loss(task, batch, rng)
            return total, count
        (total, count), grads = jax.value_and_grad(summed_loss, has_aux=True)(params)
        denom = jnp.maximum(count, 1).astype(jnp.float32)
        grads = jax.tree.map(lambda g: (g / denom).astype(jnp.float32), grads)
        loss = total / denom
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

        def apply(s):
            t = nnx.merge(graphdef, s)
            t.opt.update(t.model, grads)
            return nnx.state(t)
        new = jax.lax.cond(finite, apply, lambda s: s, state)
        new = jax.lax.with_sharding_constraint(new, shardings)
        return new, dict(loss=loss, grad_norm=grad_norm, finite=finite)

    mesh = jax.tree.leaves(shardings)[0].mesh

    def step(state, batch, rng):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh), nnx.logical_axis_rules(DEFAULT_RULES):
            return step_fn(state, batch, rng)
    return jax.jit(step, donate_argnums=(0,), out_shardings=(shardings, None))


def embedding_share_kernel(vocab: int, d: int, batch: int, seq: int):
    """The word embedding's part of a step, alone: its gradient (a zero-filled [V, d] table,
    scatter-added at the batch's ids), its sum of squares for the global norm, and the AdamW
    update of the table and its two moments (donated, as in the step)."""
    import jax
    import jax.numpy as jnp
    k = jax.random.key(1)
    table = jax.random.normal(k, (vocab, d), jnp.float32) * 0.02
    mu, nu = jnp.zeros_like(table), jnp.zeros_like(table)
    ids = jax.random.randint(k, (batch, seq), 5, vocab)
    rows = jax.random.normal(k, (batch, seq, d), jnp.float32) * 1e-3

    def f(p, m, v, ids, rows):
        g = jnp.zeros_like(p).at[ids.reshape(-1)].add(rows.reshape(-1, d))
        scale = jnp.minimum(1.0, 1.0 / jnp.sqrt(jnp.sum(g * g) + 1e-12))
        g = g * scale
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        p = p - 1e-5 * (m / 0.1 / (jnp.sqrt(v / 0.001) + 1e-8) + 0.01 * p)
        return p, m, v
    f = jax.jit(f, donate_argnums=(0, 1, 2))
    st = [table, mu, nu]

    def run():
        t = time.perf_counter()
        st[:] = f(*st, ids, rows)
        jax.block_until_ready(st)
        return time.perf_counter() - t
    run()
    return run


def bench_optimizer(args) -> dict:
    from xtreme_jax import sharding

    cfg = _cfg(args)
    B, S = args.batch, args.seq
    host = padded_batch(sample_lengths("xnli", B, S, seed=1), S, cfg.vocab_size)
    steppers = {}
    for name in ("current", "select", "legacy"):
        mesh, setup = _setup(cfg, {"cls": ("classification", 3)})
        step = (legacy_train_step(setup.graphdef, setup.shardings, "cls", setup.schedule) if name == "legacy"
                else setup.step("cls", guard="auto" if name == "current" else "select"))
        steppers[name] = Stepper(step, setup.state, sharding.device_batch(host, mesh))
        steppers[name](1)
    contenders = {n: (lambda s=s: s(1)) for n, s in steppers.items()}
    contenders["embedding_share"] = embedding_share_kernel(cfg.vocab_size, cfg.hidden_size, B, S)
    res = interleave(contenders, args.rounds)
    return {"config": cfg_dict(cfg), "batch": B, "seq": S, "rounds": args.rounds,
            "step_s": {n: med(res[n]) for n in res}, "per_round_s": res,
            "speedup_current_vs_legacy": med([lg / c for lg, c in zip(res["legacy"], res["current"])]),
            "speedup_select_vs_legacy": med([lg / c for lg, c in zip(res["legacy"], res["select"])]),
            "embedding_share_of_step": med([e / c for e, c in zip(res["embedding_share"], res["current"])])}


# ============================================================================ CLI

PARTS = {"mlm": bench_mlm, "optimizer": bench_optimizer}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.perf", description=__doc__.split("\n\n")[0])
    ap.add_argument("--what", default="mlm,optimizer", help="comma-separated: " + ",".join(PARTS))
    ap.add_argument("--size", default="base")
    ap.add_argument("--layers", type=int, default=0, help="0 = the preset's")
    ap.add_argument("--vocab", type=int, default=0, help="0 = the preset's (250,002)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    torch_threads_passive()
    args = parse_args(argv)
    result = {"command": " ".join(["python -m benchmarks.perf"] + (argv if argv is not None else sys.argv[1:])),
              "machine": machine_info()}
    for part in [p for p in args.what.split(",") if p]:
        if part not in PARTS:
            raise SystemExit(f"error: --what {part!r}; choose from {','.join(PARTS)}")
        t = time.perf_counter()
        result[part] = PARTS[part](args)
        result[part]["part_wall_s"] = time.perf_counter() - t
        result["machine"]["uptime_end"] = uptime()
        if args.out:
            write_json(args.out, result)
    print(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
