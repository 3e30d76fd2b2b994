"""Entry point: python -m xtreme_jax.main --config=configs/X.py[:args] --workdir=DIR [--config.a.b=v]

Runs the configured phases (mlm / intermediate / target / evaluate) and resumes from DIR.
"""
import logging
import os
import re
import signal
import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/X.py[:args]", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (local path or gs://...)")
_DISTRIBUTED = flags.DEFINE_enum("distributed", "auto", ["auto", "on", "off"],
                                 "call jax.distributed.initialize(): auto = when a cluster is detected")
# Multi-host failure detection (see docs/reliability.md): a process that stops sending heartbeats
# for this long is declared dead and every other process stops with an error instead of hanging.
_HEARTBEAT = flags.DEFINE_integer("heartbeat_timeout", 60, "seconds before a silent process is declared dead")
_INIT_TIMEOUT = flags.DEFINE_integer("init_timeout", 300, "seconds to wait for all processes to connect")
_SHUTDOWN_TIMEOUT = flags.DEFINE_integer("shutdown_timeout", 300,
                                         "seconds a finished process waits for the others at exit")


def init_distributed(mode: str):
    """Multi-host: TPU pods and SLURM are auto-detected; plain GPU hosts pass JAX_COORDINATOR_ADDRESS,
    JAX_NUM_PROCESSES and JAX_PROCESS_ID (see docs/launch.md)."""
    import jax
    env = os.environ
    explicit = "JAX_COORDINATOR_ADDRESS" in env and "JAX_NUM_PROCESSES" in env
    if mode == "off" or (mode == "auto" and not explicit and not _cluster_detected()):
        return
    timeouts = dict(initialization_timeout=_INIT_TIMEOUT.value, heartbeat_timeout_seconds=_HEARTBEAT.value,
                    shutdown_timeout_seconds=_SHUTDOWN_TIMEOUT.value)
    if explicit:
        jax.distributed.initialize(coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
                                   num_processes=int(env["JAX_NUM_PROCESSES"]),
                                   process_id=int(env.get("JAX_PROCESS_ID", 0)), **timeouts)
    else:
        jax.distributed.initialize(**timeouts)


def _cluster_detected() -> bool:
    env = os.environ
    return ("TPU_WORKER_HOSTNAMES" in env and "," in env["TPU_WORKER_HOSTNAMES"]) or (
        int(env.get("SLURM_NTASKS", "1")) > 1)


