"""A study plan's runs costed from what XLA:TPU compiles for them (xtreme_jax.compile's rows):
the training steps, validation and test-set forwards at a stated MFU of the chip's bf16 peak, and
a fixed cost per run (start-up, compiles, tokenizing, checkpoint saves). Kept apart from the
compiler: the rows a plan keeps (study plan --compile) stay valid while only this arithmetic
changes."""
import dataclasses

from xtreme_jax.compile import phase_rows, propose, refusal
from xtreme_jax.study.cost import costed_flops

# MFU a compiled step is costed at: the best measured full-scale figure, XLM-R large B=256 S=128
# bf16 on an H100 (docs/benchmarks.md "H100: measured", 31.9%); MaxText reports 50-70% on TPUs
# for decoder LMs, an encoder fine-tune with small batches reaches less. Override with mfu=.
DEFAULT_MFU = (0.319, "measured: XLM-R large B=256 S=128 bf16 on an H100, 31.9% MFU (docs/benchmarks.md)")
# Fixed cost of a run besides its steps (assumptions, stated, not measured on a TPU): process
# start, imports and jax.distributed init; each checkpoint save at 1 GB/s per host to GCS.
STARTUP_S, CHECKPOINT_GBPS = 60.0, 1.0
# Tokenizing a run's examples (the feature cache is per run: <workdir>/cache), examples per
# second: XLM-R's sentencepiece through the run's featurizers on this CPU, `python
# tools/featurize_rate.py` (idle, load 1.2): XQuAD test.en 2161, TyDiQA dev.en 2275 (long
# contexts in doc-stride windows), CosmosQA 1669 and SIQA 4813 (4 / 3 choices), PAWS-X 8705,
# UD-POS 10279, PAN-X 13535, XNLI 17606, SST-2 31942; each kind at its slowest measured set.
FEATURIZE_PER_S = {"span": 2161.0, "multiple_choice": 1669.0, "other": 8705.0}

def featurize_s(kind: str, examples: float) -> float:
    return examples / FEATURIZE_PER_S.get(kind, FEATURIZE_PER_S["other"])


# Fields that never reach a step's program (validation, saving, logging; which examples, in which
# language, with which weight): two phases equal but for them run the same compiled programs.
HOST_FIELDS = ("eval_every", "eval_examples", "save_every", "patience", "keep", "log_every")
HOST_TASK_FIELDS = ("lang", "split", "max_examples", "fraction", "weight", "source")


def program_keys(config, name: str) -> list:
    """(key, family) of each program a run of `config` compiles in phase `name` (family: the head's
    kind for a train step, the task for an evaluator forward, as phase_rows' rows are keyed): equal
    keys are equal programs (one compile, then persistent-cache hits). A train step depends on the
    model, the mesh, the buckets, the optimizer and schedule (their constants are compiled in: lr,
    steps, warmup) and its head; an evaluator forward on the evaluate section and its task."""
    import json

    from xtreme_jax import aot
    from xtreme_jax.trainer import phase_tasks
    base = [dataclasses.asdict(aot.model_config(config)), list(config.mesh), list(config.data.buckets), name]
    if name == "evaluate":
        section = config.evaluate.to_dict()
        return [(json.dumps(base + [section, t.name], sort_keys=True, default=str), t.name)
                for t in config.evaluate.tasks]
    pcfg = config[name]
    section = {k: v for k, v in pcfg.to_dict().items() if k not in HOST_FIELDS + ("tasks",)}
    out = []
    for t, task, head, n in phase_tasks(pcfg):
        entry = {k: v for k, v in t.to_dict().items() if k not in HOST_TASK_FIELDS}
        out.append((json.dumps(base + [section, entry, n], sort_keys=True, default=str), task.kind))
    return out


