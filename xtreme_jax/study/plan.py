"""A plan: the study's points, validated, as a run graph with a cost estimate; the point table."""
from __future__ import annotations

import dataclasses
import json
import time

from xtreme_jax.files import write_atomic
from xtreme_jax.study import cost as cost_lib
from xtreme_jax.study import graph as graph_lib
from xtreme_jax.study import power as power_lib
from xtreme_jax.study.expand import expand, run_config, trained_languages
from xtreme_jax.study.spec import StudyError
from xtreme_jax.study.validate import DataCheck, validate_points


@dataclasses.dataclass
class Plan:
    study: object               # the study ConfigDict
    points: list                # expand.Point, unique
    collapsed: list             # (Point, Point it is identical to)
    graph: graph_lib.Graph
    data: DataCheck
    cost: dict

    def point_cost(self, i: int) -> dict:
        """Steps and accelerator-hours of everything point i needs (shared nodes counted in full)."""
        nodes = self.graph.chain(i)
        return {"steps": sum(self.cost["nodes"][n.hash]["steps"] for n in nodes),
                "accelerator_hours": sum(self.cost["nodes"][n.hash]["accelerator_hours"] for n in nodes)}


def make_plan(study, num_devices: int | None = None) -> Plan:
    points, collapsed = expand(study)
    data, problems = validate_points(points, study, num_devices or int(study.cost.chips))
    if problems:
        more = f" (and {len(problems) - 1} more problem(s); fix this one and plan again)" if len(problems) > 1 else ""
        raise StudyError(problems[0] + more)
    graph = graph_lib.build(points, int(study.encoder_seed))
    for i, j in graph.collapsed:  # identical only once split into runs (e.g. unused phase settings)
        points[j].aliases.append(points[i].labels)
        collapsed.append((points[i], points[j]))
    keep = [i for i in range(len(points)) if i not in {i for i, _ in graph.collapsed}]
    if len(keep) != len(points):
        points = [points[i] for i in keep]
        graph = graph_lib.build(points, int(study.encoder_seed))
    try:
        cost = cost_lib.plan_cost(graph, data, study.cost.accelerator, int(study.cost.chips))
    except ValueError as e:
        raise StudyError(f"config.cost: {e}") from None
    return Plan(study, points, collapsed, graph, data, cost)


def _compiled_store(path: str | None, topology: str) -> tuple[dict, str]:
    """(fingerprint -> compiled row, its validity stamp) kept at `path` by an earlier plan. A row
    stands for the program whose lowered StableHLO has that fingerprint, so it stays valid across
    any code change that leaves the program alone (a changed program lowers to a new fingerprint
    and is compiled); the stamp covers what else shapes a row: the topology, jax, libtpu, the XLA
    flags and aot.ROW_FORMAT. A file of the earlier layout ({"rows": family -> rows}, stamped
    with the package sources) gives its rows by fingerprint where topology, jax and libtpu match."""
    import importlib.metadata as md
    import os

    import jax

    from xtreme_jax import aot
    try:
        libtpu = md.version("libtpu")
    except md.PackageNotFoundError:
        libtpu = ""
    versions = [topology, jax.__version__, libtpu]
    stamp = json.dumps(versions + [os.environ.get("XLA_FLAGS", ""), os.environ.get("LIBTPU_INIT_ARGS", ""),
                                   aot.ROW_FORMAT])
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError, TypeError):
        return {}, stamp
    if saved.get("stamp") == stamp:
        return saved.get("by_fingerprint", {}), stamp
    if "rows" in saved and json.loads(saved.get("stamp") or "[]")[:3] == versions:
        return {r["fingerprint"]: r for rows in saved["rows"].values() for r in rows if "fingerprint" in r}, stamp
    return {}, stamp


