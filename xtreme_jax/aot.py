"""Ahead-of-time compilation of a run's programs for a TPU slice that is not here.

libtpu (PyPI `jax[tpu]`) compiles for a described topology without the hardware:
`jax.experimental.topologies.get_topology_desc("tpu", "v5e:2x4")` gives its devices (all hosts of a
multi-host slice), a mesh over them is built as the run builds its own, and
`jit(...).lower(abstract args).compile()` returns the compiler's memory plan, cost analysis and
HLO. `programs_for` builds the programs of a run through the same functions the run calls
(trainer.build_steps: optim.make_optimizer -> train_step.create_state -> make_train_step; the
evaluate phase: evaluation.Evaluator's forward), so what is compiled here is what the run jits.

What a compile does not show: the real step time (the roofline is a lower bound: FLOPs at the
bf16 peak, bytes at the HBM bandwidth, never both overlapped perfectly), host input speed, ICI
contention and the time the collectives take, nor memory fragmentation at run time.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
import time

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from xtreme_jax import config as config_lib
from xtreme_jax import sharding, train_step
from xtreme_jax.trainer import build_steps, phase_heads, phase_tasks
from xtreme_jax.context import DTYPES, source
from xtreme_jax.data.batching import resolve_buckets
from xtreme_jax.models import encoder as enc_lib
from xtreme_jax.models import hf as hf_lib
from xtreme_jax.models.hub import hub_config
from xtreme_jax.tasks import get_task

GiB = 2 ** 30


@dataclasses.dataclass(frozen=True)
class Chip:
    hbm_gib: float       # HBM per chip
    peak_tflops: float   # bf16 dense peak per chip
    hbm_gbps: float      # HBM bandwidth per chip, GB/s (1e9)
    source: str


# Google's published per-chip figures (Cloud TPU system-architecture pages, one per generation).
CHIPS = {
    "v4": Chip(32, 275, 1228, "cloud.google.com/tpu/docs/v4: 32 GiB HBM2, 1228 GB/s, 275 TFLOP/s bf16"),
    "v5e": Chip(16, 197, 819, "cloud.google.com/tpu/docs/v5e: 16 GiB HBM2, 819 GB/s, 197 TFLOP/s bf16"),
    "v5p": Chip(95, 459, 2765, "cloud.google.com/tpu/docs/v5p: 95 GiB HBM2e, 2765 GB/s, 459 TFLOP/s bf16"),
    "v6e": Chip(32, 918, 1640, "cloud.google.com/tpu/docs/v6e: 32 GiB HBM, 1640 GB/s, 918 TFLOP/s bf16"),
}
# Collective ops in optimized TPU HLO. XLA:TPU writes a reduce-scatter as a fusion calling an
# `all-reduce-scatter` computation (an all-reduce + dynamic-slice inside it: counted as one
# reduce-scatter, its inner all-reduce not counted), and a reduce-scatter (or all-gather) fused
# with a matmul ("collective matmul") as a ring of collective-permutes, one per step.
COLLECTIVES = ("all-gather", "all-reduce", "reduce-scatter", "collective-permute", "all-to-all")
_OP_RE = re.compile(r"= .*?\b(" + "|".join(COLLECTIVES) + r")(?:-start)?\(")
_COMPUTATION_RE = re.compile(r"^(?:ENTRY )?%(\S+) \(")
_CHANNEL_RE = re.compile(r"channel_id=(\d+)")


class CompileError(ValueError):
    """Bad input to the compiler (unknown topology, a mesh that does not fit it): one error line."""


def chip_of(topology: str) -> tuple[str, Chip]:
    name = topology.split(":", 1)[0].lower()
    if name not in CHIPS:
        raise CompileError(f"--topology={topology!r}: unknown TPU generation {name!r}; choose one of "
                           f"{', '.join(CHIPS)}, e.g. v5e:2x4 (2D) or v4:2x2x1 (3D)")
    return name, CHIPS[name]


def device_figures(topology: str) -> tuple[str, Chip, int]:
    """(generation, figures per jax device, devices per chip). The v4 descriptor lists each of a
    chip's two TensorCores as a device (no megacore): its HBM, peak and bandwidth are then halved."""
    name, chip = chip_of(topology)
    dims = topology.split(":", 1)[1] if ":" in topology else ""
    chips = math.prod(int(x) for x in dims.split("x")) if re.fullmatch(r"\d+(x\d+)*", dims) else 0
    k = max(1, len(topology_devices(topology)) // chips) if chips else 1
    if k == 1:
        return name, chip, 1
    return name, Chip(chip.hbm_gib / k, chip.peak_tflops / k, chip.hbm_gbps / k,
                      f"{chip.source}; per TensorCore (1/{k} of a chip: the descriptor lists cores)"), k


def quiet_libtpu():
    """libtpu looks for a TPU VM's metadata at start-up and warns when there is none."""
    os.environ.setdefault("TPU_ACCELERATOR_TYPE", "v5litepod-4")
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
    # Compiling only: several processes (test workers, a study plan beside a compile) may load it.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")


def topology_devices(topology: str) -> list:
    """The devices of a TPU slice, e.g. "v5e:2x4" (8 chips) or "v5e:16x16" (256 chips, 64 hosts)."""
    name, _ = chip_of(topology)
    quiet_libtpu()
    from jax.experimental import topologies
    # v4's two TensorCores act as one device ("megacore"), as on a v4 VM; the default descriptor
    # lists each core, and jax.make_mesh refuses those (MaxText's train_compile passes it too).
    extra = {"chip_config_name": "megacore"} if name == "v4" else {}
    try:
        return list(topologies.get_topology_desc(platform="tpu", topology_name=topology, **extra).devices)
    except Exception as e:  # noqa: BLE001  libtpu missing, or a shape it does not know
        first = (str(e).splitlines() or [""])[0][:300]
        raise CompileError(f"--topology={topology!r}: libtpu cannot describe it ({type(e).__name__}: {first}); "
                           "install libtpu (pip install 'jax[tpu]>=0.10,<0.11') and use a slice shape "
                           "such as v5e:2x4, v4:2x2x1, v5p:2x2x1, v6e:2x4") from None


def topology_mesh(topology: str, mesh_shape) -> jax.sharding.Mesh:
    devices = topology_devices(topology)
    try:
        return sharding.make_mesh(tuple(mesh_shape), devices)
    except ValueError as e:
        raise CompileError(f"{e} (topology {topology} has {len(devices)} chips)") from None


# ------------------------------------------------------------------------------------- programs
@dataclasses.dataclass
class Program:
    name: str          # e.g. "target/xnli/B32xS128" or "evaluate/xnli/B64xS64"
    fn: object         # the jitted function the run calls
    args: tuple        # abstract arguments (ShapeDtypeStructs with shardings)
    meta: dict         # phase, head / task, kind, batch, seq, ... (for tables and proposals)

    def lower(self, mesh):
        with jax.set_mesh(mesh):
            return self.fn.lower(*self.args)


def model_config(config) -> enc_lib.EncoderConfig:
    """The run's EncoderConfig without its tokenizer or weights (context.build_context reads them):
    a local HF checkpoint's config.json, a hub id's from models/hub.py, else the size preset."""
    m = config.model
    drop = dict(hidden_dropout=m.dropout, attention_dropout=m.dropout, dtype=DTYPES[m.dtype], remat=m.remat)
    name = m.pretrained
    if name and os.path.isfile(os.path.join(name, "config.json")):
        return hf_lib.config_from_hf(hf_lib.read_config(name)).replace(**drop)
    if name:
        hf = hub_config(name)
        if hf is None:
            raise CompileError(f"config.model.pretrained={name!r}: not a local HF directory nor a hub id of "
                               "xtreme_jax/models/hub.py; point it at a directory holding config.json")
        return hf_lib.config_from_hf(hf).replace(**drop)
    cfg = enc_lib.preset(m.size, **drop)
    return cfg.replace(vocab_size=m.vocab_size or cfg.vocab_size)


def _spec(mesh, shape, dtype=jnp.int32):
    rows = P(("data", "fsdp"), *([None] * (len(shape) - 1)))
    return jax.ShapeDtypeStruct(shape, dtype, sharding=NamedSharding(mesh, rows))


def batch_spec(mesh, kind: str, batch: int, seq: int, num_choices: int = 0, labels: bool = True) -> dict:
    """The abstract global batch a kind's iterator yields (data.batching.assemble's contract)."""
    rows = (batch, num_choices, seq) if kind == "multiple_choice" else (batch, seq)
    out = {k: _spec(mesh, rows) for k in ("input_ids", "attention_mask", "token_type_ids")}
    if kind == "retrieval":
        del out["token_type_ids"]
    if labels and kind in ("classification", "multiple_choice"):
        out["labels"] = _spec(mesh, (batch,))
    elif labels and kind in ("tagging", "mlm"):
        out["labels"] = _spec(mesh, (batch, seq))
    elif labels and kind == "span":
        out["start_positions"], out["end_positions"] = _spec(mesh, (batch,)), _spec(mesh, (batch,))
    return out


def _buckets(length: int, buckets) -> tuple:
    return resolve_buckets(type("F", (), {"max_length": length})(), buckets)


def train_programs(name: str, pcfg, config, model_cfg, mesh) -> list:
    """The train steps of one phase, one per head and length bucket, built by the run's own
    trainer.build_steps."""
    tasks = phase_tasks(pcfg)
    heads = phase_heads(pcfg)
    parts = build_steps(pcfg, model_cfg, mesh, heads, seed=config.seed, abstract_only=True)  # as the run builds them
    state = parts.state
    key = jax.eval_shape(lambda: jax.random.key(0))
    steps = {h: parts.step(h) for h in heads}  # one jitted step per head, as the trainer holds them
    out, seen = [], set()
    for t, task, head, _ in tasks:
        step = steps[head]
        for seq in _buckets(t.max_length or task.max_length, config.data.buckets):
            if (head, seq) in seen:
                continue
            seen.add((head, seq))
            batch = batch_spec(mesh, task.kind, pcfg.batch_size, seq, task.num_choices)
            out.append(Program(f"{name}/{head}/B{pcfg.batch_size}xS{seq}", step, (state, batch, key),
                               dict(phase=name, head=head, kind=task.kind, batch=pcfg.batch_size, seq=seq,
                                    accum_steps=pcfg.accum_steps, train=True, state=state)))
    return out


def eval_programs(config, model_cfg, mesh) -> list:
    """The evaluator's forward passes (one per task and length bucket), from evaluation.Evaluator."""
    from xtreme_jax.evaluation import Evaluator
    ecfg = config.evaluate
    tasks = [get_task(t.name) for t in ecfg.tasks]
    heads = {t.name: (t.kind, t.num_labels(source(e.source))) for t, e in zip(tasks, ecfg.tasks) if t.has_head}
    graphdef, state = train_step.create_model(model_cfg, heads, mesh, seed=config.seed, abstract_only=True)
    ev = Evaluator(nnx.merge(graphdef, state), mesh, batch_size=ecfg.batch_size,
                   buckets=ecfg.get("buckets") or config.data.buckets,
                   retrieval_layer=ecfg.get("retrieval_layer"), retrieval_pooling=ecfg.get("retrieval_pooling"))
    out = []
    for task, entry in zip(tasks, ecfg.tasks):
        retrieval = None
        if not task.has_head:
            s = ev.retrieval_setting(task.name, entry.get("retrieval_layer"), entry.get("retrieval_pooling"))
            retrieval = (s["retrieval_layer"], s["retrieval_pooling"])
        fn = ev._forward(task.kind, ev.heads.get(task.name, task.name), retrieval)  # what evaluate_task runs
        for seq in _buckets(entry.get("max_length", 0) or task.max_length, ev.buckets):
            batch = batch_spec(mesh, task.kind, ecfg.batch_size, seq, task.num_choices, labels=False)
            out.append(Program(f"evaluate/{task.name}/B{ecfg.batch_size}xS{seq}", fn, (ev.state, batch),
                               dict(phase="evaluate", head=task.name, kind=task.kind, batch=ecfg.batch_size,
                                    seq=seq, train=False, state=ev.state)))
    return out


def programs_for(config, mesh, model_cfg=None) -> list:
    """Every program a run of `config` compiles: each training phase's steps (per head and length
    bucket) and the evaluator's forwards. The one place the compiler builds programs from a config
    (switch it to the trainer's builder when the run has one)."""
    model_cfg = model_cfg or model_config(config)
    out = []
    for name in config_lib.phases(config):
        out += (eval_programs(config, model_cfg, mesh) if name == "evaluate"
                else train_programs(name, config[name], config, model_cfg, mesh))
    return out


# ------------------------------------------------------------------------------------ compiling
def collectives(hlo_text: str) -> dict:
    """Collective ops in optimized HLO, by kind. XLA:TPU clones one collective into several async
    fusion computations: each is counted once, by its channel id. One inside a loop body runs once
    per iteration but is counted once."""
    seen = {k: set() for k in COLLECTIVES}
    inside = ""
    for n, line in enumerate(hlo_text.splitlines()):
        m = _COMPUTATION_RE.match(line)
        if m:
            inside = m.group(1)
            continue
        if inside.startswith("all-reduce-scatter"):
            continue
        channel = _CHANNEL_RE.search(line)
        key = channel.group(1) if channel else f"line{n}"
        if "calls=%all-reduce-scatter" in line:
            seen["reduce-scatter"].add(f"fusion{n}")  # its channel id sits on the inner all-reduce
            continue
        op = _OP_RE.search(line.split(", metadata=")[0])
        if op:
            seen[op.group(1)].add(key)
    return {k: len(v) for k, v in seen.items()}


def fingerprint(lowered) -> str:
    """sha256 of the lowered StableHLO: equal programs have equal fingerprints."""
    return hashlib.sha256(lowered.as_text().encode()).hexdigest()[:16]


def state_bytes_per_chip(state) -> int:
    """Bytes of one chip's shard of every state leaf, from shapes and partition specs."""
    total = 0
    for x in jax.tree.leaves(state):
        spec, mesh = x.sharding.spec, x.sharding.mesh
        split = math.prod(mesh.shape[a] for d in spec if d for a in ((d,) if isinstance(d, str) else d))
        total += math.prod(x.shape) * x.dtype.itemsize // split
    return total


def padded_bytes(aval, fmt) -> int:
    """One chip's bytes of an argument: its shard's shape, in the compiled layout's dimension
    order, rounded up to the layout's tile (TPU pads minor dims to e.g. 8 x 128 and scalars to 128)."""
    shape, itemsize = (fmt.sharding.shard_shape(aval.shape) if aval.shape else ()), None
    if jax.dtypes.issubdtype(aval.dtype, jax.dtypes.prng_key):  # a key: its uint32 data, (..., 2)
        shape, itemsize = tuple(shape) + (2,), 4
    layout = fmt.layout
    order = layout.major_to_minor if len(layout.major_to_minor) == len(shape) else range(len(shape))
    dims = [shape[i] for i in order] if shape else [1]
    tile = layout.tiling[0] if layout.tiling else ()
    for k, t in enumerate(reversed(tile)):
        if k < len(dims):
            dims[-1 - k] = -(-dims[-1 - k] // t) * t
    return math.prod(dims) * (itemsize or jnp.dtype(aval.dtype).itemsize)


def argument_bytes(compiled, args) -> int:
    """Per-chip argument bytes computed from the argument shapes, shardings and compiled layouts."""
    formats = jax.tree.leaves(compiled.input_formats[0])
    avals = jax.tree.leaves(args)
    return sum(padded_bytes(a, f) for a, f in zip(avals, formats))


# XLA:TPU refuses a program that cannot fit: "... required for HLO temporaries (52.01G) exceeds
# available HBM (15.75G)".
def replicated_bytes(state) -> int:
    """Bytes of the state leaves that every chip holds whole (no mesh axis of size > 1 splits them):
    their gradients are all-reduced whole every step, and each chip updates all of them."""
    total = 0
    for x in jax.tree.leaves(state):
        spec, mesh = x.sharding.spec, x.sharding.mesh
        if all(mesh.shape[a] == 1 for d in spec if d for a in ((d,) if isinstance(d, str) else d)):
            total += math.prod(x.shape) * x.dtype.itemsize
    return total


_OOM_RE = re.compile(r"\(([\d.]+)([KMGT])\) exceeds available HBM")


def _oom_bytes(message: str) -> int | None:
    m = _OOM_RE.search(message)
    return int(float(m.group(1)) * {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}[m.group(2)]) if m else None


# The fields compile_program measures and how: bump when they change, so that kept rows (study
# plan --compile's store, by fingerprint) are measured again.
ROW_FORMAT = 1


def compile_program(program: Program, mesh, chip: Chip, lowered=None) -> dict:
    """Compiles one program for the mesh's TPU devices; returns its per-chip figures."""
    t = time.perf_counter()
    lowered = lowered or program.lower(mesh)
    fp = fingerprint(lowered)
    row = dict(program=program.name, fingerprint=fp, **{k: v for k, v in program.meta.items() if k != "state"},
               hbm_bytes=int(chip.hbm_gib * GiB), state_bytes=state_bytes_per_chip(program.meta["state"]),
               replicated_state_bytes=replicated_bytes(program.meta["state"]))
    try:
        compiled = lowered.compile()
    except Exception as e:  # noqa: BLE001  XLA:TPU refuses a program that cannot fit in HBM
        msg = str(e)
        if "RESOURCE_EXHAUSTED" not in msg and "hbm" not in msg.lower():
            raise
        temp = _oom_bytes(msg)  # at least: temporaries + the state the step takes
        row.update(compile_s=time.perf_counter() - t, fits=False, temp_bytes=temp,
                   needed_bytes=None if temp is None else temp + row["state_bytes"],
                   compiler_error=(msg.splitlines() or [""])[0][:400])
        return row
    row["compile_s"] = time.perf_counter() - t
    ma = compiled.memory_analysis()
    arg, out, tmp, alias, code = (int(getattr(ma, a, 0) or 0) for a in (
        "argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes", "alias_size_in_bytes",
        "generated_code_size_in_bytes"))
    need = arg + out + tmp - alias + code
    cost = compiled.cost_analysis() or {}
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops, nbytes = float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0))
    t_flops, t_bytes = flops / (chip.peak_tflops * 1e12), nbytes / (chip.hbm_gbps * 1e9)
    row.update(argument_bytes=arg, output_bytes=out, temp_bytes=tmp, alias_bytes=alias, code_bytes=code,
               needed_bytes=need, fits=need <= chip.hbm_gib * GiB, flops=flops, bytes_accessed=nbytes,
               collectives=collectives(compiled.as_text()), flops_s=t_flops, bytes_s=t_bytes,
               roofline_s=max(t_flops, t_bytes),
               roofline_bound="compute" if t_flops >= t_bytes else "memory")
    return row


