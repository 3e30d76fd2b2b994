"""The X-STILTs phase runner: phases run in order, weights handed from one to the next.

    config -> RunContext (context.py) -> [mlm] -> [intermediate] -> [target] -> [evaluate]
                                each training phase: train_loop.train_phase(name, cfg, context, handoff)
                                                     -> (summary, handoff)   (handoff.py)

A run starts from the pretrained checkpoint, or with `config.init_from` from a finished phase of
another run (e.g. one shared intermediate checkpoint for many target runs).

Run directory (local, or gs://... on TPU VMs: see xtreme_jax.files):
    DIR/config.json                 resolved config (a re-run with another config refuses)
    DIR/<phase>/checkpoints         Orbax train state + grain iterator state (resume)
    DIR/<phase>/best/<step>         model params of the best validated step (older ones pruned)
    DIR/<phase>/final               model params handed on to the next phase
    DIR/<phase>/metrics             train.jsonl, tensorboard/
    DIR/<phase>/results             summary.json (phase done), evaluation results and reports
"""
import json
import logging
import os

import jax
from etils import epath
from flax import nnx

from xtreme_jax import config as config_lib
from xtreme_jax import report
from xtreme_jax.context import RunContext, build_context, source
from xtreme_jax.evaluation import Evaluator, checkpoints, load_eval_sets, output
from xtreme_jax.files import write_json
from xtreme_jax.handoff import Handoff, init_weights, read_summary
from xtreme_jax.tasks import get_task
from xtreme_jax.tasks.languages import BENCHMARKS, benchmark_languages
from xtreme_jax.train_loop import train_phase
from xtreme_jax.train_step import create_model

log = logging.getLogger(__name__)


def run_pipeline(config, workdir: str) -> dict:
    """Runs (or resumes) every configured phase; returns {phase: summary}."""
    context = build_context(config, workdir)
    handoff = None
    if config.init_from:
        read_summary(config.init_from)  # a ConfigError naming the path, before any compute
    check_workdir(config, workdir)
    if config.init_from:
        handoff = Handoff.load(config.init_from, context.model_cfg, context.mesh)
    summaries = {}
    for phase in config_lib.phases(config):
        if phase == "evaluate":
            summaries[phase] = evaluate_phase(context, handoff)
        else:
            summaries[phase], handoff = train_phase(phase, config[phase], context, handoff)
    print_summary(summaries)
    return summaries


def check_workdir(config, workdir: str):
    """Refuses to mix two different configs in one run directory (unless config.new_run)."""
    path = epath.Path(workdir, "config.json")
    resolved = json.loads(config.to_json_best_effort(sort_keys=True))
    if path.exists():
        old = json.loads(path.read_bytes())
        old.pop("new_run", None)
        cur = {k: v for k, v in resolved.items() if k != "new_run"}
        if old != cur and not config.new_run:
            diff = sorted(k for k in set(old) | set(cur) if old.get(k) != cur.get(k))
            raise config_lib.ConfigError(
                f"{workdir} holds a run with a different config (differs in: {', '.join(diff)}); "
                "results there would be overwritten. Use another --workdir, or pass "
                "--config.new_run=True to start a new run in this directory")
        if old != cur and jax.process_index() == 0:  # new run requested: previous phases are not reusable
            for p in config_lib.PHASES:
                try:
                    epath.Path(workdir, p).rmtree(missing_ok=True)
                except OSError as e:  # as before: a phase that cannot be removed is left (and said)
                    log.warning("could not remove %s: %s", os.path.join(workdir, p), e)
    if jax.process_index() == 0:
        write_json(os.fspath(path), resolved)


def print_summary(summaries: dict):
    if jax.process_index() != 0:
        return
    print("\nphase         steps  best dev  loss     tokens/s   MFU    stop")
    for name, s in summaries.items():
        if name == "evaluate":
            continue
        best = s.get("best_dev_score")
        print(f"{name:12s} {s.get('steps', 0):6d}  {best if best is None else round(best, 4)!s:8s}  "
              f"{s.get('loss', float('nan')):.4f}  {s.get('tokens_per_s', 0):9.0f}  "
              f"{s.get('mfu', 0):5.1%}  {s.get('stop_reason', '')}")


