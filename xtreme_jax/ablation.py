"""With and without one phase, from the same start: the X-STILTs comparison as one command.

`config.ablate = "intermediate"` turns one run into three, sharing what they have in common:

    DIR/shared/       the phases before the ablated one (e.g. mlm), trained once
    DIR/with/         the ablated phase and every later one, starting from DIR/shared's last phase
    DIR/without/      the later phases alone, from the same start, with the same seed
    DIR/comparison/   comparison.md / .csv / .png: per language, without, with, and the gain

Each arm is an ordinary run (its own config.json, checkpoints, resume); the arms differ only in the
ablated phase, so the gain is the effect of that phase and nothing else (same encoder, same target
data order, same seed).
"""
from __future__ import annotations

import copy
import os

import jax

from xtreme_jax import config as config_lib
from xtreme_jax import phases, report
from xtreme_jax.phases import check_workdir, run_pipeline

ARMS = ("with", "without")


def arm_configs(config) -> dict:
    """{"shared" (absent when nothing precedes the ablated phase), "with", "without": config}."""
    phase = config.ablate
    names = config_lib.phases(config)
    if phase not in names or phase == "evaluate":
        raise config_lib.ConfigError(
            f"config.ablate={phase!r} is not a training phase of config.phases={config.phases!r}; "
            f"name one of {[p for p in names if p != 'evaluate']}, or set it to '' for a single run")
    if "evaluate" not in names:
        raise config_lib.ConfigError("config.ablate needs an evaluate phase to compare the two runs; "
                                     "add evaluate to config.phases")
    i = names.index(phase)
    shared, rest = names[:i], names[i:]

    def derive(phases, init_from):
        c = copy.deepcopy(config)
        c.unlock()
        c.phases, c.ablate, c.init_from = ",".join(phases), "", init_from
        c.lock()
        return c

    start = config.init_from
    out = {}
    if shared:
        out["shared"] = derive(shared, config.init_from)
        start = os.path.join("{workdir}", "shared", shared[-1])
    out["with"] = derive(rest, start)
    out["without"] = derive([p for p in rest if p != phase], start)
    return out


def run_ablation(config, workdir: str) -> dict:
    """Runs (or resumes) the shared phases, then both arms; writes and prints the comparison."""
    arms = arm_configs(config)
    for name, c in arms.items():  # every arm is checked before any compute
        c.unlock()
        c.init_from = c.init_from.replace("{workdir}", workdir)
        c.lock()
        config_lib.validate(c, jax.device_count(), jax.process_count())
    check_workdir(config, workdir)
    with phases.notes_once():  # three phase tables, one MFU note
        summaries = {name: run_pipeline(c, os.path.join(workdir, name)) for name, c in arms.items()}
    if jax.process_index() == 0:
        out = os.path.join(workdir, "comparison")
        results = {arm: _results(workdir, arm) for arm in ARMS}
        note = one_run_note(config)
        paths = report.write_comparison(out, results["with"], results["without"], names=ARMS, note=note)
        print(gain_table(results["without"], results["with"], config.ablate))
        print(f"\n{note}")
        print(f"\nreports: {os.path.join(workdir, 'with', 'evaluate', 'results')} and "
              f"{os.path.join(workdir, 'without', 'evaluate', 'results')}; comparison: "
              f"{paths['markdown']} (+ {', '.join(os.path.basename(p) for k, p in paths.items() if k.startswith('plot'))})")
    return summaries


def _results(workdir: str, arm: str) -> dict:
    return report.read_results(os.path.join(workdir, arm, "evaluate", "results", "results.json"))[0]


def gain_table(without: dict, with_: dict, phase: str) -> str:
    """Per task: language, score without, with, and the gain (with − without), in percent;
    the average over the non-English languages last (the zero-shot transfer the recipe is for)."""
    lines = []
    for task, e in report.compare_runs(with_, without, names=ARMS).items():
        metric = report.metric_label(e["metric"])
        lines += ["", f"{task} ({metric}, %): without vs with {phase} training", "",
                  f"  {'language':10s} {'without':>8s} {'with':>8s} {'gain':>7s}"]
        rows = e["languages"]
        for lang, r in rows.items():
            lines.append(f"  {lang:10s} {r['without']:8.1f} {r['with']:8.1f} {r['delta']:+7.1f}")
        avg, zs = e["average"], report.zero_shot_average(e, ARMS)
        if avg:
            lines.append(f"  {'avg':10s} {avg['without']:8.1f} {avg['with']:8.1f} {avg['delta']:+7.1f}   "
                         f"(mean over all {len(rows)} languages, English included)")
        if zs:
            lines.append(f"  {'zero-shot':10s} {zs['without']:8.1f} {zs['with']:8.1f} {zs['delta']:+7.1f}   "
                         f"(mean over the {zs['languages']} non-English languages)")
    return "\n".join(lines)


def one_run_note(config) -> str:
    """What one with/without comparison can and cannot show, printed under its table and plots."""
    return (f"One run per arm, one seed (config.seed={config.seed}): a single run's gain moves with the seed, "
            "and this comparison has no spread or interval. Run several seeds for mean ± std and a CI "
            "(tools/demo_gain.py for the demo, measured in docs/demo_data.md; a study for any recipe).")
