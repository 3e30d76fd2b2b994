"""Part `compile`: compiled shapes per phase over realistic bucketed streams, recompiles after
warm-up, and the first step's latency with a cold and a warm persistent compilation cache."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks.common import REPO, JaxTrainer, model_config
from benchmarks.synthetic import padded_batch, sample_lengths, synthetic_features

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


def first_step_child(args) -> dict:
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
