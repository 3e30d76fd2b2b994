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
import contextlib
import json
import logging
import time

import jax
from flax import nnx

from xtreme_jax import config as config_lib
from xtreme_jax import preflight, report
from xtreme_jax import workdir as workdir_lib
from xtreme_jax.context import RunContext, build_context, source
from xtreme_jax.evaluation import Evaluator, checkpoints, load_eval_sets, output
from xtreme_jax.evaluation.sets import eval_languages
from xtreme_jax.handoff import Handoff, init_weights, read_summary
from xtreme_jax.tasks import get_task
from xtreme_jax.tasks.languages import BENCHMARKS
from xtreme_jax.processes import sync
from xtreme_jax.train_loop import train_phase
from xtreme_jax.train_step import create_model
from xtreme_jax.workdir import check_workdir  # noqa: F401  (re-exported: phases.check_workdir)

log = logging.getLogger(__name__)


def run_pipeline(config, workdir: str) -> dict:
    """Runs (or resumes) every configured phase; returns {phase: summary}."""
    context = build_context(config, workdir)
    names = config_lib.phases(config)
    if config.init_from:
        _check_init_from(config.init_from)  # a ConfigError naming the path, before any compute
    if "evaluate" in names:  # a missing test file is otherwise found after all training
        preflight.check_eval_inputs(config)
    lock = workdir_lib.prepare(workdir, jax.process_index())
    try:
        check_workdir(config, workdir, process_index=jax.process_index())
        sync("xtreme_jax_check_workdir")  # new_run / evaluate-only moves done before anyone writes
        training = [p for p in names if p != "evaluate"]
        workdir_lib.check_finished(config, workdir, training)
        pending = [p for p in training if workdir_lib.RunDir(workdir).phase(p).summary() is None]
        preflight.check_training_inputs(context, pending[1:])
        handoff = None
        if config.init_from:
            try:
                handoff = Handoff.load(config.init_from, context.model_cfg, context.mesh)
            except Exception as e:  # noqa: BLE001  a damaged final/ of the other run
                raise workdir_lib.damaged_final(config.init_from, e) from e
        summaries = {}
        for phase in names:
            if phase == "evaluate":
                summaries[phase] = evaluate_phase(context, handoff)
            else:
                summaries[phase], handoff = train_phase(phase, config[phase], context, handoff)
        print_summary(summaries, workdir)
        return summaries
    finally:
        if lock is not None:
            lock.release()


def _check_init_from(phase_dir: str):
    try:
        read_summary(phase_dir)
    except config_lib.ConfigError:
        raise
    except (ValueError, UnicodeDecodeError):  # a truncated summary.json
        workdir_lib.read_phase_summary(phase_dir)  # raises, naming the file and the recovery
        raise


_SAID: list = []  # while several runs print as one (an ablation's arms): the notes already said


@contextlib.contextmanager
def notes_once():
    """The runs inside print each note (what MFU is relative to) once, not once per run."""
    _SAID.append(set())
    try:
        yield
    finally:
        _SAID.pop()


def _say(line: str):
    if jax.process_index() == 0:
        print(line, flush=True)


def print_summary(summaries: dict, workdir: str = ""):
    """The phase table (dev scores and MFU in percent, like the evaluation tables) and where
    everything was written."""
    if jax.process_index() != 0:
        return
    print("\nphase         steps  best dev %  loss     tokens/s   MFU %   stop")
    for name, s in summaries.items():
        if name == "evaluate":
            continue
        best = s.get("best_dev_score")
        dev = "-" if best is None else (f"{100 * best:.2f}" if best >= 0 else f"loss {-best:.3f}")
        print(f"{name:12s} {s.get('steps', 0):6d}  {dev:10s}  {s.get('loss', float('nan')):.4f}  "
              f"{s.get('tokens_per_s', 0):9.0f}  {100 * s.get('mfu', 0):6.2f}  {s.get('stop_reason', '')}")
    mfu_ref = next((s.get("mfu_peak") for s in summaries.values() if s.get("mfu_peak")), None)
    if mfu_ref and not (_SAID and mfu_ref in _SAID[-1]):
        if _SAID:
            _SAID[-1].add(mfu_ref)
        print(f"MFU % is relative to {mfu_ref}")
    if workdir:
        run = workdir_lib.RunDir(workdir)
        print(f"\nwritten to {workdir}:")
        for name, s in summaries.items():
            if name == "evaluate":
                print(f"  evaluation   {s.get('out_dir', run.phase('evaluate').results)}")
            else:
                pdir = run.phase(name)
                print(f"  {name:12s} {pdir.final} (model handed on), {pdir.summary_file}, "
                      f"{pdir.metrics} (train.jsonl, tensorboard/)")


def evaluate_phase(context: RunContext, handoff: Handoff | None, out_dir: str | None = None) -> dict:
    """Zero-shot: every language of every configured task through the vectorized evaluator.

    The results folder (default RUN/evaluate/results) belongs to one checkpoint: one holding another
    checkpoint's results is refused before compute, and the new files replace the old ones whole
    (evaluation/output.py). Default languages: the benchmark's (config.evaluate.benchmark).
    """
    ecfg = context.config.evaluate
    out_dir = out_dir or workdir_lib.RunDir(context.workdir).phase("evaluate").results
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
    # Retrieval layer / pooling: a task entry's, else evaluate's, else the task's official ones
    # (evaluation/retrieval.py); results.json records those used ("evaluator" section).
    evaluator = Evaluator(model, context.mesh, batch_size=ecfg.batch_size,
                          buckets=ecfg.get("buckets") or context.config.data.buckets,
                          retrieval_layer=ecfg.get("retrieval_layer"), retrieval_pooling=ecfg.get("retrieval_pooling"))
    done = {}
    for i, (task, entry) in enumerate(zip(tasks, ecfg.tasks)):
        src, t0 = source(entry.source), time.perf_counter()
        langs = eval_languages(task, src, (entry.languages, ecfg.languages), ecfg.benchmark)
        tag = f"[evaluate {i + 1}/{len(tasks)}] {task.name}"
        _say(f"{tag}: loading {ecfg.split} data of {len(langs)} languages ({' '.join(langs)})")
        sets = load_eval_sets(task, context.eval_tokenizer(entry), src, split=ecfg.split, languages=langs,
                              cache_dir=context.cache_dir, max_length=entry.get("max_length", 0) or None)
        r = done[task.name] = evaluator.evaluate_task(task, sets, retrieval_layer=entry.get("retrieval_layer"),
                                                      retrieval_pooling=entry.get("retrieval_pooling"), progress=tag)
        _say(f"{tag}: {len(r.scores)} languages scored in {time.perf_counter() - t0:.1f} s (forward "
             f"{r.info.get('forward_s', 0):.1f} s, decode + score {r.info.get('decode_s', 0):.1f} s)")
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
    output.check_folder(workdir_lib.RunDir(workdir).phase("evaluate").results, output.record(name),
                        repair=jax.process_index() == 0)
    context = build_context(config, workdir)
    handoff = Handoff.load(phase_dir, context.model_cfg, context.mesh, keep_heads=True) if phase_dir else None
    return evaluate_phase(context, handoff)
