"""The X-STILTs pipeline: phases run in order, weights handed from one to the next.

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
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath
from flax import nnx
from tqdm import tqdm

from xtreme_jax import config as config_lib
from xtreme_jax import loop, sharding, train
from xtreme_jax.data import Source, cached_features
from xtreme_jax.models import encoder as enc_lib
from xtreme_jax.models import hf as hf_lib
from xtreme_jax.files import is_remote, local_dir_for, upload_dir, write_atomic
from xtreme_jax.tasks import get_task

log = logging.getLogger(__name__)
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def write_json(path: str, obj):
    """Atomic JSON write, local or gs:// (see files.write_atomic)."""
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str))


def default_cache_dir(config, workdir: str) -> str:
    """The tokenized-feature cache: config.data.cache_dir, else <workdir>/cache. Features are
    memory-mapped .npy files, which an object store cannot hold: with a remote workdir the default
    is a local directory named after the workdir (each host tokenizes into its own)."""
    if config.data.cache_dir:
        if is_remote(config.data.cache_dir):
            raise config_lib.ConfigError(
                f"config.data.cache_dir={config.data.cache_dir!r}: the feature cache is memory-mapped "
                "and must be a local directory; leave it empty to use a local default")
        return config.data.cache_dir
    if not is_remote(workdir):
        return os.path.join(workdir, "cache")
    local = local_dir_for("features", workdir)
    log.info("workdir %s is remote: caching tokenized features locally in %s "
             "(set config.data.cache_dir to choose another local directory)", workdir, local)
    return local


