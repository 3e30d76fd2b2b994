"""Part `host`: host overhead per step, the real loop's wall time minus the step's device time."""
from __future__ import annotations

import time

from benchmarks.common import JaxTrainer, interleave, med, model_config
from benchmarks.synthetic import sample_lengths, synthetic_features


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
