"""What the benchmark parts share: interleaved timing, the machine, the measured matmul peak,
the encoder config from the CLI, and the one assembly of optimizer + state + step (make_step)."""
from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
from typing import Any

from xtreme_jax import metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # children run -m benchmarks.bench


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


# ============================================================================ the step

def make_step(cfg, heads: dict, mesh, *, lr: float = 1e-5, total_steps: int = 10 ** 6, warmup: float = 0.1,
              rows: bool = False, grad_dtype=None, abstract_only: bool = False) -> "TrainSetup":
    """The optimizer, the train state and the step, built by the runs' own
    xtreme_jax.trainer.build_steps from a phase config with the schema's defaults (so a benchmark
    times the step a run takes); `abstract_only`: shapes and shardings, no arrays."""
    from xtreme_jax import config as config_lib
    from xtreme_jax.trainer import build_steps
    pcfg = config_lib.train_phase(lr=lr, num_steps=total_steps, warmup=warmup,
                                  embedding_update="rows" if rows else "dense")
    return TrainSetup(build_steps(pcfg, cfg, mesh, heads, abstract_only=abstract_only), grad_dtype)


@dataclasses.dataclass
class TrainSetup:
    """make_step's StepParts and the gradient dtype the benchmark asked for."""
    parts: Any
    grad_dtype: Any = None

    def __getattr__(self, name):  # graphdef, state, shardings, schedule, row_update
        if name == "parts":
            raise AttributeError(name)
        return getattr(self.parts, name)

    def step(self, head: str, *, guard: str = "auto", head_options: dict | None = None):
        """A new jitted, donated step(state, batch, rng) -> (state, metrics) for `head`."""
        return self.parts.step(head, grad_dtype=self.grad_dtype, guard=guard, head_options=head_options)


class JaxTrainer:
    """make_step's state and one step per head on a mesh over all local devices (data parallel),
    stepped with a fresh dropout key each step."""

    def __init__(self, cfg, heads: dict, mesh=None, grad_dtype=None, lr=1e-5, rows: bool = False):
        import jax
        from xtreme_jax import sharding
        self.mesh = mesh or sharding.make_mesh((-1, 1, 1))
        setup = make_step(cfg, heads, self.mesh, lr=lr, rows=rows, grad_dtype=grad_dtype)
        self.graphdef, self.state, self.shardings = setup.graphdef, setup.state, setup.shardings
        self.new_step = setup.step   # head -> a new jitted step (a fresh compilation cache)
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