def main(argv):
    # The library (jax, orbax, grain, every task) is imported after the flags are parsed, so
    # --help and a bad flag answer at once, and after the compilation cache is configured.
    signal.signal(signal.SIGINT, _on_interrupt)  # Ctrl-C: save and stop, never a traceback
    from xtreme_jax.checkpoint import CheckpointError
    from xtreme_jax.config import ConfigError
    from xtreme_jax.data.errors import DataError
    from xtreme_jax.workdir import WriteError
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "orbax", "jax._src", "grain"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("absl").addFilter(_orbax_thread_errors)
    if _WORKDIR.value is None:
        raise app.UsageError("--workdir is required")
    import jax
    # Random bits stay JAX's default threefry (partitionable): each device draws only its own
    # dropout bits. rbg draws the whole global batch's bits on every device (+11.7 GiB per device
    # for XLM-R large at B=256, docs/benchmarks.md) and was 8-11% slower per CPU step.
    # Persistent compilation cache: a restarted or repeated run skips most compiles.
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir",
                          os.path.join(os.path.expanduser("~"), ".cache", "xtreme_jax", "jit"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    init_distributed(_DISTRIBUTED.value)
    from xtreme_jax.ablation import run_ablation
    from xtreme_jax.config import check_runnable
    from xtreme_jax.phases import run_pipeline
    try:
        _check_workdir_path(_WORKDIR.value)
        check_runnable(_CONFIG.value)
        # config.ablate: the run with and without one phase, from one shared start (X-STILTs's comparison).
        (run_ablation if _CONFIG.value.ablate else run_pipeline)(_CONFIG.value, _WORKDIR.value)
    except SystemExit as e:  # the training loop's preemption exit, after it saved the step
        if _INTERRUPT["seen"]:
            step = getattr(e, "step", None)
            _fail(130, f"interrupted (Ctrl-C){f' at step {step}' if step is not None else ''}: the "
                       "checkpoint is saved; rerun the same command to resume")
        raise
    except (ConfigError, DataError) as e:  # bad input, found before compute
        _fail(2, f"error: {e}")
    except FloatingPointError as e:  # numerical fault
        _fail(1, f"error: {e}")
    except (CheckpointError, WriteError) as e:  # failed save / write (e.g. a full disk)
        # Exit at once: orbax's save threads of the failed step would print tracebacks while
        # the interpreter shuts down around them.
        _fail(1, f"error: {e}", hard=True)
    except Exception as e:
        if jax.process_count() == 1:
            raise
        import traceback
        traceback.print_exc()
        _fail(1, f"error: process {jax.process_index()} of {jax.process_count()} stopped "
                 f"({type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}). In a multi-process run "
                 "this usually means another process died or was killed: see its log. Restart all "
                 "processes with the same command; each phase resumes from its last checkpoint")


_INTERRUPT = {"seen": False}


def _on_interrupt(signum, frame):
    """Ctrl-C. While a phase trains (its loop owns SIGTERM) it is a preemption notice: the loop
    saves the current step and stops, and main exits 130. Elsewhere (start-up, hand-off,
    evaluation) nothing is half done that a rerun does not redo: exit at once, never ignored.
    A second Ctrl-C while the step is being saved exits at once too."""
    handler = signal.getsignal(signal.SIGTERM)
    if callable(handler) and not _INTERRUPT["seen"]:
        _INTERRUPT["seen"] = True
        print("\ninterrupted (Ctrl-C): saving a checkpoint of the current step ...", file=sys.stderr, flush=True)
        handler(signal.SIGTERM, frame)
        return
    print("\ninterrupted (Ctrl-C): the finished phases and committed checkpoints are on disk; rerun "
          "the same command to resume", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(130)


def _check_workdir_path(workdir: str):
    from xtreme_jax.config import ConfigError
    if "://" not in workdir and os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ConfigError(f"--workdir={workdir} is a file, not a directory; give a new or existing "
                          "run directory")


def _orbax_thread_errors(record) -> bool:
    """Orbax's save threads log each failure with a full traceback (a full disk: one per thread
    and array). The Checkpointer reports the failure itself, naming the step and the path, so
    these keep their one-line message and lose the traceback."""
    if record.exc_info and "orbax" in record.pathname and record.levelno >= logging.ERROR:
        record.exc_info, record.exc_text = None, None
    return True


def _fail(code: int, message: str, hard: bool = False):
    import jax
    print(message, file=sys.stderr, flush=True)
    if hard or jax.process_count() > 1:
        # Skip jax.distributed's shutdown barrier: with a peer dead or stuck in a collective it would
        # hold this process for --shutdown_timeout; exiting now also lets the peers fail fast.
        sys.stdout.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


def _parse_flags(argv):
    """absl parsing, with a one-line did-you-mean for a misspelled --config.x override."""
    from xtreme_jax.config import config_file_problem, flag_error_line, last_override_wins
    sys.argv = argv = last_override_wins(argv)  # config_flags reads the override names from sys.argv
    problem = config_file_problem(argv)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(f"error: {flag_error_line(e)}", file=sys.stderr)
        sys.exit(2)
    except (AttributeError, KeyError) as e:  # ml_collections: unknown key, with did-you-mean
        bad = [a for a in argv if a.startswith("--config.")]
        msg = str(e).strip("'\"").replace("\\n", " ").replace('\\"', '"').replace("\\'", "'")
        print(f"error: unknown config key among {' '.join(bad)}: {msg}", file=sys.stderr)
        sys.exit(2)
    except IndexError:  # an override of a list entry the config file does not define
        print(f"error: {_bad_index(argv)}", file=sys.stderr)
        sys.exit(2)
    except ValueError as e:  # the config file rejecting its :arg, or an override path it cannot parse
        msg = (str(e).splitlines() or [""])[0]
        hint = " (index list entries as tasks[0], not tasks.0)" if "Could not parse" in msg else ""
        print(f"error: {msg}{hint}", file=sys.stderr)
        sys.exit(2)


def _bad_index(argv) -> str:
    """Names the --config.x[i] override whose list has no entry i (ml_collections says only
    "list index out of range"), with the list's length when the config file loads."""
    overrides = [a for a in argv if a.startswith("--config.") and "[" in a]
    config = _load_config_file(argv)
    for arg in overrides:
        node, where = config, "config"
        for name, index in re.findall(r"\.?(\w+)|\[(-?\d+)\]", arg[len("--config."):].split("=", 1)[0]):
            if node is None:
                break
            if name:
                node, where = (node.get(name) if hasattr(node, "get") else None), f"{where}.{name}"
            elif isinstance(node, (list, tuple)) and not -len(node) <= int(index) < len(node):
                n = len(node)
                has = "is empty" if not n else "has 1 entry, [0]" if n == 1 else f"has {n} entries, [0] to [{n - 1}]"
                return (f"{arg}: {where} {has}; there is no [{index}]. Override an existing entry, "
                        "or add the entry in the config file")
            else:
                node, where = (node[int(index)] if isinstance(node, (list, tuple)) else None), f"{where}[{index}]"
    return (f"{' '.join(overrides)}: a list index out of range (the list has fewer entries); "
            "override an existing entry (counting from 0), or add the entry in the config file")


def _load_config_file(argv):
    """The config that --config=FILE[:arg] builds, or None (only to word an error message)."""
    spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
    if not spec:
        return None
    import importlib.util
    path, _, arg = spec.partition(":")
    try:
        module_spec = importlib.util.spec_from_file_location("_xtreme_jax_config_for_error", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return module.get_config(arg) if arg else module.get_config()
    except Exception:  # noqa: BLE001  the message then goes without the list's length
        return None


def run():
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