def compile_all(programs, mesh, chip: Chip, cache: dict | None = None, log=None, rebuild=None) -> list:
    """compile_program over programs; programs with equal fingerprints are compiled once (`cache`:
    fingerprint -> row, shared across calls, e.g. the points of a study). `rebuild`: (topology,
    build, args) with `build(*args, mesh)` giving `programs` again: each program is then compiled
    in a child process (see Compiler); without it, in this process."""
    cache = {} if cache is None else cache
    rows = []
    for p in programs:
        t = time.perf_counter()
        lowered = p.lower(mesh)
        lower_s = time.perf_counter() - t  # tracing + lowering: paid again on a persistent-cache hit
        fp = fingerprint(lowered)
        if fp not in cache:
            row = (compile_program(p, mesh, chip, lowered) if rebuild is None else
                   COMPILER.compile(rebuild[0], mesh_shape(mesh), rebuild[1], rebuild[2], p.name, fp, chip))
            cache[fp] = dict(row, lower_s=lower_s)
            if log:
                log(cache[fp])
        rows.append(dict(cache[fp], program=p.name, **{k: v for k, v in p.meta.items() if k != "state"}))
    return rows


def mesh_shape(mesh) -> tuple:
    return tuple(int(mesh.shape[a]) for a in mesh.axis_names)


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def _serve(conn):
    """The child's loop: rebuild the named program, check it lowers to the parent's fingerprint,
    compile it, send its row and this process's resident bytes."""
    meshes = {}
    while True:
        try:
            topology, shape, build, args, name, fp, chip = conn.recv()
        except EOFError:
            return
        try:
            mesh = meshes.get((topology, shape)) or meshes.setdefault((topology, shape), topology_mesh(topology, shape))
            program = next(p for p in build(*args, mesh) if p.name == name)
            lowered = program.lower(mesh)
            if fingerprint(lowered) != fp:
                raise RuntimeError(f"{name} rebuilt in the compiler process lowers to another program")
            conn.send(("ok", compile_program(program, mesh, chip, lowered), _rss_bytes()))
        except Exception:  # noqa: BLE001  sent to the parent, which raises it
            import traceback
            conn.send(("error", traceback.format_exc(), 0))