def add_compiled_cost(plan: Plan, topology: str, mfu: float | None = None, rows_file: str | None = None,
                      log=None) -> dict:
    """Costs every run of the plan from what XLA:TPU compiles for `topology` (xtreme_jax.compile:
    each distinct program once, its FLOPs at `mfu` of the chip's bf16 peak, plus a fixed cost per
    run: start-up, its compiles, checkpoint saves). A run with a program that does not fit
    refuses the plan. Adds plan.cost["compiled"] and each node's compiled seconds and chip-hours.
    `rows_file`: where the compiled rows are kept, so that a later plan compiles only what changed;
    `log(line)`: progress after each run that compiled something."""
    from xtreme_jax import aot
    from xtreme_jax.study.compiled_cost import compile_costs
    nodes = list(plan.graph.nodes.items())
    # A branch's parent weights do not change its programs: compiled without init_from.
    counts = [cost_lib.eval_examples_by_task(n.config, plan.data) if "evaluate" in n.phases else {}
              for _, n in nodes]
    configs = [run_config(dict(n.config, init_from=""), where=f"run {h}") for h, n in nodes]
    # Before any compile (a plan compiles for tens of minutes): every head's label count, which
    # shapes its program, must be known offline (a tag set read from local files, say).
    from xtreme_jax.trainer import phase_heads
    from xtreme_jax import config as config_lib
    for (h, n), c in zip(nodes, configs):
        for name in (p for p in config_lib.phases(c) if p != "evaluate"):
            try:
                phase_heads(c[name])
            except ValueError as e:
                raise StudyError(f"run {h} ({n.stage}) {name}: {(str(e).splitlines() or [''])[0]}; the TPU "
                                 "compile needs each head's label count before it compiles") from None
    # rows_file: the programs an earlier plan of this workdir compiled, by fingerprint
    compiled, stamp = _compiled_store(rows_file, topology)
    started = time.perf_counter()

    def keep(store, done):
        if rows_file:
            write_atomic(rows_file, json.dumps({"stamp": stamp, "by_fingerprint": store}, default=str))
        if log:
            log(f"compiled {len(store)} programs, {done} of {len(configs)} runs costed, "
                f"{(time.perf_counter() - started) / 60:.1f} min")
    costs = compile_costs(configs, topology, mfu, eval_examples=counts, compiled=compiled, on_compiled=keep)
    for (h, n), c in zip(nodes, costs):
        if not c["fits"]:
            raise StudyError(f"run {h} ({n.stage}): " + c["refused"].removeprefix("error: "))
    _, _, per_chip = aot.device_figures(topology)
    chips = len(aot.topology_devices(topology)) // per_chip
    per_run = chips / 3600  # seconds of one run -> chip-hours
    for (h, _), c in zip(nodes, costs):
        plan.cost["nodes"][h].update(compiled_seconds=c["seconds"], compiled_fixed_seconds=c["fixed_s"],
                                     compiled_chip_hours=c["seconds"] * per_run)
    total = lambda key: sum(c[key] for c in costs) * per_run  # noqa: E731
    fixed = {k: sum(c["fixed"][k] for c in costs) * per_run for k in costs[0]["fixed"]} if costs else {}
    plan.cost["compiled"] = {"topology": topology, "chips_per_run": chips, "chip_hours": total("seconds"),
                             "steps_chip_hours": total("steps_s"), "steps_longest_chip_hours": total("steps_longest_s"),
                             "validation_chip_hours": total("validation_s"), "eval_chip_hours": total("eval_s"), "fixed_chip_hours": total("fixed_s"),
                             "fixed_nocache_chip_hours": total("fixed_nocache_s"),
                             "fixed_parts_chip_hours": fixed,
                             "mfu": costs[0]["mfu"] if costs else mfu,
                             "mfu_source": costs[0]["mfu_source"] if costs else ""}
    return plan.cost["compiled"]


def check_budget(plan: Plan, budget_hours: float | None):
    if budget_hours is not None and plan.cost["accelerator_hours"] > budget_hours:
        raise StudyError(f"the plan needs {plan.cost['accelerator_hours']:.2f} {plan.cost['accelerator']} "
                         f"accelerator-hours, over --budget_hours={budget_hours:g}; drop factor levels or seeds "
                         "(--config.seeds=..., --config.factors.NAME=...) or raise the budget")


