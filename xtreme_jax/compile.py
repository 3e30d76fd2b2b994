"""AOT-compile a run's programs for a TPU slice, here, without the TPU:

    python -m xtreme_jax.compile --config=configs/stilts.py:model=large --topology=v5e:2x4 \\
        [--mesh=1,8,1] [--only=REGEX] [--workdir=DIR] [--config.a.b=v]

Every program the run would compile (each training phase's step per head and length bucket, the
evaluator's forwards; xtreme_jax.aot.programs_for) is compiled by libtpu for the topology's chips.
Printed and written to DIR/compile.json: per-chip argument / temporary / output bytes against the
chip's HBM, FLOPs and bytes per step, the collectives, the compile time and a roofline lower bound
on the step time. A program that does not fit is an `error:` line (exit 2) with the smallest
change that fits, found by compiling the candidates. Needs libtpu (`pip install -e .[tpu]`).
"""
import dataclasses
import math
import os
import re
import sys

from absl import app, flags
from ml_collections import config_flags



def _define_flags():
    """The command's flags, defined only when it runs as a program: `study plan --compile` imports
    this module as a library beside its own --config."""
    global _CONFIG, _TOPOLOGY, _MESH, _ONLY, _WORKDIR, _PROPOSE
    _CONFIG = config_flags.DEFINE_config_file("config", None, "configs/X.py[:args]", lock_config=False)
    _TOPOLOGY = flags.DEFINE_string("topology", "v5e:2x4",
                                    "TPU slice, e.g. v5e:2x4, v4:2x2x1, v5p:2x2x1, v6e:2x4, v5e:16x16")
    _MESH = flags.DEFINE_string("mesh", "", "(data,fsdp,tensor) as 1,8,1; default: config.mesh")
    _ONLY = flags.DEFINE_string("only", "", "compile only the programs whose name matches this regex")
    _WORKDIR = flags.DEFINE_string("workdir", "", "where compile.json goes (default: print only)")
    _PROPOSE = flags.DEFINE_bool("propose", True, "on a program that does not fit, compile candidate fixes")


NOT_SHOWN = ("a compile does not show the real step time (the roofline is a lower bound: FLOPs at the "
             "bf16 peak or bytes at the HBM bandwidth, whichever is slower, no overlap loss), the time "
             "the collectives take on the ICI links or their contention, the host input speed, or "
             "run-time memory fragmentation")


def gib(b) -> str:
    return "?" if b is None else f"{b / 2 ** 30:.2f}"


def table(rows, chip_name) -> str:
    head = (f"{'program':34s} {'args':>6s} {'temp':>6s} {'out':>6s} {'GiB/chip':>8s} {'fits':>4s} "
            f"{'TFLOP':>7s} {'GB':>7s} {'AG':>4s} {'AR':>3s} {'RS':>3s} {'CP':>4s} {'A2A':>3s} "
            f"{'roofline ms':>11s} {'compile s':>9s}")
    lines = [head]
    for r in rows:
        c = r.get("collectives") or {}
        if "compiler_error" in r:  # refused by XLA:TPU: no memory plan, cost or HLO to report
            lines.append(f"{r['program'][:34]:34s} {'-':>6s} {gib(r.get('temp_bytes')):>6s} {'-':>6s} "
                         f">={gib(r.get('needed_bytes')):>6s} {'NO':>4s}  refused by the compiler: out of HBM"
                         f"{'':>40s}{r['compile_s']:9.1f}")
            continue
        lines.append(
            f"{r['program'][:34]:34s} {gib(r.get('argument_bytes')):>6s} {gib(r.get('temp_bytes')):>6s} "
            f"{gib(r.get('output_bytes')):>6s} {gib(r.get('needed_bytes')):>8s} {'yes' if r['fits'] else 'NO':>4s} "
            f"{r.get('flops', 0) / 1e12:7.3f} {r.get('bytes_accessed', 0) / 1e9:7.2f} "
            f"{c.get('all-gather', 0):4d} {c.get('all-reduce', 0):3d} {c.get('reduce-scatter', 0):3d} "
            f"{c.get('collective-permute', 0):4d} {c.get('all-to-all', 0):3d} "
            f"{1e3 * r.get('roofline_s', 0):11.2f} {r['compile_s']:9.1f}")
    lines.append(f"per chip ({chip_name}); GiB/chip = arguments + temporaries + outputs - aliased (donated) "
                 "+ code; TFLOP / GB per chip per step (compiler cost analysis); AG all-gather, AR all-reduce, "
                 "RS reduce-scatter, CP collective-permute, A2A all-to-all (ops in the HLO, a loop body's once)")
    return "\n".join(lines)


