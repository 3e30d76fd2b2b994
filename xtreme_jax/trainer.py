"""Everything a training phase builds before its first step, built once from the phase config:

    build_trainer(phase_cfg, context, init) -> Trainer
        entries     the phase's task entries: training features, dev subset, head, weight
        tx          optax optimizer (optim.make_optimizer) and its learning-rate schedule
        state       TrainState (model + optimizer), sharded on the mesh, holding the weights
                    handed on (`init`), else the pretrained checkpoint's, else random ones
        steps       one jitted, donated train step per head (train_step.make_train_step)
        iterators   one grain iterator per entry (checkpointed with the state)
        validator   dev loss and accuracy of every entry (validation.Validator)

The runs (train_loop.train_phase) and the benchmarks build the same Trainer, so a benchmark
times the step the runs take.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Callable

import jax
import numpy as np
import optax

from xtreme_jax import optim, train_step
from xtreme_jax.context import source
from xtreme_jax.data.features import subsample
from xtreme_jax.data.sources import source_fingerprint
from xtreme_jax.data.input_pipeline import make_train_iterator
from xtreme_jax.handoff import Handoff, init_weights
from xtreme_jax.tasks import get_task
from xtreme_jax.validation import Validator, dev_features, shard_options

MLM_PROBABILITY = 0.15  # a phase's masking rate when its config has none (the mlm phase has one)


@dataclasses.dataclass
class Entry:
    """One task entry of a phase: its training data and the head it trains."""
    name: str
    head: str
    task: object        # the registry Task
    num_labels: int
    weight: float
    train: object
    dev: object | None


def sampling_probs(sizes, sampler: str, temperature: float = 2.0, cap: int = 2 ** 14, weights=None):
    sizes = np.asarray(sizes, np.float64)
    if sampler == "uniform":
        p = np.ones_like(sizes)
    elif sampler == "proportional":
        p = sizes.copy()
    elif sampler == "capped_proportional":
        p = np.minimum(sizes, cap)
    else:  # temperature: p ~ n^(1/T)
        p = sizes ** (1.0 / temperature)
    p = p * (np.ones_like(p) if weights is None else np.asarray(weights, np.float64))
    return p / p.sum()


def task_for_step(seed: int, step: int, probs) -> int:
    """Stateless choice, so a resumed run draws exactly the same task sequence."""
    return int(np.random.default_rng([seed, step, 7]).choice(len(probs), p=probs))


@dataclasses.dataclass
class Trainer:
    entries: list                 # [Entry]
    heads: dict                   # {head: (kind, num_labels)}
    probs: np.ndarray             # sampling probability of each entry
    tx: optax.GradientTransformation
    schedule: Callable            # step -> learning rate
    graphdef: object              # nnx.GraphDef of the TrainState
    state: object                 # nnx.State of the TrainState (donated by every step: keep the new one)
    shardings: object             # NamedShardings of `state`
    steps: dict                   # {head: step(state, batch, rng) -> (state, metrics)}
    iterators: list               # grain iterators, one per entry
    validator: Validator
    no_dev: list                  # "entry: why" for each entry without dev data
    seed: int
    rng: jax.Array                # dropout key; step n uses fold_in(rng, n)
    data_fingerprint: str = ""    # the training data (sources' files, examples): a resume must match it

    @property
    def validating(self) -> bool:
        return any(e.dev is not None for e in self.entries)

    @property
    def data_state(self) -> dict:
        """The iterators under the names the checkpoint stores their state by."""
        return {f"data_{i}": it for i, it in enumerate(self.iterators)}

    def next_batch(self, step: int):
        """(entry index, host batch) of training step `step` (the task drawn statelessly)."""
        i = task_for_step(self.seed, step, self.probs)
        return i, next(self.iterators[i])


def phase_tasks(pcfg) -> list:
    """(task entry, registry Task, head, num_labels) of each task of a phase: what its heads are
    built from, for the run (phase_entries) and the TPU compiler (aot.train_programs) alike."""
    out = []
    for t in pcfg.tasks:
        task = get_task(t.name)
        out.append((t, task, t.head or t.name, task.num_labels(source(t.source))))
    return out


def phase_heads(pcfg) -> dict:
    """{head: (kind, num_labels)} of a phase: the heads its train state holds, one step each."""
    return {head: (task.kind, n) for _, task, head, n in phase_tasks(pcfg)}


def phase_entries(pcfg, context, validate: bool):
    """(entries, no_dev): the phase's English training entries (+ translated / MLM entries with
    their own weights), each with its dev subset when `validate`."""
    entries, no_dev = [], []
    for t, task, head, num_labels in phase_tasks(pcfg):
        train_f = context.features(task, t.split, t.lang, t.source, t.max_length)
        if t.max_examples or t.fraction:
            train_f = subsample(train_f, count=t.max_examples or None, fraction=t.fraction or None,
                                seed=context.config.seed)
        label = t.name if t.lang == "en" else f"{t.name}.{t.lang}"
        dev_f, why = dev_features(context, task, t, pcfg.eval_examples) if validate else (None, "")
        if why:
            no_dev.append(f"{label}: {why}")
        entries.append(Entry(label, head, task, num_labels, t.weight, train_f, dev_f))
    return entries, no_dev


def optimizer_args(pcfg, model_cfg) -> dict:
    """The keyword arguments of optim.make_optimizer (and make_row_update) for a phase."""
    return dict(lr=pcfg.lr, total_steps=pcfg.num_steps, warmup=pcfg.warmup, weight_decay=pcfg.weight_decay,
                b1=pcfg.b1, b2=pcfg.b2, eps=pcfg.eps, clip=pcfg.clip, layer_decay=pcfg.layer_decay or None,
                num_layers=model_cfg.num_layers)


@dataclasses.dataclass
class StepParts:
    """The optimizer, the sharded train state and how to make a head's jitted step: the part of a
    Trainer that needs no data. The runs (build_trainer), the benchmarks (benchmarks/common.py)
    and the TPU compiler (aot.py) all build their steps here, so all three take the same step."""
    tx: optax.GradientTransformation
    schedule: Callable
    graphdef: object
    state: object
    shardings: object
    heads: dict
    accum_steps: int
    mlm_probability: float
    row_update: Callable | None = None

    def step(self, head: str, **options):
        """A new jitted, donated step(state, batch, rng) -> (state, metrics) for `head`; `options`
        (grad_dtype, guard, head_options) go to train_step.make_train_step as they are."""
        kind = self.heads[head][0]
        # The masking rate reaches both the batches and the MLM head, which sizes its gathered
        # positions (heads.max_masked) for it.
        return train_step.make_train_step(self.graphdef, self.shardings, head, self.schedule, self.accum_steps,
                                          row_update=self.row_update,
                                          mlm_probability=self.mlm_probability if kind == "mlm" else None,
                                          **options)


def build_steps(pcfg, model_cfg, mesh, heads: dict, seed: int = 0, abstract_only: bool = False) -> StepParts:
    """StepParts of a phase config (`pcfg`, a config.train_phase section) for `heads`
    ({head: (kind, num_labels)}); `abstract_only`: shapes and shardings, no arrays."""
    opt_args = optimizer_args(pcfg, model_cfg)
    tx, sched = optim.make_optimizer(**opt_args)
    rows = pcfg.get("embedding_update", "dense") == "rows"
    graphdef, state, shardings = train_step.create_state(model_cfg, heads, tx, mesh, seed=seed,
                                                         abstract_only=abstract_only, row_embeddings=rows)
    return StepParts(tx=tx, schedule=sched, graphdef=graphdef, state=state, shardings=shardings, heads=dict(heads),
                     accum_steps=pcfg.accum_steps, mlm_probability=pcfg.get("mlm_probability", MLM_PROBABILITY),
                     row_update=optim.make_row_update(**opt_args) if rows else None)


def build_trainer(phase_cfg, context, init: Handoff | None) -> Trainer:
    """The parts of one training phase (see the module docstring), built from `phase_cfg` (a
    config.train_phase section) on `context` (RunContext: config, mesh, model config, features),
    starting from the weights `init` (None: the pretrained checkpoint, or random init)."""
    pcfg, config = phase_cfg, context.config
    entries, no_dev = phase_entries(pcfg, context, validate=bool(pcfg.eval_every))
    heads = phase_heads(pcfg)
    probs = sampling_probs([e.train.num_examples for e in entries], pcfg.sampler, pcfg.temperature,
                           pcfg.cap, [e.weight for e in entries])
    # ---- state, directly sharded; weights from the previous phase or the pretrained checkpoint
    parts = build_steps(pcfg, context.model_cfg, context.mesh, heads, seed=config.seed)
    tx, sched, graphdef, state, shardings = parts.tx, parts.schedule, parts.graphdef, parts.state, parts.shardings
    init_weights(state["model"], heads, context, init)
    steps = {h: parts.step(h) for h in heads}
    mlm_probability = parts.mlm_probability
    iters = [make_train_iterator(e.train, global_batch_size=pcfg.batch_size, seed=config.seed + i,
                                 buckets=config.data.buckets, packing=pcfg.packing,
                                 shard_options=shard_options(), num_threads=config.data.num_threads,
                                 mlm_probability=mlm_probability)
             for i, e in enumerate(entries)]
    return Trainer(entries=entries, heads=heads, probs=probs, tx=tx, schedule=sched, graphdef=graphdef,
                   state=state, shardings=shardings, steps=steps, iterators=iters,
                   validator=Validator(graphdef, context.mesh, pcfg.batch_size), no_dev=no_dev,
                   seed=config.seed, rng=jax.random.key(config.seed),
                   data_fingerprint=data_fingerprint(pcfg, entries))


def data_fingerprint(pcfg, entries) -> str:
    """What a checkpoint's steps trained on: each entry's source (local files by name, size and
    mtime: data.sources.source_fingerprint) and its example count after subsampling."""
    parts = [(e.name, source_fingerprint(source(t.source)), int(e.train.num_examples))
             for t, e in zip(pcfg.tasks, entries)]
    return hashlib.sha1(json.dumps(parts, default=str).encode()).hexdigest()[:16]
