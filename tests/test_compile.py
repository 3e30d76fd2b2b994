"""AOT compilation for TPU slices (xtreme_jax.aot, python -m xtreme_jax.compile) with libtpu from
PyPI, no TPU: the tiny preset's programs compile for v5e and v4 slices, the compiler's per-chip
argument bytes equal those computed from shapes, fsdp divides the state as the shapes say, an
oversized point is refused with a compiled proposal, and the run jits the program compiled here."""
import json
import math
import os
import re

import jax
import pytest

pytest.importorskip("libtpu", reason="libtpu not installed (pip install -e .[tpu]); the AOT compiler needs it")

from xtreme_jax import aot, compile as compile_cli  # noqa: E402
from xtreme_jax import config as C  # noqa: E402
from xtreme_jax.models.encoder import preset  # noqa: E402
from xtreme_jax.study.cost import flops_per_token  # noqa: E402
from xtreme_jax.study.validate import model_shape  # noqa: E402
from xtreme_jax.study import compiled_cost, cost as cost_lib  # noqa: E402


def tiny_config(phases="target,evaluate", **model):
    c = C.base_config()
    c.phases = phases
    c.model.update(model)
    c.data.buckets = (32,)
    c.target = C.train_phase([C.task_entry("xnli", max_length=32, src=C.source("hub"))], batch_size=32)
    c.evaluate.tasks = [C.eval_task("xnli", C.source("hub"), max_length=32)]
    c.evaluate.buckets = (32,)
    c.mesh = (1, -1, 1)
    return c


@pytest.mark.parametrize("topology", ["v5e:2x2", "v4:2x2x1"])
def test_tiny_train_step_and_forward_compile_and_arguments_match_the_shapes(topology):
    mesh = aot.topology_mesh(topology, (1, -1, 1))
    assert mesh.devices.size == 4 and mesh.devices.flat[0].platform == "tpu"
    programs = aot.programs_for(tiny_config(), mesh)
    assert [p.name for p in programs] == ["target/xnli/B32xS32", "evaluate/xnli/B64xS32"]
    for p in programs:
        compiled = p.lower(mesh).compile()
        ma = compiled.memory_analysis()
        # arguments = state shards (+ batch shard + key), each padded to its compiled tile
        assert ma.argument_size_in_bytes == aot.argument_bytes(compiled, p.args)
        if p.meta["train"]:
            # the donated state (parameters + AdamW moments + counts) is what the step aliases
            assert ma.alias_size_in_bytes == aot.argument_bytes(compiled, p.args[:1])
            raw = sum(math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize
                      for x in jax.tree.leaves(p.args[0]))
            assert raw == aot.state_bytes_per_chip(p.args[0]) < ma.alias_size_in_bytes
    name, chip, _ = aot.device_figures(topology)
    rows = aot.compile_all(programs, mesh, chip)
    train = rows[0]
    assert train["fits"] and train["flops"] > 0 and train["roofline_s"] > 0
    # fsdp: gradients leave each chip as reduce-scatters, weights arrive as all-gathers
    assert train["collectives"]["reduce-scatter"] >= 1 and train["collectives"]["all-gather"] >= 1


def _die(mesh):
    os._exit(3)