def evaluate_phase(context: RunContext, handoff: Handoff | None, out_dir: str | None = None) -> dict:
    """Zero-shot: every language of every configured task through the vectorized evaluator.

    The results folder (default RUN/evaluate/results) belongs to one checkpoint: one holding another
    checkpoint's results is refused before compute, and the new files replace the old ones whole
    (evaluation/output.py). Default languages: the benchmark's (config.evaluate.benchmark).
    """
    ecfg = context.config.evaluate
    out_dir = out_dir or os.path.join(context.workdir, "evaluate", "results")
    if ecfg.benchmark not in BENCHMARKS:
        raise config_lib.ConfigError(f"config.evaluate.benchmark={ecfg.benchmark!r}; choose from "
                                     f"{', '.join(BENCHMARKS)} (it sets the languages and the averages)")
    rec = output.record(checkpoints.checkpoint_of(context, handoff),
                        phase=handoff.phase if handoff else None, benchmark=ecfg.benchmark, split=ecfg.split)
    output.check_folder(out_dir, rec, repair=jax.process_index() == 0)
    tasks = [get_task(t.name) for t in ecfg.tasks]
    heads = {t.name: (t.kind, t.num_labels(source(e.source))) for t, e in zip(tasks, ecfg.tasks) if t.has_head}
    model = create_model(context.model_cfg, heads, context.mesh, seed=context.config.seed)
    state = nnx.state(model)
    init_weights(state, heads, context, handoff, require_heads=True)
    nnx.update(model, state)
    layer = None if ecfg.retrieval_layer < 0 else ecfg.retrieval_layer
    evaluator = Evaluator(model, context.mesh, batch_size=ecfg.batch_size, buckets=context.config.data.buckets,
                          retrieval_layer=layer)
    done = {}
    for task, entry in zip(tasks, ecfg.tasks):
        langs = [l for l in (entry.languages or ecfg.languages).split(",") if l]
        sets = load_eval_sets(task, context.tokenizer, source(entry.source), split=ecfg.split,
                              languages=langs or benchmark_languages(task.name, ecfg.benchmark),
                              cache_dir=context.cache_dir, max_length=entry.get("max_length", 0) or None)
        done[task.name] = evaluator.evaluate_task(task, sets)
    info = {t: {k: v for k, v in r.info.items() if isinstance(v, (int, float, str, list))} for t, r in done.items()}
    meta = {"config": json.loads(context.config.to_json_best_effort()), "git_commit": report.git_commit(),
            "checkpoint": rec["checkpoint"], "handoff_phase": handoff.phase if handoff else None,
            "seed": context.config.seed, "benchmark": ecfg.benchmark, "evaluator": info}
    results = {t: r.scores for t, r in done.items() if r.scores}
    if jax.process_index() == 0:
        out = output.write_results(out_dir, rec, done, meta, benchmark=ecfg.benchmark,
                                   write_submission=ecfg.write_submission)
        print_results(results)
        output.say(out, ecfg.split)
        print(f"\nevaluate: results of {rec['checkpoint']} in {out_dir}")
    return {"results": results, "out_dir": out_dir}


def print_results(results: dict):
    for task, langs in results.items():
        print(f"\n{task}: zero-shot per language")
        for lang, metrics in langs.items():
            print(f"  {lang:6s} " + "  ".join(f"{k}={v:.2f}" for k, v in metrics.items()
                                              if isinstance(v, (int, float))))


def evaluate_checkpoint(config, checkpoint: str, workdir: str) -> dict:
    """Scores any checkpoint on every task and language of the config's evaluate section, into
    WORKDIR/evaluate/results (a run's layout); a folder holding another checkpoint's results is
    refused before anything is loaded.

    `checkpoint`: a phase directory of one of our runs (`RUN/target`, or its `final/`: the model and
    tokenizer settings then come from RUN/config.json), or an HF directory / hub id (config.json +
    weights, heads loaded where present). A run directory is refused, naming its phases.
    """
    config, phase_dir, name = checkpoints.for_evaluation(config, checkpoint)
    output.check_folder(os.path.join(workdir, "evaluate", "results"), output.record(name),
                        repair=jax.process_index() == 0)
    context = build_context(config, workdir)
    handoff = Handoff.load(phase_dir, context.model_cfg, context.mesh, keep_heads=True) if phase_dir else None
    return evaluate_phase(context, handoff)
