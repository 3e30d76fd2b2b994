"""python -m xtreme_jax.study plan|run|status|report --config=configs/studies/NAME.py[:args] --workdir=DIR

  plan     expand factors x seeds, validate every point, print the point table, the shared runs and
           the cost; writes DIR/plan.json. --budget_hours=H refuses a plan that costs more.
           --compile=v5e:2x4 [--mfu=F] also compiles every distinct program for that TPU slice
           (libtpu) and costs each run from its compiled FLOPs; a run that does not fit refuses the plan.
  run      plan, then run the graph: --executor=local (--parallel=N processes), slurm (writes an
           sbatch array per graph level and DIR/slurm/submit.sh; --submit submits it) or tpu
           (--tpu=NAME[,NAME] TPU VMs through launch/sweep.sh; --dry_run prints the commands).
           Re-running skips finished runs and resumes the others.
  status   the state of every point (done / running / partial / failed / blocked / pending)
  report   DIR/report/: results_long.csv, report.md, plots, analysis.json

Study overrides as everywhere: --config.seeds='(0,1,2,3,4)' --config.factors.target_examples='(100,1000)'.
"""
from __future__ import annotations

import logging
import os
import sys

from absl import app, flags
from ml_collections import config_flags

COMMANDS = ("plan", "run", "status", "report")
_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/studies/NAME.py[:args]", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "study directory (local path; gs:// for --executor=tpu)")
_BUDGET = flags.DEFINE_float("budget_hours", None, "refuse a plan costing more accelerator-hours than this")
_EXECUTOR = flags.DEFINE_enum("executor", "local", ["local", "slurm", "tpu"], "where runs go")
_PARALLEL = flags.DEFINE_integer("parallel", 1, "local: runs at the same time")
_SUBMIT = flags.DEFINE_bool("submit", False, "slurm: submit the written scripts (sbatch)")
_SLURM_NODES = flags.DEFINE_integer("slurm_nodes", 1, "slurm: nodes per run (>1: multi-node via jax.distributed)")
_SLURM_GPUS = flags.DEFINE_integer("slurm_gpus", 8, "slurm: GPUs per node")
_SLURM_CPUS = flags.DEFINE_integer("slurm_cpus", 16, "slurm: CPUs per task")
_SLURM_TIME = flags.DEFINE_string("slurm_time", "24:00:00", "slurm: time limit per run")
_SLURM_EXTRA = flags.DEFINE_string("slurm_extra", "", "slurm: extra #SBATCH options, e.g. '--partition=gpu'")
_SLURM_MAX = flags.DEFINE_integer("slurm_max_parallel", 64, "slurm: array tasks running at once")
_TPU = flags.DEFINE_list("tpu", [], "tpu: TPU VM names (each runs its share of a level in turn)")
_ZONE = flags.DEFINE_string("zone", "", "tpu: zone (default: launch/common.sh's)")
_PROJECT = flags.DEFINE_string("project", "", "tpu: project")
_COMPILE = flags.DEFINE_string("compile", "", "plan: AOT-compile every distinct program for this TPU topology "
                                "(e.g. v5e:2x4; needs libtpu) and cost the runs from it")
_MFU = flags.DEFINE_float("mfu", None, "plan --compile: the MFU each compiled step runs at (default: measured, named)")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "tpu: print the launch commands, run nothing")