class Compiler:
    """Compiles in a child process; the parent only traces and lowers (to fingerprint). XLA:TPU's
    compile of an XLM-R large step peaks at several GB that go back to the OS only when the process
    ends: one study plan's process that compiled 20 such programs grew to 16 GB. The child is
    started on first use (spawned: no threads forked) and replaced once it holds more than
    RESTART_RSS_GIB, so a plan of any length stays within one compile's peak."""
    RESTART_RSS_GIB = 3.0

    def __init__(self):
        self.proc = self.conn = None

    def _start(self):
        import atexit
        import multiprocessing
        # ended before multiprocessing's own exit hook (atexit runs the later-registered first),
        # which would SIGTERM it and have libtpu print a crash trace
        atexit.unregister(self.close)
        atexit.register(self.close)
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child,), daemon=True, name="xtreme_jax-compiler")
        self.proc.start()
        child.close()

    def close(self):
        if self.proc is not None:
            self.conn.close()
            self.proc.join(timeout=30)
            if self.proc.is_alive():
                self.proc.kill()
        self.proc = self.conn = None

    def compile(self, topology, shape, build, args, name, fp, chip) -> dict:
        if self.proc is None or not self.proc.is_alive():
            self._start()
        self.conn.send((topology, tuple(shape), build, args, name, fp, chip))
        try:
            status, got, rss = self.conn.recv()
        except EOFError:
            self.proc.join(timeout=30)
            code = self.proc.exitcode
            self.close()
            raise RuntimeError(f"{name}: the compiler process died (exit code {code}"
                               + ("; SIGKILL, likely out of memory" if code == -9 else "") + ")") from None
        if status == "error":
            raise RuntimeError(f"{name}: compiling in the child process failed:\n{got}")
        if rss > self.RESTART_RSS_GIB * GiB:
            self.close()
        return got


COMPILER = Compiler()
