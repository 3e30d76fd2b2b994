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
    rows = aot.compile_all(programs, mesh, chip, cache, log, rebuild=(topology, aot.programs_for, (config,)))
    return {"chip": chip_name, "mesh": list(aot.mesh_shape(mesh)), "rows": rows}


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


def phase_programs(config, name: str, mesh) -> list:
    """The programs of one phase as it is costed (costing_phase), or the evaluator's."""
    from xtreme_jax import aot
    model_cfg = aot.model_config(config)
    if name == "evaluate":
        return aot.eval_programs(config, model_cfg, mesh)
    return aot.train_programs(name, costing_phase(config[name]), config, model_cfg, mesh)


def phase_rows(config, name: str, topology: str, mesh, chip, cache: dict, compiled: dict | None = None) -> list:
    """Compiled rows of one phase of `config` at its longest buckets, cached by what they depend on:
    the model, the mesh, the buckets and the costing phase (or the evaluate section); `compiled`:
    aot.compile_all's fingerprint -> row cache (a program compiled before is only lowered)."""
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
        rows = []
        for p, n_buckets in _longest(phase_programs(config, name, mesh)):
            row = aot.compile_all([p], mesh, chip, cache=compiled, rebuild=(topology, phase_programs, (config, name)))[0]
            rows.append(dict(row, buckets=n_buckets))
        cache[key] = rows
    if not heads:
        return [dict(r, phase=name) for r in cache[key]]
    named = lambda r: "/".join([name, heads[r["kind"]]] + r["program"].split("/")[2:])  # noqa: E731
    return [dict(r, phase=name, head=heads[r["kind"]], program=named(r)) for r in cache[key]]


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
        from xtreme_jax.study.cost import costed_flops
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
