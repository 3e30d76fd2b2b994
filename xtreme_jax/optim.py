"""optax AdamW as jiant / XTREME use it: no decay on biases and LayerNorm, linear warmup then
linear decay, global-norm clipping, optional layer-wise learning-rate decay; and an opt-in
row-wise ("lazy") AdamW for the word embedding (`make_row_update`)."""
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
        if "layers" not in names:  # above the last layer: the pre-LN encoder's final LayerNorm
            return 1.0
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


def make_row_update(*, lr: float, total_steps: int, warmup=0.1, weight_decay=0.01, b1=0.9, b2=0.999,
                    eps=1e-8, clip=1.0, layer_decay=None, num_layers=None):
    """Lazy AdamW for the word-embedding rows a batch uses (`optim.embedding_update="rows"`).

    Dense AdamW rewrites all V x d rows (parameters and both moments) every step, and the
    backward pass first fills a V x d gradient with zeros: with XLM-R's 250k-row table that is
    half of the parameters. This update touches only the rows looked up in the batch: their
    moments and weights get exactly the step `make_optimizer` would give them (same clipping
    by the global norm, same optax AdamW arithmetic, weight decay, schedule and layer-decay
    scale, bias correction by the global step); rows the batch does not use stay as they are,
    where dense AdamW would still move them along their momentum and decay them. So it is a
    different optimizer (TF's LazyAdam), identical to dense AdamW only while every row is used
    in every step; opt-in, off by default.

    Returns update(table, mu, nu, rows, grad_rows, count, grad_norm, ok) -> (table, mu, nu):
    `rows` the used row ids (each once; ids >= V are padding and ignored), `grad_rows` their
    gradients, `count` the optimizer's step count, `ok` False to leave everything unchanged.
    """
    tx = optax.adamw(schedule(lr, total_steps, warmup), b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
    lr_scale = layer_decay ** (num_layers + 1) if layer_decay else 1.0   # the embeddings' layer_scales

    def update(table, mu, nu, rows, grad_rows, count, grad_norm, ok):
        if clip and clip > 0:   # optim.clip_by_global_norm's rule, with the same global norm
            grad_rows = grad_rows * jnp.where(grad_norm < clip, 1.0, clip / grad_norm)
        full = (table, mu, nu)
        old = [jnp.take(x, rows, axis=0, mode="fill", fill_value=0) for x in full]
        p = old[0]
        state = optax.tree_utils.tree_set(tx.init(p), count=jnp.asarray(count, jnp.int32), mu=old[1], nu=old[2])
        step, state = tx.update(grad_rows.astype(p.dtype), state, p)
        new = (p + lr_scale * step, optax.tree_utils.tree_get(state, "mu"), optax.tree_utils.tree_get(state, "nu"))
        return tuple(f.at[rows].set(jnp.where(ok, n, o).astype(f.dtype), mode="drop")
                     for f, n, o in zip(full, new, old))
    return update
