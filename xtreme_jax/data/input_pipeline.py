"""grain input pipelines: per-host numpy batches for training and evaluation.

Training: every host computes the same global plan for an epoch (a seeded permutation of units,
batched within length buckets, or packed rows), takes its own slice of each global batch, and
assembles it. The plan is a pure function of (seed, epoch), so

- the data order is deterministic and identical on every host, and all hosts get the same
  padded length at each step (the global array has one shape);
- the grain iterator's state is just the next global batch index: `get_state()` /
  `set_state()` (or `grain.checkpoint.CheckpointSave` inside an Orbax checkpoint) resume
  exactly, and a restart with a different number of prefetch threads gives the same batches.

Hosts only read the rows they need (features are memory-mapped). Per-host batches become
global jax arrays in xtreme_jax.sharding (`jax.make_array_from_process_local_data`).
"""
from __future__ import annotations

import threading

import grain
import numpy as np

from xtreme_jax.data import batching as B
from xtreme_jax.data.features import Features, concat


def _shard(shard_options) -> tuple[int, int]:
    if shard_options is None:
        shard_options = grain.sharding.ShardByJaxProcess(drop_remainder=True)
    return int(shard_options.shard_index), int(shard_options.shard_count)


def _host_batch_size(global_batch_size: int, count: int) -> int:
    if global_batch_size % count:
        raise ValueError(f"global batch size {global_batch_size} is not divisible by the "
                         f"{count} hosts")
    return global_batch_size // count


class TrainPlan:
    """Global batch plan per epoch; thread-safe (grain reads batches from several threads)."""

    def __init__(self, features: Features, global_batch_size: int, *, seed: int = 0,
                 buckets=B.DEFAULT_BUCKETS, packing: bool = False, pack_length: int | None = None,
                 max_segments: int | None = None, mlm_probability: float = 0.15):
        self.f, self.G, self.seed = features, int(global_batch_size), int(seed)
        self.packing, self.mlm_probability = packing, mlm_probability
        self.units = np.asarray(features.unit_lengths)
        if features.num_units == 0:
            raise ValueError("no training examples")
        self.buckets = B.resolve_buckets(features, buckets)
        if packing:
            if not B.packable(features):
                raise ValueError(f"packing supports {B.PACKABLE}, not {features.kind!r}")
            self.pack_length = int(pack_length or self.buckets[-1])
            self.max_segments = int(max_segments or max(1, self.pack_length // 8))
            # Packed once per seed: the number of rows (and so of batches per epoch) must not
            # change between epochs; rows are reshuffled every epoch.
            order = np.random.default_rng([self.seed, 1 << 30]).permutation(len(self.units))
            self.rows = B.pack_first_fit(self.units, order, self.pack_length, self.max_segments)
            self.batches_per_epoch = -(-len(self.rows) // self.G)
        else:
            self.batches_per_epoch = B.num_bucket_batches(self.units, self.buckets, self.G)
        self._lock = threading.Lock()
        self._epochs: dict = {}

    def epoch(self, e: int) -> list:
        with self._lock:
            if e not in self._epochs:
                rng = np.random.default_rng([self.seed, e])
                if self.packing:
                    perm = rng.permutation(len(self.rows))
                    plan = []
                    for s in range(0, len(perm), self.G):
                        chunk = [self.rows[i] for i in perm[s:s + self.G]]
                        plan.append((self.pack_length, chunk + [[]] * (self.G - len(chunk))))
                else:
                    plan = B.plan_buckets(self.units, self.buckets, self.G, rng)
                self._epochs[e] = plan
                for old in [k for k in self._epochs if k < e - 1]:
                    del self._epochs[old]
            return self._epochs[e]

    def host_batch(self, index: int, shard_index: int, shard_count: int) -> dict:
        e, j = divmod(int(index), self.batches_per_epoch)
        length, units = self.epoch(e)[j]
        b = _host_batch_size(self.G, shard_count)
        mine = units[shard_index * b:(shard_index + 1) * b]
        if self.packing:
            batch = B.assemble_packed(self.f, mine, length, self.max_segments)
        else:
            batch = B.assemble(self.f, np.asarray(mine), length)
        # Kind switch kept: MLM is the one kind whose labels are drawn per batch (new masks every
        # epoch). One draw per global batch: the same masks on any number of hosts.
        if self.f.kind == "mlm":
            rng = np.random.default_rng([self.seed, e, j, 0x6D6C6D])
            batch = B.apply_mlm_mask(batch, self.f.meta, rng, self.mlm_probability,
                                     row_offset=shard_index * b, global_rows=self.G)
        return batch


def make_train_dataset(features: Features, *, global_batch_size: int, seed: int = 0,
                       buckets=B.DEFAULT_BUCKETS, packing: bool = False, pack_length: int | None = None,
                       max_segments: int | None = None, shard_options=None, num_epochs: int | None = None,
                       num_threads: int = 2, prefetch: int = 8, mlm_probability: float = 0.15):
    """A grain IterDataset of this host's training batches (infinite when num_epochs is None).

    Use `iter(...)` for a checkpointable grain DatasetIterator; mixing several tasks can be
    built on these with grain's IterDataset tools.
    """
    shard_index, shard_count = _shard(shard_options)
    _host_batch_size(global_batch_size, shard_count)
    plan = TrainPlan(features, global_batch_size, seed=seed, buckets=buckets, packing=packing,
                     pack_length=pack_length, max_segments=max_segments, mlm_probability=mlm_probability)
    ds = grain.MapDataset.range(plan.batches_per_epoch).repeat(num_epochs)
    ds = ds.map_with_index(lambda i, _: plan.host_batch(i, shard_index, shard_count))
    out = ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch))
    out.plan = plan  # for logging: batches_per_epoch, buckets, pack stats
    return out


def make_train_iterator(features: Features, **kwargs) -> grain.DatasetIterator:
    """Checkpointable iterator over this host's training batches; see make_train_dataset."""
    return iter(make_train_dataset(features, **kwargs))


def eval_plan(features: Features, global_batch_size: int, buckets=B.DEFAULT_BUCKETS) -> list:
    return B.plan_buckets(features.unit_lengths, B.resolve_buckets(features, buckets), int(global_batch_size))


def make_eval_batches(features, *, global_batch_size: int, buckets=B.DEFAULT_BUCKETS,
                      shard_options=None, num_threads: int = 2, prefetch: int = 8):
    """This host's evaluation batches, every unit exactly once over all hosts.

    `features` may be a list (e.g. all languages of a task): they are evaluated as one stream
    sorted by length, and batches carry `meta_set_index`. Padding units have
    `meta_example_index` = `meta_feature_index` = -1 and labels -1 / -100.
    """
    if isinstance(features, (list, tuple)):
        features = concat(list(features))
    shard_index, shard_count = _shard(shard_options)
    b = _host_batch_size(global_batch_size, shard_count)
    plan = eval_plan(features, global_batch_size, buckets)

    def one(j):
        length, units = plan[j]
        return B.assemble(features, units[shard_index * b:(shard_index + 1) * b], length, eval_meta=True)

    ds = grain.MapDataset.range(len(plan)).map(one)
    return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)))