def parse_mesh(text: str):
    try:
        shape = tuple(int(x) for x in text.strip("()[] ").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3:
        from xtreme_jax.aot import CompileError
        raise CompileError(f"--mesh={text!r}: give three sizes (data,fsdp,tensor), e.g. --mesh=1,8,1")
    return shape


def compile_config(config, topology: str, only: str = "", cache=None, log=None) -> dict:
    """{"chip", "mesh", "rows"} of every (matching) program of `config` compiled for `topology`."""
    from xtreme_jax import aot
    chip_name, chip, _ = aot.device_figures(topology)
    mesh = aot.topology_mesh(topology, tuple(config.mesh))
    from xtreme_jax import config as config_lib  # the run's own checks, before any compile
    config_lib.validate(config, mesh.devices.size, len({d.process_index for d in mesh.devices.flat}))
    programs = [p for p in aot.programs_for(config, mesh) if not only or re.search(only, p.name)]
    if not programs:
        raise aot.CompileError(f"--only={only!r} matches no program of this config")
    rows = aot.compile_all(programs, mesh, chip, cache, log)
    return {"chip": chip_name, "mesh": [int(mesh.shape[a]) for a in mesh.axis_names], "rows": rows}


def candidates(config, phase: str, num_chips: int):
    """(override text, config) changes that lower per-chip memory, cheapest in step time first:
    all data-parallel chips into fsdp (more weight gathers, no extra FLOPs), gradient accumulation
    (a smaller per-chip batch), remat (recomputes the forward: ~4/3 the FLOPs), then combinations."""
    data, fsdp, tensor = config.mesh
    dp = num_chips // tensor
    single = []
    if data != 1:
        single.append((f"--config.mesh='(1,{dp},{tensor})'", lambda c: setattr(c, "mesh", (1, dp, tensor))))
    pcfg = config[phase] if phase != "evaluate" else None
    for k in (2, 4, 8):
        acc = (pcfg.accum_steps * k) if pcfg else 0
        if pcfg and pcfg.batch_size % (dp * acc) == 0:
            single.append((f"--config.{phase}.accum_steps={acc}",
                           lambda c, acc=acc: setattr(c[phase], "accum_steps", acc)))
    if not config.model.remat:
        single.insert(1 if data != 1 else 0, ("--config.model.remat=True",
                                              lambda c: setattr(c.model, "remat", True)))
    for text, change in single:
        yield text, [change]
    for i, (t1, c1) in enumerate(single):
        for t2, c2 in single[i + 1:]:
            if t1.split("=")[0] != t2.split("=")[0]:
                yield f"{t1} {t2}", [c1, c2]


def propose(config, topology: str, row: dict, log=None):
    """The first candidate change under which the refused program compiles and fits, or None."""
    from xtreme_jax import aot
    n = len(aot.topology_devices(topology))
    for text, changes in candidates(config, row["phase"], n):
        c = config.copy_and_resolve_references()
        for change in changes:
            change(c)
        only = "^" + re.escape(row["program"].rsplit("/B", 1)[0]) + "/B\\d+xS" + str(row["seq"]) + "$"
        got = compile_config(c, topology, only)["rows"][0]
        if log:
            log(dict(got, program=f"{got['program']} [{text}]"))
        if got["fits"]:
            return text, got
    return None


def refusal(row: dict, chip_name: str, chip, proposal) -> str:
    need = row.get("needed_bytes")
    if "compiler_error" in row:  # XLA:TPU refused it: its temporaries, plus the state it takes
        needs = f"needs at least {gib(need)} GiB per chip" if need else "does not fit (the compiler ran out of HBM)"
        what = (f" (temporaries {gib(row['temp_bytes'])} + state {gib(row['state_bytes'])} GiB; "
                "XLA:TPU refused to compile it)" if need else "")
    else:
        needs = f"needs {gib(need)} GiB per chip"
        what = (f" (arguments {gib(row['argument_bytes'])} + temporaries {gib(row['temp_bytes'])} + outputs "
                f"{gib(row['output_bytes'])} - donated {gib(row['alias_bytes'])} GiB)")
    fix = (f"smallest change that fits (compiled): {proposal[0]} ({gib(proposal[1]['needed_bytes'])} GiB per chip)"
           if proposal else "no single change or pair of the candidates fits; use a bigger slice "
                            "(--topology) or a smaller batch")
    return f"error: program {row['program']} {needs}{what} but a {chip_name} device has {chip.hbm_gib:g} GiB of HBM; {fix}"


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


# Fields of a training phase that only set constants inside its step (the schedule, validation,
# saving, data selection): equal FLOPs, bytes and memory whatever their values, so a plan's points
# that differ only in them share one compile (their StableHLO differs by those constants alone).
CONSTANT_FIELDS = {"num_steps": 1000, "lr": 1e-5, "warmup": 0.1, "eval_every": 0, "eval_examples": 1,
                   "save_every": 1000, "patience": 0, "keep": 1, "log_every": 50}


def costing_phase(pcfg):
    """The phase as its cost depends on it: one task per kind of head (the one with the longest
    max length; heads of one kind differ only in their label count, < 0.01% of a step's FLOPs), the
    constant-only fields at fixed values."""
    import ml_collections as mlc

    from xtreme_jax.tasks import get_task
    rep = {}
    for t in pcfg.tasks:
        task = get_task(t.name)
        length = t.max_length or task.max_length
        if task.kind not in rep or length > rep[task.kind][0]:
            rep[task.kind] = (length, t)
    d = pcfg.to_dict()
    d["tasks"] = [mlc.ConfigDict(dict(rep[k][1].to_dict(), lang="en", split="train", max_examples=0,
                                      fraction=0.0)) for k in sorted(rep)]
    return mlc.ConfigDict(dict(d, **CONSTANT_FIELDS))


def _longest(programs):
    """Per head, the program of the longest bucket (the most memory and FLOPs of its family) and
    how many buckets the family has."""
    by_head = {}
    for p in programs:
        by_head.setdefault(p.meta["head"], []).append(p)
    return [(max(ps, key=lambda p: p.meta["seq"]), len(ps)) for ps in by_head.values()]


def phase_rows(config, name: str, mesh, chip, cache: dict) -> list:
    """Compiled rows of one phase of `config` at its longest buckets, cached by what they depend on:
    the model, the mesh, the buckets and the costing phase (or the evaluate section)."""
    import json

    from xtreme_jax import aot
    from xtreme_jax.trainer import phase_tasks
    model_cfg = aot.model_config(config)
    section = costing_phase(config[name]) if name != "evaluate" else config.evaluate
    described = section.to_dict()
    heads = {}
    if name != "evaluate":
        # a train step depends on its tasks only through each head's kind, size, length and choices:
        # MNLI's step compiled once costs ANLI's (3 labels, 256 tokens) too; rows are renamed below
        tasks = phase_tasks(section)
        heads = {task.kind: head for _, task, head, _ in tasks}
        described["tasks"] = sorted([task.kind, n, t.max_length or task.max_length, task.num_choices]
                                    for t, task, _, n in tasks)
    key = json.dumps([name == "evaluate", dataclasses.asdict(model_cfg), list(mesh.shape.items()), list(config.data.buckets),
                      described], sort_keys=True, default=str)
    if key not in cache:
        programs = (aot.eval_programs(config, model_cfg, mesh) if name == "evaluate"
                    else aot.train_programs(name, section, config, model_cfg, mesh))
        rows = []
        for p, n_buckets in _longest(programs):
            row = aot.compile_all([p], mesh, chip)[0]
            rows.append(dict(row, buckets=n_buckets))
        cache[key] = rows
    if not heads:
        return [dict(r, phase=name) for r in cache[key]]
    named = lambda r: "/".join([name, heads[r["kind"]]] + r["program"].split("/")[2:])  # noqa: E731
    return [dict(r, phase=name, head=heads[r["kind"]], program=named(r)) for r in cache[key]]


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


def costed_flops(row: dict, shape: dict, remat: bool, chips: int) -> tuple[float, str]:
    """(FLOPs per chip a program is costed at, where they come from): the compiled count, or the
    model's own count (6N + 12LSd per token, x 4/3 with remat, a third for a forward; a floor: it
    leaves out heads, embeddings and choices) where XLA's count is lower. XLA:TPU's cost analysis
    counts a collective matmul's looped einsums short: on v5e, where the sharded layers become
    collective-permute loops (480-960 permutes), it reports 16-34% fewer FLOPs than v4 / v5p / v6e
    do for the same step (docs/tpu.md, round 4), and a plan costed on it would be that much low."""
    from xtreme_jax.study.cost import REMAT, flops_per_token
    per_row = row["seq"] * flops_per_token(shape, row["seq"])
    per_row *= (REMAT if remat else 1.0) if row["train"] else 1 / 3
    floor = row["batch"] * per_row / chips
    return (row["flops"], "compiled") if row["flops"] >= floor else (floor, "model (XLA's count is lower)")


def compile_costs(configs, topology: str, mfu: float | None = None, cache: dict | None = None,
                  eval_examples: list | None = None, on_compiled=None) -> list:
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
    `on_compiled(cache, runs_done)`: called after each run whose programs added rows to `cache` (a
    plan that compiles for an hour keeps what it compiled when it is stopped, and says how far it is)."""
    import ml_collections as mlc

    from xtreme_jax import aot
    from xtreme_jax import config as config_lib
    from xtreme_jax.study.cost import phase_buckets, step_ratio, validation_examples
    from xtreme_jax.study.validate import model_shape
    mfu, source = (mfu, "given") if mfu else DEFAULT_MFU
    chip_name, chip, _ = aot.device_figures(topology)
    peak = chip.peak_tflops * 1e12 * mfu
    cache = {} if cache is None else cache
    compiled_before = set()   # program keys an earlier run of this plan compiled
    out = []
    for i, config in enumerate(configs):
        config = config if isinstance(config, mlc.ConfigDict) else mlc.ConfigDict(config)
        mesh = aot.topology_mesh(topology, tuple(config.mesh))
        config_lib.validate(config, mesh.devices.size, len({d.process_index for d in mesh.devices.flat}))
        names = config_lib.phases(config)
        known = len(cache)
        rows = [r for name in names for r in phase_rows(config, name, mesh, chip, cache)]
        if on_compiled and len(cache) > known:
            on_compiled(cache, i + 1)
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


def main(argv):
    del argv
    from xtreme_jax import aot
    from xtreme_jax.config import ConfigError
    config = _CONFIG.value
    if config is None:
        raise app.UsageError("--config is required")
    try:
        if _MESH.value:
            config.mesh = parse_mesh(_MESH.value)
        chip_name, chip, per_chip = aot.device_figures(_TOPOLOGY.value)
        n = len(aot.topology_devices(_TOPOLOGY.value))
        print(f"{_TOPOLOGY.value}: {n // per_chip} {chip_name} chips, {n} devices ({chip.source})", flush=True)
        say = lambda r: print(f"  compiled {r['program']} in {r['compile_s']:.1f} s", flush=True)  # noqa: E731
        result = compile_config(config, _TOPOLOGY.value, _ONLY.value, log=say)
        print(f"mesh (data, fsdp, tensor) = {tuple(result['mesh'])}\n" + table(result["rows"], chip_name))
        print(f"note: {NOT_SHOWN}")
        train = [r for r in result["rows"] if r["train"]]
        data, fsdp, tensor = result["mesh"]
        if train and data > 1 and train[0]["replicated_state_bytes"] > train[0]["state_bytes"] / 2:
            print(f"note: {gib(train[0]['replicated_state_bytes'])} GiB of the train state is whole on every chip "
                  f"(data-parallel mesh): its gradients are all-reduced whole each step (the word embedding's "
                  f"among them); --mesh=1,{data * fsdp},{tensor} shards it over fsdp (docs/tpu.md)")
        from xtreme_jax.study.validate import model_shape
        shape = model_shape(config.to_dict())
        for r in result["rows"]:
            floor = costed_flops(r, shape, bool(config.model.remat), math.prod(result["mesh"])) if "flops" in r else None
            if floor and floor[1] != "compiled":
                print(f"note: {r['program']}: XLA counts {r['flops'] / 1e12:.3g} TFLOP per chip, below the model's "
                      f"own {floor[0] / 1e12:.3g} (its collective matmuls' loops counted short); plans cost it at the latter")
        bad = next((r for r in result["rows"] if not r["fits"]), None)
        proposal = propose(config, _TOPOLOGY.value, bad, say) if bad and _PROPOSE.value else None
        out = {"topology": _TOPOLOGY.value, "chip": chip_name, "chip_figures": chip.__dict__, **result,
               "not_shown": NOT_SHOWN, "refused": refusal(bad, chip_name, chip, proposal) if bad else None}
        if _WORKDIR.value:
            from xtreme_jax.files import write_json
            write_json(os.path.join(_WORKDIR.value, "compile.json"), out)
            print(f"written to {os.path.join(_WORKDIR.value, 'compile.json')}")
        if bad:
            print(out["refused"], file=sys.stderr)
            sys.exit(2)
    except (aot.CompileError, ConfigError, ValueError) as e:
        print(f"error: {(str(e).splitlines() or [''])[0]}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    # No TPU is here: keep jax on the CPU (libtpu then only compiles) and libtpu quiet.
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from xtreme_jax.aot import quiet_libtpu
    quiet_libtpu()
    _define_flags()
    app.run(main)