def table(plan: Plan) -> str:
    """The point table: one row per point, then the shared runs and the cost."""
    factors = list(plan.points[0].labels) if plan.points else []
    head = ["#", *factors, "seed", "run", "from", "langs seen", "steps", "acc-h"]
    rows = []
    for i, p in enumerate(plan.points):
        chain = plan.graph.chain(i)
        pc = plan.point_cost(i)
        rows.append([str(i), *(p.labels[f] for f in factors), str(p.seed), chain[-1].hash,
                     " <- ".join(n.hash[:6] + f"({n.stage})" for n in chain[:-1][::-1]) or "-",
                     "+".join(sorted(trained_languages(p.config))), str(pc["steps"]),
                     f"{pc['accelerator_hours']:.3g}"])
    widths = [max(len(r[k]) for r in [head] + rows) for k in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    lines = [fmt(head)] + [fmt(r) for r in rows]
    g, c = plan.graph, plan.cost
    stages = {}
    for n in g.nodes.values():
        stages.setdefault(n.stage, []).append(n)
    lines.append("")
    lines.append(f"{len(plan.points)} points x their stages = {len(g.nodes)} runs: " + ", ".join(
        f"{len(v)} {k}" + (f" (shared by {sum(len(n.points) for n in v) / len(v):.1f} points each)"
                          if k in ("mlm", "intermediate") else "") for k, v in stages.items()))
    if not g.sharing:
        lines.append("no sharing: this config schema has no init_from, so each point runs all its phases")
    for p, q in plan.collapsed:
        lines.append(f"collapsed: ({p.describe()}) is identical to ({q.describe()}): one run, reported under both")
    lines.append(f"cost: {c['accelerator_hours']:.3g} {c['accelerator']} accelerator-hours with shared runs "
                 f"({c['unshared_accelerator_hours']:.3g} if every point ran alone), {c['chips_per_run']} chip(s) per run")
    lines += [f"  step time: {s}" for s in c["sources"]]
    if "compiled" in c:
        k = c["compiled"]
        f = k["fixed_parts_chip_hours"]
        lines.append(f"compiled cost on {k['topology']} ({k['chips_per_run']} chips per run): {k['chip_hours']:.3g} "
                     f"chip-hours, every step and forward at {100 * k['mfu']:.1f}% MFU ({k['mfu_source']}); "
                     "beside the estimate above:")
        lines.append(f"  training steps {k['steps_chip_hours']:.3g} over the tasks' measured length-bucket mix "
                     f"({k['steps_longest_chip_hours']:.3g} all at the longest bucket), validation {k['validation_chip_hours']:.3g}, "
                     f"test-set passes {k['eval_chip_hours']:.3g}, fixed {k['fixed_chip_hours']:.3g}: start-up "
                     f"{f.get('startup_s', 0):.3g}, compiles {f.get('compile_s', 0):.3g} (each program once, then "
                     f"persistent-cache hits; {f.get('compile_nocache_s', 0):.3g} if every run compiled all its "
                     f"own), tokenizing {f.get('data_s', 0):.3g}, checkpoint saves {f.get('checkpoint_s', 0):.3g}")
    lines += power_lib.lines(plan.study, c["accelerator_hours"], c["accelerator"])
    checked = len(plan.data.counts)
    lines.append(f"data: {checked} (task, split, language) sets found and read"
                 + (f"; {len(plan.data.hub)} to download from the hub (not checked offline):" if plan.data.hub else ""))
    lines += [f"  {line}" for line in plan.data.needed()]
    if plan.data.files:
        lines.append(f"data not on the hub, needed as local files before `run`: {len(plan.data.files)} sets")
        lines += [f"  {line}" for line in plan.data.needed_files()]
    return "\n".join(lines)


def check_runnable(plan: Plan):
    """`run` needs every data set at hand (or on the hub)."""
    if plan.data.files:
        first = plan.data.needed_files()[0]
        raise StudyError(f"{len(plan.data.files)} data set(s) are not on the hub and no local files were given, "
                         f"e.g. {first}; pass the study's data=DIR arg (official layout)")


def to_json(plan: Plan) -> dict:
    return {
        "study": json.loads(plan.study.to_json_best_effort()),
        "points": [{"index": i, "factors": p.labels, "seed": p.seed, "run": plan.graph.chain(i)[-1].hash,
                    "chain": [n.hash for n in plan.graph.chain(i)], "aliases": p.aliases,
                    "trained_languages": sorted(trained_languages(p.config)), **plan.point_cost(i)}
                   for i, p in enumerate(plan.points)],
        "runs": {h: {"stage": n.stage, "parent": n.parent, "phases": n.phases, "points": n.points,
                     **{k: plan.cost["nodes"][h][k] for k in ("steps", "accelerator_hours")}}
                 for h, n in plan.graph.nodes.items()},
        "collapsed": [[p.describe(), q.describe()] for p, q in plan.collapsed],
        "cost": {k: v for k, v in plan.cost.items() if k != "nodes"},
        "power": power_lib.analysis(plan.study, plan.cost["accelerator_hours"]),
        "data_needed": plan.data.needed(), "data_needed_as_files": plan.data.needed_files(),
    }


def write(plan: Plan, root: str) -> str:
    return write_atomic(f"{root.rstrip('/')}/plan.json", json.dumps(to_json(plan), indent=1) + "\n")