class Run:
    """Everything the phases share: config, mesh, tokenizer, model config, weights hand-off."""

    def __init__(self, config, workdir: str):
        self.config, self.workdir = config, workdir
        if config.model.dtype not in DTYPES:
            raise config_lib.ConfigError(f"config.model.dtype={config.model.dtype!r}; choose from {list(DTYPES)}")
        config_lib.validate(config, jax.device_count(), jax.process_count())
        self.mesh = sharding.make_mesh(tuple(config.mesh))
        self.rng = jax.random.key(config.seed)
        self.hf_path, self.hf_type = None, None
        drop = dict(hidden_dropout=config.model.dropout, attention_dropout=config.model.dropout,
                    dtype=DTYPES[config.model.dtype], remat=config.model.remat)
        if config.model.pretrained:
            try:  # a hub id while offline, a path that is not a checkpoint: a config error
                self.hf_path = hf_lib.resolve(config.model.pretrained)
            except OSError as e:
                raise config_lib.ConfigError(f"config.model.pretrained={config.model.pretrained!r}: {e}") from None
            hf = hf_lib.read_config(self.hf_path)
            self.hf_type = hf["model_type"]
            self.model_cfg = hf_lib.config_from_hf(hf).replace(**drop)
        else:
            self.model_cfg = enc_lib.preset(config.model.size, **drop)
        tok = config.model.tokenizer or self.hf_path
        if not tok:
            raise config_lib.ConfigError("config.model.tokenizer is empty: set it to a tokenizer dir or hub id "
                                         "(or set config.model.pretrained)")
        try:
            self.tokenizer = hf_lib.load_tokenizer(tok)
        except OSError as e:
            field = "tokenizer" if config.model.tokenizer else "pretrained"
            raise config_lib.ConfigError(f"config.model.{field}={tok!r}: {e}") from None
        if len(self.tokenizer) > self.model_cfg.vocab_size:
            raise config_lib.ConfigError(
                f"tokenizer {tok} has {len(self.tokenizer)} tokens but the model vocab is "
                f"{self.model_cfg.vocab_size}; use --config.model.size / pretrained that matches")
        self.cache_dir = default_cache_dir(config, workdir)
        self.handoff = None
        self._peak = None

    # ---- services used by loop.train_phase
    get_task = staticmethod(get_task)

    @staticmethod
    def source(src) -> Source:
        return Source(type=src.type, path=src.path, config=src.config, split=src.split)

    def features(self, task, split, lang, src, max_length=0):
        return cached_features(task, split, lang, self.tokenizer, source=self.source(src),
                               cache_dir=self.cache_dir, max_length=max_length or None,
                               errors=self.config.data.errors, progress=jax.process_index() == 0)

    def num_labels(self, task, src) -> int:
        if task.kind == "multiple_choice":
            return 1
        if task.kind in ("span", "mlm", "retrieval"):
            return 2
        return len(task.label_list(self.source(src)))

    @property
    def peak_flops(self) -> float:
        if self._peak is None:
            self._peak = loop.peak_flops_per_device()
        return self._peak

    def progress(self, **kw):
        return tqdm(disable=jax.process_index() != 0, dynamic_ncols=True, **kw)

    def write_json(self, path, obj):
        if jax.process_index() == 0:
            write_json(path, obj)

    # ---- weights
    def load_initial_weights(self, state, heads: dict):
        """Encoder (and kept heads) from the previous phase, else from the pretrained checkpoint."""
        model = state["model"]
        if self.handoff is not None:
            nnx.replace_by_pure_dict(model["encoder"], nnx.to_pure_dict(self.handoff["encoder"]))
            for h, (kind, n) in heads.items():
                prev = self.handoff["heads"].get(h)
                if prev is not None and self.handoff["kinds"].get(h) == (kind, n):
                    nnx.replace_by_pure_dict(model["heads"][h], nnx.to_pure_dict(prev))
            return
        if self.hf_path:
            abstract = nnx.to_pure_dict(model)
            loaded = hf_lib.load_checkpoint(self.hf_path, self.model_cfg, self.hf_type,
                                            {h: k for h, (k, _) in heads.items()}, abstract["heads"])
            loop.place(model["encoder"], loaded["encoder"])
            for h, params in loaded["heads"].items():
                loop.place(model["heads"][h], params)

    def set_handoff(self, phase, graphdef, state, model_state, heads, keep_heads):
        self.handoff = {"phase": phase, "encoder": model_state["encoder"],
                        "heads": {h: model_state["heads"][h] for h in heads} if keep_heads or phase == "target" else {},
                        "kinds": {h: tuple(v) for h, v in heads.items()}}

    def load_finished_phase(self, phase_dir: str, keep_heads: bool):
        """Hand-off from a phase finished earlier (or in another process): its final params."""
        summary = json.loads(epath.Path(phase_dir, "results", "summary.json").read_bytes())
        heads = {h: tuple(v) for h, v in summary["heads"].items()}
        tx, _ = loop.optim.make_optimizer(lr=1.0, total_steps=1)
        _, abstract, _ = train.create_state(self.model_cfg, heads, tx, self.mesh, abstract_only=True)
        model = loop.restore_model(os.path.join(phase_dir, "final"), abstract["model"])
        self.set_handoff(epath.Path(phase_dir).name, None, None, model, heads, keep_heads)

    def export_hf(self, out_dir, model_state, heads):
        if jax.process_index() != 0:
            return
        if is_remote(out_dir):  # hf_lib writes a local folder: build it here, then upload it
            with tempfile.TemporaryDirectory() as tmp:
                self.export_hf(os.path.join(tmp, "hf"), model_state, heads)
                epath.Path(out_dir).rmtree(missing_ok=True)
                upload_dir(os.path.join(tmp, "hf"), out_dir)
            return
        pure = jax.device_get(nnx.to_pure_dict(model_state))
        head, kind = next(((h, k) for h, (k, _) in heads.items() if k != "mlm"), (None, None))
        hf_lib.export_hf(out_dir, self.model_cfg, pure["encoder"],
                         model_type=self.hf_type or "xlm-roberta", head_kind=kind,
                         head_params=pure["heads"][head] if head else None,
                         num_labels=heads[head][1] if head else 2,
                         tokenizer_dir=self.config.model.tokenizer or self.hf_path)


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


def run_pipeline(config, workdir: str) -> dict:
    run = Run(config, workdir)
    check_workdir(config, workdir)
    summaries = {}
    for phase in config_lib.phases(config):
        if phase == "evaluate":
            summaries[phase] = evaluate_phase(run)
            continue
        summary = loop.train_phase(phase, config[phase], run)
        if run.handoff is None or run.handoff["phase"] != phase:  # finished in an earlier process
            run.load_finished_phase(os.path.join(workdir, phase), config[phase].keep_heads or phase == "target")
        summaries[phase] = summary
    print_summary(summaries)
    return summaries


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


