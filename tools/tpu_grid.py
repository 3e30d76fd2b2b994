"""The TPU compile grid of docs/tpu.md: XLM-R base and large, the recipe's batch sizes and lengths
(B=32 S=128 / 256, QA B=16 S=384, B=256 S=128), remat on and off, on v4-8, v5e-8, v5e-16, v5p-8,
v6e-8 and a v5e-256 pod slice; each cell one training step of the target phase compiled by
libtpu (xtreme_jax.compile.compile_config), resumable: a cell already in --out is not compiled
again.

    python tools/tpu_grid.py --out benchmarks/results/tpu_grid.jsonl [--only REGEX]   # compile
    python tools/tpu_grid.py --out benchmarks/results/tpu_grid.jsonl --table          # markdown table

Mesh: fsdp over every chip, (1, chips, 1); where the global batch has fewer rows than the slice
has chips (B=32 or 16 on 256 chips), (1, B, chips / B): fsdp over B chips, tensor parallelism
over the rest.
"""
import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TOPOLOGIES = {"v4-8": "v4:2x2x1", "v5e-8": "v5e:2x4", "v5e-16": "v5e:4x4", "v5p-8": "v5p:2x2x1",
              "v6e-8": "v6e:2x4", "v5e-256": "v5e:16x16"}
SHAPES = (("xnli", 32, 128), ("xnli", 32, 256), ("xquad", 16, 384), ("xnli", 256, 128))


def cells():
    for topo in TOPOLOGIES:
        for model in ("large", "base"):
            for task, batch, seq in SHAPES:
                for remat in (True, False):
                    yield f"{model} {topo} B{batch}xS{seq} remat={'on' if remat else 'off'}", (
                        model, topo, task, batch, seq, remat)


def cell_config(model, topo, task, batch, seq, remat, chips):
    spec = importlib.util.spec_from_file_location("stilts", os.path.join(ROOT, "configs", "stilts.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = mod.get_config(f"model={model},intermediate=none,target={task}")
    c.target.batch_size, c.model.remat = batch, remat
    c.target.tasks[0].max_length = seq
    c.evaluate.batch_size = max(c.evaluate.batch_size, chips)   # the run's check: it splits over the chips
    c.mesh = (1, chips, 1) if batch >= chips else (1, batch, chips // batch)
    return c


def compile_cell(key, cell) -> dict:
    from xtreme_jax import aot
    from xtreme_jax.compile import compile_config
    model, topo, task, batch, seq, remat = cell
    topology = TOPOLOGIES[topo]
    _, _, per = aot.device_figures(topology)
    chips = len(aot.topology_devices(topology)) // per
    c = cell_config(model, topo, task, batch, seq, remat, chips)
    t = time.perf_counter()
    try:
        row = compile_config(c, topology, only=f"^target/{task}/B{batch}xS{seq}$")["rows"][0]
    except Exception as e:  # noqa: BLE001  recorded, the grid goes on
        return dict(cell=key, error=f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}")
    row = {k: v for k, v in row.items() if k not in ("state",)}
    return dict(cell=key, topology=topology, mesh=list(c.mesh), wall_s=time.perf_counter() - t,
                load=os.getloadavg()[0], **row)


def table(rows) -> str:
    g = lambda b: f"{b / 2 ** 30:.2f}"  # noqa: E731
    out = ["| cell | mesh | fits | GiB / chip (state, temp) | TFLOP / chip | AG/AR/RS/CP/A2A | roofline ms "
           "(compute / memory) | compile s |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("error", "").startswith("ConfigError"):   # the run itself refuses the cell
            out.append(f"| {r['cell']} | | not runnable | {r['error'].removeprefix('ConfigError: ')[:150]} | | | | |")
            continue
        if "error" in r:
            out.append(f"| {r['cell']} | | error | {r['error'][:120]} | | | | |")
            continue
        if "compiler_error" in r:
            out.append(f"| {r['cell']} | {tuple(r['mesh'])} | **no** | >= {g(r['needed_bytes'])} of "
                       f"{g(r['hbm_bytes'])} | | | | {r['compile_s']:.0f} |")
            continue
        c = r["collectives"]
        out.append(f"| {r['cell']} | {tuple(r['mesh'])} | {'yes' if r['fits'] else '**no**'} | "
                   f"{g(r['needed_bytes'])} of {r['hbm_bytes'] / 2 ** 30:.0f} ({g(r['state_bytes'])}, "
                   f"{g(r['temp_bytes'])}) | {r['flops'] / 1e12:.2f} | "
                   f"{c['all-gather']}/{c['all-reduce']}/{c['reduce-scatter']}/{c['collective-permute']}/"
                   f"{c['all-to-all']} | {1e3 * r['flops_s']:.1f} / {1e3 * r['bytes_s']:.1f} | "
                   f"{r['compile_s']:.0f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON lines, one per compiled cell (appended)")
    ap.add_argument("--only", default="", help="compile only the cells whose name matches this regex")
    ap.add_argument("--table", action="store_true", help="print the markdown table of --out and stop")
    ap.add_argument("--cell", default="", help=argparse.SUPPRESS)   # internal: compile this one cell
    a = ap.parse_args(argv)
    done = {}
    if os.path.exists(a.out):
        with open(a.out) as f:
            done = {r["cell"]: r for r in map(json.loads, f)}
    order = [k for k, _ in cells()]
    if a.table:
        print(table([done[k] for k in order if k in done]))
        print(f"\n{sum(k in done for k in order)} of {len(order)} cells")
        return 0
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from xtreme_jax.aot import quiet_libtpu
    quiet_libtpu()
    todo = [(k, c) for k, c in cells() if k not in done and (not a.only or re.search(a.only, k))]
    if a.cell:   # the child: one cell, then exit (its compiled programs leave with the process)
        todo = [(k, c) for k, c in todo if k == a.cell]
    else:        # large before base, every chip before the next shape: a grid cut short still spans the chips
        todo.sort(key=lambda kc: (kc[1][0] != "large", SHAPES.index(kc[1][2:5]), not kc[1][5],
                                  list(TOPOLOGIES).index(kc[1][1])))
    for key, cell in todo:
        if not a.cell:
            # each cell in a fresh process: one process compiling cell after cell grows past 12 GB
            subprocess.run([sys.executable, os.path.abspath(__file__), "--out", a.out, "--cell", key], check=True)
            continue
        row = compile_cell(key, cell)
        with open(a.out, "a") as f:  # one line per cell: a killed grid keeps what it compiled
            f.write(json.dumps(row, default=str) + "\n")
        print(f"{key}: {row.get('error') or ('fits' if row['fits'] else 'does NOT fit')} "
              f"({row.get('compile_s', 0):.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