def compile_costs(configs, topology: str, mfu: float | None = None, cache: dict | None = None,
                  eval_examples: list | None = None, compiled: dict | None = None, on_compiled=None) -> list:
    """For each run config (a ConfigDict or its dict) of a plan, in the order they run:
    {"fits", "refused" (the error line or None), "seconds", "steps_s", "steps_longest_s",
    "validation_s", "eval_s", "fixed_s", "fixed_nocache_s", "fixed": {start-up, compiles, data,
    checkpoints}, "phases": {phase: {"steps", "step_s", "bucket_mix", "program",
    "tflop_per_chip", "flops_from"}}, "mfu", "mfu_source", "programs"}.

    Compiled: each phase at its longest length bucket, once per distinct costing_phase (`cache`,
    shared by the calls of a plan). Costed at `mfu` of the bf16 peak: the training steps at the
    longest bucket's compiled FLOPs times the phase's measured bucket mix (study/cost.step_ratio:
    the mean step's FLOPs over the longest bucket's, 1 for a task whose lengths were not measured;
    "steps_longest_s" without it, the upper bound), every validation forward at 1/3 of a step
    (1/4 with remat: the FLOP ratios), every test batch at its task's compiled forward times its
    bucket mix (`eval_examples`: per run, {task: examples}; none: not costed). The fixed cost: start-up, compiles, tokenizing the examples, checkpoint
    saves. Compiles: every program (head x bucket) is charged its family's compile time measured
    here, once per plan — the first run that needs it compiles it, a later one traces and lowers
    it (the lowering time measured here) and loads it from the persistent compilation cache, as
    runs do on one host (xtreme_jax.main's cache) or several sharing JAX_COMPILATION_CACHE_DIR on
    GCS; "fixed_nocache_s" is the same with every run compiling all of its programs.
    `compiled`: fingerprint -> row of the programs compiled so far (aot.compile_all's cache; a
    plan keeps it between plans). `on_compiled(compiled, runs_done)`: called after each run that
    compiled a program (a plan that compiles for an hour keeps what it compiled when it is
    stopped, and says how far it is)."""
    import ml_collections as mlc

    from xtreme_jax import aot
    from xtreme_jax import config as config_lib
    from xtreme_jax.study.cost import phase_buckets, step_ratio, validation_examples
    from xtreme_jax.study.validate import model_shape
    mfu, source = (mfu, "given") if mfu else DEFAULT_MFU
    chip_name, chip, _ = aot.device_figures(topology)
    peak = chip.peak_tflops * 1e12 * mfu
    cache = {} if cache is None else cache
    compiled = {} if compiled is None else compiled
    compiled_before = set()   # program keys an earlier run of this plan compiled
    out = []
    for i, config in enumerate(configs):
        config = config if isinstance(config, mlc.ConfigDict) else mlc.ConfigDict(config)
        mesh = aot.topology_mesh(topology, tuple(config.mesh))
        config_lib.validate(config, mesh.devices.size, len({d.process_index for d in mesh.devices.flat}))
        names = config_lib.phases(config)
        known = len(compiled)
        rows = [r for name in names for r in phase_rows(config, name, topology, mesh, chip, cache, compiled)]
        if on_compiled and len(compiled) > known:
            on_compiled(compiled, i + 1)
        bad = next((r for r in rows if not r["fits"]), None)
        phases, steps_s, validation_s, eval_s = {}, 0.0, 0.0, 0.0
        as_dict = config.to_dict()
        shape = model_shape(as_dict)
        for r in rows:
            if not r["train"] or not r["fits"]:
                continue
            p = phases.get(r["phase"])
            if p is None or r["seq"] > p["seq"]:
                flops, by = costed_flops(r, shape, bool(config.model.remat), mesh.devices.size)
                phases[r["phase"]] = {"steps": int(config[r["phase"]].num_steps), "seq": r["seq"],
                                      "program": r["program"], "tflop_per_chip": flops / 1e12,
                                      "flops_from": by, "step_s": flops / peak}
        longest_s = 0.0
        for name, p in phases.items():
            pcfg = config[name]
            # the steps over the tasks' measured length-bucket mix, FLOP-scaled from the longest
            # bucket's compiled step (study/cost.step_ratio); "steps_longest_s": all at the longest
            p["bucket_mix"] = step_ratio(shape, [t.name for t in pcfg.tasks], phase_buckets(as_dict, name))
            steps_s += p["steps"] * p["step_s"] * p["bucket_mix"]
            longest_s += p["steps"] * p["step_s"]
            forward = p["step_s"] * p["bucket_mix"] / (4 if config.model.remat else 3)
            validation_s += validation_examples(pcfg.to_dict()) / pcfg.batch_size * forward
        counts = (eval_examples[i] if eval_examples else None) or {}
        for r in rows:
            if r["phase"] == "evaluate" and r["fits"] and r["head"] in counts:
                eval_buckets = tuple(sorted({b for b in (config.evaluate.get("buckets") or config.data.buckets)
                                             if b < r["seq"]} | {r["seq"]}))
                eval_s += (-(-counts[r["head"]] // r["batch"]) * costed_flops(r, shape, False, mesh.devices.size)[0] / peak
                           * step_ratio(shape, [r["head"]], eval_buckets))
        # compiles: each program family's row (by head kind for training, by task for evaluate)
        compile_s = nocache_s = 0.0
        for name in names:
            by = {r["kind"] if name != "evaluate" else r["head"]: r for r in rows if r["phase"] == name}
            for key, family in program_keys(config, name):
                r = by[family]
                cold = (r.get("lower_s", 0.0) + r["compile_s"]) * r["buckets"]
                nocache_s += cold
                compile_s += cold if key not in compiled_before else r.get("lower_s", 0.0) * r["buckets"]
                compiled_before.add(key)
        # the examples the run draws, validates on and tests on (a subsampled phase tokenizes its
        # whole split: an undercount there); a phase at its slowest kind's rate
        slowest = lambda n: min((r["kind"] for r in rows if r["phase"] == n),  # noqa: E731
                                key=lambda k: FEATURIZE_PER_S.get(k, FEATURIZE_PER_S["other"]))
        data_s = sum(featurize_s(slowest(n), int(config[n].num_steps) * int(config[n].batch_size)
                                 + validation_examples(config[n].to_dict())) for n in phases)
        data_s += sum(featurize_s(r["kind"], counts.get(r["head"], 0)) for r in rows if r["phase"] == "evaluate")
        saves = sum(-(-int(config[n].num_steps) // int(config[n].save_every)) + 1 for n in phases)
        state = max((r["state_bytes"] for r in rows if r["train"]), default=0)
        fixed = {"startup_s": STARTUP_S, "compile_s": compile_s, "compile_nocache_s": nocache_s,
                 "data_s": data_s,
                 "checkpoint_s": saves * state * len(aot.topology_devices(topology)) / (CHECKPOINT_GBPS * 1e9)}
        fixed_s = fixed["startup_s"] + compile_s + fixed["data_s"] + fixed["checkpoint_s"]
        # A run that does not fit is refused with the smallest change that does, compiled.
        refused = refusal(bad, chip_name, chip, propose(config, topology, bad)) if bad else None
        out.append({"fits": bad is None, "refused": refused,
                    "seconds": steps_s + validation_s + eval_s + fixed_s, "steps_s": steps_s,
                    "steps_longest_s": longest_s,
                    "validation_s": validation_s, "eval_s": eval_s, "fixed_s": fixed_s,
                    "fixed_nocache_s": fixed_s - compile_s + nocache_s, "fixed": fixed, "phases": phases,
                    "eval_costed": bool(counts), "mfu": mfu, "mfu_source": source, "programs": rows})
    return out