def test_a_child_process_compiles_what_this_process_would_and_is_replaced_when_large(monkeypatch):
    """study plan / the compile CLI compile in a child (a compile's memory returns to the OS only
    when its process ends): its row equals the in-process one, it is replaced once it holds more
    than RESTART_RSS_GIB, and its death is one line naming the program."""
    topology = "v5e:2x2"
    mesh = aot.topology_mesh(topology, (1, -1, 1))
    _, chip, _ = aot.device_figures(topology)
    config = tiny_config()
    here = aot.compile_all(aot.programs_for(config, mesh), mesh, chip)
    monkeypatch.setattr(aot.Compiler, "RESTART_RSS_GIB", 0.0)  # replaced after every compile
    compiler = aot.Compiler()
    monkeypatch.setattr(aot, "COMPILER", compiler)
    pids = []
    log = lambda row: pids.append(compiler.proc.pid if compiler.proc else None)  # noqa: E731
    child = aot.compile_all(aot.programs_for(config, mesh), mesh, chip, log=log,
                            rebuild=(topology, aot.programs_for, (config,)))
    timing = ("compile_s", "lower_s")
    assert [{k: v for k, v in r.items() if k not in timing} for r in child] == \
           [{k: v for k, v in r.items() if k not in timing} for r in here]
    assert pids == [None, None] and compiler.proc is None  # each child ended after its compile
    compiler.RESTART_RSS_GIB = 1e3
    aot.compile_all(aot.programs_for(config, mesh)[:1], mesh, chip, rebuild=(topology, aot.programs_for, (config,)))
    assert compiler.proc is not None and compiler.proc.is_alive()  # a small child is kept
    with pytest.raises(RuntimeError, match=r"^target/xnli/B32xS32: the compiler process died \(exit code 3\)$"):
        compiler.compile(topology, (1, 4, 1), _die, (), "target/xnli/B32xS32", "fp", chip)
    assert compiler.proc is None


def test_fsdp_divides_the_state_by_the_factor_the_shapes_give():
    cfg = preset("tiny", hidden_size=256, intermediate_size=512, vocab_size=4096, num_heads=4)
    per_chip = {}
    for shape in ((4, 1, 1), (1, 4, 1)):
        mesh = aot.topology_mesh("v5e:2x2", shape)
        c = tiny_config(phases="target")
        c.mesh = shape
        p = aot.programs_for(c, mesh, cfg)[0]
        per_chip[shape] = (p.lower(mesh).compile().memory_analysis().alias_size_in_bytes,
                           aot.state_bytes_per_chip(p.args[0]), aot.replicated_bytes(p.args[0]))
    # expected: every leaf with an "embed" dim split 4 ways, the rest (LayerNorm, "mlp" biases) whole
    expected = per_chip[(4, 1, 1)][1] / per_chip[(1, 4, 1)][1]
    assert 3.5 < expected < 4
    assert per_chip[(4, 1, 1)][0] / per_chip[(1, 4, 1)][0] == pytest.approx(expected, rel=0.03)
    # data parallel: every leaf whole on every chip; fsdp: only LayerNorms and tensor-axis biases
    assert per_chip[(4, 1, 1)][2] == per_chip[(4, 1, 1)][1]
    assert per_chip[(1, 4, 1)][2] < 0.02 * per_chip[(4, 1, 1)][1]


def test_oversized_point_is_refused_with_a_compiled_proposal():
    # a 16M-row embedding (4 GiB f32; + 2 AdamW moments + its gradient), replicated on 4 chips
    c = tiny_config(phases="target", vocab_size=2 ** 24)
    c.mesh = (4, 1, 1)
    got = compile_cli.compile_config(c, "v5e:2x2")
    row = got["rows"][0]
    assert not row["fits"] and row["needed_bytes"] > 16 * 2 ** 30
    proposal = compile_cli.propose(c, "v5e:2x2", row)
    text, fixed = proposal
    assert text == "--config.mesh='(1,4,1)'" and fixed["fits"] and fixed["needed_bytes"] < 16 * 2 ** 30
    line = compile_cli.refusal(row, "v5e", aot.CHIPS["v5e"], proposal)
    g = lambda b: f"{b / 2 ** 30:.2f}"  # noqa: E731
    assert row["compiler_error"].startswith("RESOURCE_EXHAUSTED")  # XLA:TPU itself refused it
    assert line == (f"error: program target/xnli/B32xS32 needs at least {g(row['needed_bytes'])} GiB per chip "
                    f"(temporaries {g(row['temp_bytes'])} + state {g(row['state_bytes'])} GiB; XLA:TPU refused "
                    f"to compile it) but a v5e device has 16 GiB of HBM; smallest change that fits (compiled): "
                    f"--config.mesh='(1,4,1)' ({g(fixed['needed_bytes'])} GiB per chip)")