def main(argv):
    for noisy in ("absl", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if len(argv) != 2 or argv[1] not in COMMANDS:
        _fail(f"give one command: {' | '.join(COMMANDS)} (got {' '.join(argv[1:]) or 'none'})")
    if _WORKDIR.value is None:
        _fail("--workdir is required: the study directory")
    if _CONFIG.value is None:
        _fail("--config is required: configs/studies/NAME.py[:scale=tiny|full]")
    from xtreme_jax.config import ConfigError
    from xtreme_jax.data.errors import DataError
    from xtreme_jax.study.spec import StudyError
    try:
        sys.exit(run_command(argv[1], _CONFIG.value, _WORKDIR.value))
    except (StudyError, ConfigError, DataError, ValueError) as e:
        _fail((str(e).splitlines() or [""])[0])


def _fail(msg: str):
    print(f"error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def run_command(cmd: str, study, root: str) -> int:
    from xtreme_jax.study import executors, plan as plan_lib
    if "factors" not in study or not study.get("recipe"):
        raise ValueError("this config is not a study (no factors / recipe); use configs/studies/<name>.py "
                         "with a get_config that returns xtreme_jax.study.spec.study(...)")
    _quiet()
    root = root if "://" in root else os.path.abspath(root)
    plan = plan_lib.make_plan(study)
    if _COMPILE.value:
        rows = None if "://" in root else os.path.join(root, f"compile_rows.{_COMPILE.value.replace(':', '_')}.json")
        plan_lib.add_compiled_cost(plan, _COMPILE.value, _MFU.value, rows_file=rows,
                                   log=lambda line: print(line, file=sys.stderr, flush=True))
    if cmd == "plan":
        print(plan_lib.table(plan))
        plan_lib.check_budget(plan, _BUDGET.value)
        print(f"plan written to {plan_lib.write(plan, root)}")
        return 0
    plan_lib.check_budget(plan, _BUDGET.value)
    plan_lib.write(plan, root)
    if cmd == "run":
        plan_lib.check_runnable(plan)
        return _run(plan, root)
    if cmd == "status":
        print(executors.status_table(plan, root))
        return 0
    from xtreme_jax.study import report
    out = report.build(plan, root)
    print(out["summary"])
    print(f"report written to {out['dir']}")
    return 0


def _run(plan, root: str) -> int:
    from xtreme_jax.study import executors
    ex = _EXECUTOR.value
    if ex == "local":
        state = executors.run_local(plan, root, parallel=max(1, _PARALLEL.value))
    elif ex == "slurm":
        paths = executors.write_slurm(plan, root, nodes=_SLURM_NODES.value, gpus=_SLURM_GPUS.value,
                                      cpus=_SLURM_CPUS.value, time_limit=_SLURM_TIME.value,
                                      max_parallel=_SLURM_MAX.value, extra=_SLURM_EXTRA.value)
        print("\n".join(paths))
        submit = paths[-1]
        if not _SUBMIT.value:
            print(f"submit with: bash {submit}   (then: python -m xtreme_jax.study status ...)")
            return 0
        import subprocess
        return subprocess.run(["bash", submit]).returncode
    else:
        state = executors.run_tpu(plan, root, _TPU.value, zone=_ZONE.value, project=_PROJECT.value,
                                  dry_run=_DRY_RUN.value)
        if _DRY_RUN.value:
            return 0
    print(executors.status_table(plan, root))
    failed = [h for h, s in state.items() if s in ("failed", "blocked")]
    return 1 if failed else 0


def _quiet():
    try:
        import datasets
        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:
        pass


def _parse_flags(argv):
    from xtreme_jax.config import last_override_wins
    sys.argv = argv = last_override_wins(argv)  # a repeated tuple override replaces, never appends
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        msg = str(e)
        if "Traceback" in msg:  # the study file raised: its own message, not the traceback
            last = [l for l in msg.splitlines() if l.strip()][-1]
            flag = msg.split(":", 1)[0].replace("flag ", "")
            msg = f"{flag}: {last.split(': ', 1)[-1]}"
        _fail(msg)
    except (AttributeError, KeyError) as e:  # ml_collections: an override of a key the study lacks
        bad = [a for a in argv if a.startswith("--config.")]
        msg = str(e).strip("'\"").replace("\\n", " ").replace('\\"', '"').replace("\\'", "'")
        _fail(f"unknown study config key among {' '.join(bad)}: {msg}")
    except ValueError as e:  # the study file rejecting its :args
        _fail((str(e).splitlines() or [""])[0])


def run():
    app.run(main, flags_parser=_parse_flags)
