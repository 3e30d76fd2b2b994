"""Mesh, logical-axis rules and data placement.

The mesh has axes (data, fsdp, tensor). Parameters name logical axes ("embed", "mlp", ...) and the
encoder names the axes of its activations ("activation_batch", ...); the rules below map both onto
mesh axes (GSPMD). Batches are split over data x fsdp.
"""
import math
from typing import Sequence

import jax
import numpy as np
from flax.core.spmd import get_logical_axis_rules
from jax.sharding import NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")

# logical axis -> mesh axis (None = replicated). "embed" over fsdp shards every big matrix (and its
# Adam moments) across data-parallel replicas (ZeRO-3 style); heads/mlp go to tensor parallelism.
DEFAULT_RULES = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("mlp", "tensor"),
    ("vocab", None),
    ("qkv", None),
    ("positions", None),
    ("types", None),
    ("norm", None),
    ("hidden", None),
    ("labels", None),
    # Activations stay split over the batch like the input (data x fsdp), hidden unsplit: with
    # "embed" over fsdp, XLA then gathers the weights (ZeRO-3), not the activations (unpinned,
    # XLM-R large on (1,8,1) took 41.7 GiB/device instead of 13.0; docs/benchmarks.md).
    ("activation_batch", ("data", "fsdp")),
    ("activation_length", None),
    ("activation_embed", None),
)


def constrain(x, *axes):
    """`with_sharding_constraint` of x by logical axis names (one per dim), mapped by the rules
    in context (`nnx.logical_axis_rules`, default DEFAULT_RULES) onto the mesh in context
    (`make_train_step` traces under its mesh). No mesh in context (eager use, single-device
    jits): x unchanged."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return x
    rules = dict(get_logical_axis_rules() or DEFAULT_RULES)

    def mesh_axes(name):
        m = rules.get(name)
        m = tuple(a for a in ((m,) if isinstance(m, str) else m or ()) if a in mesh.axis_names)
        return m or None
    return jax.lax.with_sharding_constraint(x, P(*(mesh_axes(a) for a in axes)))


def mesh_shape(shape: Sequence[int], num_devices: int) -> tuple:
    """Fills one -1 entry from the device count; checks the product."""
    shape = list(shape)
    if len(shape) != len(MESH_AXES):
        raise ValueError(f"config.mesh must have {len(MESH_AXES)} entries {MESH_AXES}, got {shape}")
    if shape.count(-1) > 1:
        raise ValueError(f"config.mesh={tuple(shape)}: at most one entry may be -1")
    known = math.prod(s for s in shape if s != -1)
    if any(s == 0 or s < -1 for s in shape) or num_devices % known:
        raise ValueError(f"config.mesh={tuple(shape)} does not divide the {num_devices} devices; "
                         f"choose sizes whose product is {num_devices} (use -1 for one axis to fill it)")
    if -1 in shape:
        shape[shape.index(-1)] = num_devices // known
    if math.prod(shape) != num_devices:
        raise ValueError(f"config.mesh={tuple(shape)} uses {math.prod(shape)} devices but "
                         f"{num_devices} are present; use -1 for one axis to fill it")
    return tuple(shape)


def make_mesh(shape: Sequence[int] = (-1, 1, 1), devices=None) -> jax.sharding.Mesh:
    devices = jax.devices() if devices is None else devices
    shape = mesh_shape(shape, len(devices))
    return jax.make_mesh(shape, MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * 3,
                         devices=devices)


def data_parallel_size(mesh) -> int:
    return mesh.shape["data"] * mesh.shape["fsdp"]


def batch_sharding(mesh, ndim: int) -> NamedSharding:
    return NamedSharding(mesh, P(("data", "fsdp"), *([None] * (ndim - 1))))


def device_batch(batch: dict, mesh) -> dict:
    """Host-local numpy batch -> global jax arrays split over data x fsdp.

    `meta_*` keys stay on the host. Every process passes its own slice (the global batch is the
    concatenation over processes, in process order).
    """
    out = {}
    for k, v in batch.items():
        if k.startswith("meta_"):
            continue
        v = np.asarray(v)
        out[k] = jax.make_array_from_process_local_data(batch_sharding(mesh, v.ndim), v)
    return out