def test_the_run_jits_the_program_the_compiler_compiles(smoke, tmp_path, monkeypatch):
    """One tiny target phase runs for real; the step train_loop built is lowered beside the one
    programs_for builds for the run's own mesh and model: same StableHLO fingerprint, and the
    batches the run fed it have the shapes the compiler assumed."""
    import importlib.util

    from smoke import write_config
    from xtreme_jax import phases, train_step
    from xtreme_jax.context import build_context
    spec = importlib.util.spec_from_file_location("smoke_cfg", write_config(smoke, tmp_path / "cfg.py", "target"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.target.num_steps, config.target.save_every = 1, 1
    built, fed = [], []
    real = train_step.make_train_step

    def recording(*args, **kw):
        fn = real(*args, **kw)
        built.append(fn)

        def step(state, batch, rng):
            fed.append({k: (v.shape, v.dtype) for k, v in batch.items()})
            return fn(state, batch, rng)
        return step
    monkeypatch.setattr(train_step, "make_train_step", recording)
    phases.run_pipeline(config, str(tmp_path / "run"))
    monkeypatch.setattr(train_step, "make_train_step", real)
    context = build_context(config, str(tmp_path / "run2"))
    seq = fed[0]["input_ids"][0][-1]  # the length bucket the run's batch took (one per bucket)
    (program,) = [p for p in aot.programs_for(config, context.mesh, context.model_cfg) if p.meta["seq"] == seq]
    assert len(built) == 1
    assert fed[0] == {k: (v.shape, v.dtype) for k, v in program.args[1].items()}
    run_fp = aot.fingerprint(aot.Program("run", built[0], program.args, {}).lower(context.mesh))
    assert run_fp == aot.fingerprint(program.lower(context.mesh))
    # a different phase setting is a different program: the fingerprint can tell
    config.target.lr = 2e-3
    (other,) = [p for p in aot.programs_for(config, context.mesh, context.model_cfg) if p.meta["seq"] == seq]
    assert aot.fingerprint(other.lower(context.mesh)) != run_fp


def test_bad_topology_and_mesh_are_one_line_errors():
    with pytest.raises(aot.CompileError, match=r"unknown TPU generation 'v9'; choose one of v4, v5e, v5p, v6e"):
        aot.topology_mesh("v9:2x2", (1, -1, 1))
    with pytest.raises(aot.CompileError, match=re.escape("(topology v5e:2x2 has 4 chips)")):
        aot.topology_mesh("v5e:2x2", (1, 8, 1))


def test_compile_costs_compiles_shared_programs_once_and_costs_steps_at_the_mfu():
    c = tiny_config(phases="target,evaluate")
    c.target.num_steps, c.target.save_every = 100, 50
    c.data.buckets, c.target.tasks[0].max_length = (32, 64), 64
    other = c.copy_and_resolve_references()           # another point: only the schedule's constants differ
    other.target.num_steps, other.target.lr, other.target.tasks[0].max_examples = 300, 3e-5, 64
    cache = {}
    a, b, o = compiled_cost.compile_costs([c, c.to_dict(), other], "v5e:2x2", mfu=0.5, cache=cache,
                                        eval_examples=[{"xnli": 1000}, {}, {}])
    assert len(cache) == 2 and a["fits"] and a["refused"] is None          # target + evaluate, one compile each
    train, forward = a["programs"]                                         # the longest bucket only ...
    assert (train["seq"], train["buckets"]) == (64, 2)                     # ... standing for both
    assert o["phases"]["target"]["steps"] == 300 and o["programs"][0]["fingerprint"] == train["fingerprint"]
    p = a["phases"]["target"]
    assert p["steps"] == 100 and p["step_s"] == pytest.approx(train["flops"] / (197e12 * 0.5))
    # the steps over XNLI's measured bucket mix: 27.07% of its units fit 32 tokens, the rest 64
    flops = lambda s: s * flops_per_token(model_shape(c.to_dict()), s)  # noqa: E731
    assert p["bucket_mix"] == pytest.approx(0.2707 * flops(32) / flops(64) + 0.7293) and p["bucket_mix"] < 0.9
    assert a["steps_s"] == pytest.approx(100 * p["step_s"] * p["bucket_mix"])
    assert a["steps_longest_s"] == pytest.approx(100 * p["step_s"])
    # test-set passes: ceil(1000 / 64) batches of the compiled forward (B=64); b was given no counts
    assert forward["batch"] == 64 and a["eval_costed"]
    assert a["eval_s"] == pytest.approx(16 * forward["flops"] / (197e12 * 0.5))
    assert b["eval_s"] == 0 and not b["eval_costed"]
    assert a["seconds"] == pytest.approx(100 * p["step_s"] + a["validation_s"] + a["eval_s"] + a["fixed_s"])
    # compiles: a compiles its programs (2 buckets each); b runs the very same programs, so it only
    # traces and lowers them (persistent-cache hits); o's schedule constants differ: compiled anew,
    # but its evaluator forward is a's
    cold = lambda r: (r["lower_s"] + r["compile_s"]) * r["buckets"]  # noqa: E731
    hit = lambda r: r["lower_s"] * r["buckets"]  # noqa: E731
    assert a["fixed"]["compile_s"] == pytest.approx(cold(train) + cold(forward)) == a["fixed"]["compile_nocache_s"]
    assert b["fixed"]["compile_s"] == pytest.approx(hit(train) + hit(forward))
    assert o["fixed"]["compile_s"] == pytest.approx(cold(train) + hit(forward))
    assert b["fixed"]["compile_nocache_s"] == pytest.approx(a["fixed"]["compile_nocache_s"])
    # a point training MNLI (3 labels, 64 tokens: XNLI's head shape) is measured by XNLI's compile,
    # named as its own, and still charged its own compile (its head is another program in the run)
    mnli = c.copy_and_resolve_references()
    mnli.target.tasks[0].name = "mnli"
    (m,) = compiled_cost.compile_costs([mnli], "v5e:2x2", mfu=0.5, cache=cache)
    assert len(cache) == 2 and m["programs"][0]["fingerprint"] == train["fingerprint"]
    assert m["programs"][0]["program"] == "target/mnli/B32xS64" and m["programs"][0]["head"] == "mnli"
    assert m["phases"]["target"]["step_s"] == p["step_s"]
    assert m["fixed"]["compile_s"] == pytest.approx(cold(train) + cold(forward))
    assert b["fixed_nocache_s"] == pytest.approx(b["fixed_s"] - b["fixed"]["compile_s"] + b["fixed"]["compile_nocache_s"])
    assert a["fixed_s"] == pytest.approx(sum(v for k, v in a["fixed"].items() if k != "compile_nocache_s"))
    assert a["fixed"]["startup_s"] == compiled_cost.STARTUP_S and a["fixed"]["checkpoint_s"] > 0
    # tokenizing: 100 steps x 32 examples drawn + the dev examples validated + 1000 test examples,
    # at the non-QA rate
    from xtreme_jax.study.cost import validation_examples
    n_dev = validation_examples(c.target.to_dict())
    assert n_dev > 0 and a["validation_s"] > 0
    assert a["fixed"]["data_s"] == pytest.approx((100 * 32 + n_dev + 1000) / compiled_cost.FEATURIZE_PER_S["other"])


def test_study_plan_costs_every_run_from_its_compile_and_refuses_a_run_that_does_not_fit(tmp_path, monkeypatch):
    """`study plan --compile`: every run of the graph gets compiled seconds (steps at the MFU +
    the fixed cost), the totals add up, shared programs compile once; an oversized model refuses
    the plan with the run named and the compiler's numbers."""
    from xtreme_jax.study import plan as plan_lib, spec
    from xtreme_jax.study.spec import StudyError

    def study(**fixed_model):
        c = spec.study("target_size", "q", "tiny")
        c.recipe = "configs/demo.py"
        c.fixed = "arm=with,mlm=all,size=tiny"
        c.seeds = (0,)
        c.factors["target_examples"] = (100, 400)
        return c

    plan = plan_lib.make_plan(study())
    rows_file = tmp_path / "compile_rows.json"
    lines = []
    got = plan_lib.add_compiled_cost(plan, "v5e:2x2", mfu=0.5, rows_file=str(rows_file), log=lines.append)
    nodes = plan.cost["nodes"]
    # progress after each run that compiled: the first run compiles, the last one costed is named
    assert lines and all(re.fullmatch(r"compiled \d+ programs, \d+ of "
                                      f"{len(nodes)}" r" runs costed, [\d.]+ min", ln) for ln in lines)
    # a second plan of the workdir compiles nothing: the programs kept (by the fingerprint of
    # their StableHLO) are the ones it lowers ...
    kept = json.loads(rows_file.read_text())
    monkeypatch.setattr(aot.COMPILER, "compile", lambda *a, **k: pytest.fail("compiled again"))
    again = plan_lib.add_compiled_cost(plan_lib.make_plan(study()), "v5e:2x2", mfu=0.5, rows_file=str(rows_file))
    assert again == got
    # ... as they are in the earlier layout (family -> rows, stamped with the package sources) ...
    old = {"stamp": json.dumps(json.loads(kept["stamp"])[:3] + ["sources of another commit"]),
           "rows": {"family": list(kept["by_fingerprint"].values())}}
    rows_file.write_text(json.dumps(old))
    assert plan_lib.add_compiled_cost(plan_lib.make_plan(study()), "v5e:2x2", mfu=0.5, rows_file=str(rows_file)) == got
    # ... but a program that lowers to another fingerprint (changed code) is compiled, and so is
    # every program under another stamp (libtpu, jax, XLA flags, the row format)
    for changed in ({"stamp": kept["stamp"], "by_fingerprint": {"0" + k: v for k, v in kept["by_fingerprint"].items()}},
                    dict(kept, stamp="other")):
        rows_file.write_text(json.dumps(changed))
        with pytest.raises(pytest.fail.Exception, match="compiled again"):
            plan_lib.add_compiled_cost(plan_lib.make_plan(study()), "v5e:2x2", mfu=0.5, rows_file=str(rows_file))
    monkeypatch.undo()
    assert got["chips_per_run"] == 4 and got["mfu"] == 0.5 and got["mfu_source"] == "given"
    assert all(nodes[h]["compiled_seconds"] > nodes[h]["compiled_fixed_seconds"] > 0 for h in plan.graph.nodes)
    assert math.isclose(got["chip_hours"], sum(nodes[h]["compiled_chip_hours"] for h in plan.graph.nodes))
    text = plan_lib.table(plan)
    assert "compiled cost on v5e:2x2 (4 chips per run)" in text and "test-set passes" in text
    assert got["eval_chip_hours"] > 0 and got["fixed_nocache_chip_hours"] > got["fixed_chip_hours"]
    assert math.isclose(got["chip_hours"], got["steps_chip_hours"] + got["validation_chip_hours"]
                        + got["eval_chip_hours"] + got["fixed_chip_hours"])

    # a plan stopped in its last compile keeps the rows of the runs before it: the next plan
    # compiles only what is missing
    real, calls = aot.COMPILER.compile, []

    def counted(*a, stop_at=None, **k):
        calls.append(1)
        if len(calls) == stop_at:
            raise KeyboardInterrupt
        return real(*a, **k)

    every = tmp_path / "every.json"
    monkeypatch.setattr(aot.COMPILER, "compile", counted)
    plan_lib.add_compiled_cost(plan_lib.make_plan(study()), "v5e:2x2", mfu=0.5, rows_file=str(every))
    total, calls[:] = len(calls), []
    stopped = tmp_path / "stopped.json"
    monkeypatch.setattr(aot.COMPILER, "compile", lambda *a, **k: counted(*a, stop_at=total, **k))
    with pytest.raises(KeyboardInterrupt):
        plan_lib.add_compiled_cost(plan_lib.make_plan(study()), "v5e:2x2", mfu=0.5, rows_file=str(stopped))
    kept_rows = json.loads(stopped.read_text())["by_fingerprint"]
    assert 0 < len(kept_rows) < len(json.loads(every.read_text())["by_fingerprint"])
    calls[:] = []
    monkeypatch.setattr(aot.COMPILER, "compile", counted)
    plan_lib.add_compiled_cost(plan_lib.make_plan(study()), "v5e:2x2", mfu=0.5, rows_file=str(stopped))
    assert 0 < len(calls) < total
    assert json.loads(stopped.read_text())["by_fingerprint"].keys() == json.loads(every.read_text())["by_fingerprint"].keys()
    monkeypatch.undo()

    big = plan_lib.make_plan(study())
    for n in big.graph.nodes.values():
        n.config["model"]["vocab_size"] = 2 ** 24
        n.config["mesh"] = [4, 1, 1]
    with pytest.raises(StudyError, match=r"^run \w+ \(mlm\S*\): program mlm/mlm/B\d+xS\d+ needs .* 16 GiB of HBM; "
                                         r"smallest change that fits \(compiled\): --config.mesh='\(1,4,1\)'"):
        plan_lib.add_compiled_cost(big, "v5e:2x2")


def test_the_grid_tool_covers_the_issue_grid_and_splits_small_batches_over_tensor():
    """tools/tpu_grid.py: base and large x 4 shapes x remat on / off x 6 slices = 96 cells; a batch
    smaller than the slice goes fsdp over its rows and tensor-parallel over the rest."""
    import sys
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    from tools import tpu_grid
    cells = dict(tpu_grid.cells())
    assert len(cells) == 96 and len({c[1] for c in cells.values()}) == 6
    c = tpu_grid.cell_config("large", "v5e-256", "xquad", 16, 384, False, 256)
    assert tuple(c.mesh) == (1, 16, 16) and c.target.batch_size == 16 and not c.model.remat
    assert c.evaluate.batch_size == 256 and c.target.tasks[0].max_length == 384
    C.validate(c, num_devices=256)   # the mesh is valid, but 64 hosts cannot split 16 rows: the run refuses it
    with pytest.raises(C.ConfigError, match=r"^config.target.batch_size=16 is not divisible by the data-parallel "
                                            r"size 16 \(mesh \(1, 16, 16\)\) x accum_steps 1 and by 64 processes; "
                                            r"use a multiple of 64$"):
        C.validate(c, num_devices=256, num_processes=64)
    assert "| not runnable | config.target.batch_size=16 is not divisible" in tpu_grid.table(
        [dict(cell="large v5e-256 B16xS384 remat=off", error="ConfigError: config.target.batch_size=16 is not "
              "divisible by the data-parallel size 16")])
    c = tpu_grid.cell_config("base", "v5e-8", "xnli", 256, 128, True, 8)
    assert tuple(c.mesh) == (1, 8, 1) and c.model.pretrained == "FacebookAI/xlm-roberta-base"


def test_steps_are_costed_at_the_model_flops_where_xla_counts_a_collective_matmul_short():
    """XLM-R large, B=32 S=256, remat, 8 chips: 32 x 256 tokens x (6 x 24 (4d^2 + 2df) + 12 x 24 x 256 d)
    x 4/3 / 8 = 2.577 TFLOP per chip. v6e-8's compile counts 2.62 (kept); v5e-8's, whose layers
    become collective-permute loops, 2.00 (docs/tpu.md round 4): costed at the model's count."""
    from xtreme_jax.study.validate import KNOWN_MODELS
    large = KNOWN_MODELS["FacebookAI/xlm-roberta-large"]
    per_token = 6 * 24 * (4 * 1024 ** 2 + 2 * 1024 * 4096) + 12 * 24 * 256 * 1024
    floor = 32 * 256 * per_token * 4 / 3 / 8
    assert floor == pytest.approx(2.577e12, rel=1e-3)
    row = dict(train=True, batch=32, seq=256)
    assert cost_lib.costed_flops(dict(row, flops=2.62e12), large, True, 8) == (2.62e12, "compiled")
    flops, by = cost_lib.costed_flops(dict(row, flops=2.00e12), large, True, 8)
    assert flops == pytest.approx(floor) and by == "model (XLA's count is lower)"
    # an evaluator forward: a third of a training step's FLOPs, never remat's
    flops, _ = cost_lib.costed_flops(dict(row, train=False, batch=64, flops=0.5e12), large, True, 8)
    assert flops == pytest.approx(64 * 256 * per_token / 3 / 8)
