"""Which checkpoint an evaluation scores, and the settings that come with it.

    RUN/<phase> (or RUN/<phase>/final)   a finished phase of one of our runs: the model and
                                         tokenizer settings come from RUN/config.json
    RUN                                  refused, naming the phases it holds
    an HF directory or hub id            config.json + weights (heads loaded where present)

`name` is how provenance.json (evaluation/output.py) names the checkpoint: two evaluations with
the same name write to the same results folder, others are refused there.
"""
from __future__ import annotations

import json
import os

from etils import epath

from xtreme_jax import config as config_lib
from xtreme_jax.config import ConfigError
from xtreme_jax.files import is_remote
from xtreme_jax.workdir import PhaseDir, RunDir

TRAINING_PHASES = tuple(p for p in config_lib.PHASES if p != "evaluate")
# model settings that change training only: a difference from the run's is not worth a word
TRAINING_ONLY = ("dropout", "remat", "attention_dropout", "grad_dtype", "dropout_bits")


def location(path: str) -> str:
    """A phase directory as provenance names it: absolute (local), without a trailing final/."""
    path = os.fspath(path).rstrip("/")
    path = path[:-len("/final")] if path.endswith("/final") else path
    return path if is_remote(path) else os.path.abspath(path)


def pretrained_name(config) -> str:
    """The checkpoint of an evaluation without a trained phase: the pretrained one, or random init."""
    p = config.model.pretrained
    if p:
        return "pretrained " + (location(p) if is_remote(p) or os.path.exists(p) else p)  # else a hub id
    return f"random initialisation (model.size={config.model.size}, seed={config.seed})"


def checkpoint_of(context, handoff) -> str:
    """The checkpoint an evaluate phase scores: the phase handed on (its directory), else the
    pretrained weights."""
    if handoff is not None:
        return location(handoff.directory or RunDir(context.workdir).phase(handoff.phase).path)
    return pretrained_name(context.config)


def is_finished_phase(phase_dir: str) -> bool:
    return PhaseDir(phase_dir).intact()


def check_not_run_root(checkpoint: str) -> None:
    """A run directory given where a phase is expected: an error naming its phases and the pick."""
    root = epath.Path(checkpoint)
    started = [p for p in TRAINING_PHASES if (root / p).is_dir()]
    if not started:
        return
    finished = [p for p in started if RunDir(checkpoint).phase(p).intact()]
    base = checkpoint.rstrip("/")
    if finished:
        rest = [p for p in started if p not in finished]
        raise ConfigError(
            f"--checkpoint={checkpoint} is a run directory, not one of its phases. It holds the finished "
            f"phase(s) {', '.join(finished)}" + (f" (unfinished: {', '.join(rest)})" if rest else "")
            + f": pick one, e.g. --checkpoint={base}/{finished[-1]} (the last one, which the run's own "
            "evaluate phase scores)")
    raise ConfigError(f"--checkpoint={checkpoint} is a run directory with no finished phase yet (started: "
                      f"{', '.join(started)}); evaluate a phase once it has finished (RUN/<phase>/results/"
                      "summary.json and final/ exist)")


def for_evaluation(config, checkpoint: str):
    """(config, phase_dir or None, name): the config the evaluation runs with, ready for
    build_context. Only its evaluate section is used (phases = evaluate). For a phase of one of our
    runs, the model section (size / pretrained, tokenizer, dtype) is that run's, from
    RUN/config.json, since the weights were trained with it; for an HF checkpoint, model.pretrained
    is the checkpoint. Raises ConfigError for a run directory or a path that is no checkpoint."""
    phase_dir = location(checkpoint)
    ours = is_finished_phase(phase_dir)
    if not ours:
        check_not_run_root(checkpoint)
        if epath.Path(checkpoint).exists() and not epath.Path(checkpoint, "config.json").exists():
            raise ConfigError(
                f"--checkpoint={checkpoint}: neither a finished phase of a run (expected "
                f"{PhaseDir(phase_dir).summary_file} and final/) nor an HF checkpoint "
                "directory (config.json)")
    if not config.evaluate.tasks:
        raise ConfigError("config.evaluate.tasks is empty: nothing to evaluate; list the tasks in the "
                          "config's evaluate section (config.eval_task(...))")
    config = config.copy_and_resolve_references()
    config.unlock()
    config.phases = "evaluate"
    if ours:
        run_config = epath.Path(phase_dir).parent / "config.json"
        if run_config.exists():
            try:
                model = json.loads(run_config.read_bytes())["model"]
            except (ValueError, KeyError, TypeError):
                raise ConfigError(f"{run_config} is damaged (no model section): cannot tell which model "
                                  f"and tokenizer {phase_dir} was trained with") from None
            changed = [k for k, v in model.items() if k in config.model and config.model[k] != v
                       and k not in TRAINING_ONLY]
            for k, v in model.items():
                if k in config.model:
                    config.model[k] = v
            if changed:
                print(f"evaluate: model settings from the run ({run_config}): "
                      + ", ".join(f"model.{k}={model[k]!r}" for k in changed) + " (the given config's differ)")
    else:
        config.model.pretrained = checkpoint
    config.lock()
    return config, (phase_dir if ours else None), (phase_dir if ours else pretrained_name(config))