def evaluate_phase(run: Run, out_dir: str | None = None) -> dict:
    """Zero-shot: every language of every configured task through the vectorized evaluator."""
    from xtreme_jax import report
    from xtreme_jax.evaluate import Evaluator, load_eval_sets
    ecfg = run.config.evaluate
    out_dir = out_dir or os.path.join(run.workdir, "evaluate", "results")
    tasks = [get_task(t.name) for t in ecfg.tasks]
    heads = {t.name: (t.kind, run.num_labels(t, e.source)) for t, e in zip(tasks, ecfg.tasks)
             if t.kind != "retrieval"}
    model = train.create_model(run.model_cfg, heads, run.mesh, seed=run.config.seed)
    state = nnx.state(model)
    if run.handoff is not None:
        nnx.replace_by_pure_dict(state["encoder"], nnx.to_pure_dict(run.handoff["encoder"]))
        for h in heads:
            if h not in run.handoff["heads"]:
                raise config_lib.ConfigError(
                    f"no trained head for evaluate task {h!r}: the {run.handoff['phase']} phase trained "
                    f"{sorted(run.handoff['heads']) or 'no heads'}; add a target phase for {h!r}")
            nnx.replace_by_pure_dict(state["heads"][h], nnx.to_pure_dict(run.handoff["heads"][h]))
    elif run.hf_path:
        run.load_initial_weights({"model": state}, heads)
    nnx.update(model, state)
    layer = None if ecfg.retrieval_layer < 0 else ecfg.retrieval_layer
    evaluator = Evaluator(model, run.mesh, batch_size=ecfg.batch_size, buckets=run.config.data.buckets,
                          retrieval_layer=layer)
    results, info = {}, {}
    for task, entry in zip(tasks, ecfg.tasks):
        langs = [l for l in (entry.languages or ecfg.languages).split(",") if l] or None
        sets = load_eval_sets(task, run.tokenizer, run.source(entry.source), split=ecfg.split,
                              languages=langs, cache_dir=run.cache_dir)
        res = evaluator.evaluate_task(task, sets)
        results[task.name] = res.scores
        info[task.name] = {k: v for k, v in res.info.items() if isinstance(v, (int, float, str, list))}
        if ecfg.write_submission and jax.process_index() == 0 and res.info.get("split") == "test":
            from xtreme_jax.evaluate import EvalResults
            EvalResults({task.name: res}).write_submission(os.path.join(out_dir, "predictions"))
    meta = {"config": json.loads(run.config.to_json_best_effort()), "git_commit": report.git_commit(),
            "handoff_phase": run.handoff["phase"] if run.handoff else None, "seed": run.config.seed,
            "evaluator": info}
    if jax.process_index() == 0:
        report.write_report(out_dir, results, meta)
        print_results(results)
    return {"results": results, "out_dir": out_dir}


def print_results(results: dict):
    for task, langs in results.items():
        print(f"\n{task}: zero-shot per language")
        for lang, metrics in langs.items():
            print(f"  {lang:6s} " + "  ".join(f"{k}={v:.2f}" for k, v in metrics.items()
                                              if isinstance(v, (int, float))))


def evaluate_checkpoint(config, checkpoint: str, workdir: str) -> dict:
    """Scores any checkpoint on every configured task and language.

    `checkpoint`: an HF directory / hub id (config.json + weights, heads loaded where present), or
    a phase directory of one of our runs (`RUN/target`, or its `final/` subdirectory).
    """
    phase_dir = checkpoint[:-len("/final")] if checkpoint.rstrip("/").endswith("/final") else checkpoint
    summary_file = os.path.join(phase_dir, "results", "summary.json")
    ours = epath.Path(summary_file).exists() and epath.Path(phase_dir, "final").is_dir()
    if not ours:
        if epath.Path(checkpoint).exists() and not epath.Path(checkpoint, "config.json").exists():
            raise config_lib.ConfigError(
                f"--checkpoint={checkpoint}: neither a finished phase of a run (expected "
                f"{summary_file} and final/) nor an HF checkpoint directory (config.json)")
        config.unlock()
        config.model.pretrained = checkpoint
        config.lock()
    run = Run(config, workdir)
    if ours:
        run.load_finished_phase(phase_dir, keep_heads=True)
    return evaluate_phase(run, out_dir=workdir)
