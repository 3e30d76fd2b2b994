"""optax AdamW as jiant / XTREME use it: no decay on biases and LayerNorm, linear warmup then
linear decay, global-norm clipping, optional layer-wise learning-rate decay."""
import re

import jax
import jax.numpy as jnp
import optax

NO_DECAY = ("bias", "qkv_bias", "scale")  # biases and LayerNorm parameters


def warmup_steps(warmup, total_steps: int) -> int:
    """`warmup` < 1 is a fraction of the total steps, otherwise a step count."""
    return int(round(warmup * total_steps)) if 0 <= warmup < 1 else int(warmup)


def schedule(lr: float, total_steps: int, warmup=0.1):
    if lr <= 0:
        raise ValueError(f"optim.lr must be positive, got {lr}; e.g. --config.optim.lr=1e-5")
    total_steps = max(int(total_steps), 1)
    w = min(warmup_steps(warmup, total_steps), total_steps)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, lr, max(w, 1)),
         optax.linear_schedule(lr, 0.0, max(total_steps - w, 1))], [w])


def _path_names(path):
    return [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]


def decay_mask(params):
    return jax.tree_util.tree_map_with_path(lambda p, _: _path_names(p)[-1] not in NO_DECAY, params)


def layer_scales(params, num_layers: int, decay: float):
    """lr multiplier decay**(depth from the top): heads 1, layer i decay**(L-i), embeddings decay**(L+1)."""
    def scale(path, _):
        names = _path_names(path)
        if "encoder" not in names:
            return 1.0
        if "embeddings" in names:
            return decay ** (num_layers + 1)
        i = int(next(n for n in names[names.index("layers") + 1:] if re.fullmatch(r"\d+", n)))
        return decay ** (num_layers - i)
    return jax.tree_util.tree_map_with_path(scale, params)


def scale_by_layer(num_layers: int, decay: float) -> optax.GradientTransformation:
    def update(updates, state, params=None):
        scales = layer_scales(updates, num_layers, decay)
        return jax.tree.map(lambda u, s: u * jnp.asarray(s, u.dtype), updates, scales), state
    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformationExtraArgs:
    """optax.clip_by_global_norm (same rule, same empty state, so checkpoints are unchanged)
    that takes the norm as `global_norm=` when the caller has it already: the train step
    computes it for its metrics and its non-finite check, and one norm is one pass less over
    every gradient."""
    def update(updates, state, params=None, *, global_norm=None, **extra):
        del params, extra
        norm = optax.tree.norm(updates) if global_norm is None else global_norm
        scale = jnp.where(norm < max_norm, 1.0, max_norm / norm)
        return jax.tree.map(lambda u: (u * scale).astype(u.dtype), updates), state
    return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)


def make_optimizer(*, lr: float, total_steps: int, warmup=0.1, weight_decay=0.01,
                   b1=0.9, b2=0.999, eps=1e-8, clip=1.0, layer_decay=None, num_layers=None):
    sched = schedule(lr, total_steps, warmup)
    parts = [clip_by_global_norm(clip)] if clip and clip > 0 else []
    parts.append(optax.adamw(sched, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
                             mask=decay_mask))
    if layer_decay:
        parts.append(scale_by_layer(num_layers, layer_decay))
    return optax.chain(*parts), sched
