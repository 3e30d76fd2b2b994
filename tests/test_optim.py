import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from xtreme_jax import optim


def test_schedule_warmup_then_linear_decay():
    s = optim.schedule(1e-3, 100, warmup=0.1)
    np.testing.assert_allclose([s(0), s(5), s(10), s(55), s(100)], [0, 5e-4, 1e-3, 5e-4, 0], atol=1e-9)
    assert optim.warmup_steps(7, 100) == 7


@pytest.mark.parametrize("lr", [0.0, -1e-5])
def test_nonpositive_lr_rejected(lr):
    with pytest.raises(ValueError, match="optim.lr must be positive"):
        optim.schedule(lr, 10)


def test_no_weight_decay_on_bias_and_layernorm():
    params = {"encoder": {"layers": {0: {"ffn_in": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)},
                                         "attn_norm": {"scale": jnp.ones(2), "bias": jnp.ones(2)},
                                         "qkv_bias": jnp.ones((3, 2))}}}}
    tx, _ = optim.make_optimizer(lr=1.0, total_steps=1, warmup=0, weight_decay=0.5, clip=0)
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero, tx.init(params), params)
    layer = updates["encoder"]["layers"][0]
    # with zero gradients only weight decay moves a parameter: -lr * wd * p
    np.testing.assert_allclose(layer["ffn_in"]["kernel"], -0.5)
    for leaf in (layer["ffn_in"]["bias"], layer["attn_norm"]["scale"], layer["attn_norm"]["bias"], layer["qkv_bias"]):
        np.testing.assert_allclose(leaf, 0.0)


def test_layerwise_lr_decay_scales():
    params = {"encoder": {"embeddings": {"word": 1.0}, "layers": {0: {"w": 1.0}, 1: {"w": 1.0}}},
              "heads": {"t": {"w": 1.0}}}
    s = optim.layer_scales(params, num_layers=2, decay=0.5)
    assert s == {"encoder": {"embeddings": {"word": 0.125}, "layers": {0: {"w": 0.25}, 1: {"w": 0.5}}},
                 "heads": {"t": {"w": 1.0}}}


def test_clip_reusing_the_step_norm_matches_optax_and_keeps_the_state_layout():
    params = {"a": jnp.ones((3, 2)), "b": jnp.ones(4)}
    grads = {"a": jnp.full((3, 2), 2.0), "b": jnp.arange(4.0)}
    for clip in (0.5, 100.0):
        ref, _ = optax.clip_by_global_norm(clip).update(grads, optax.EmptyState())
        ours = optim.clip_by_global_norm(clip)
        for kw in ({}, {"global_norm": optax.tree.norm(grads)}):
            out, _ = ours.update(grads, ours.init(params), **kw)
            for x, y in zip(jax.tree.leaves(out), jax.tree.leaves(ref)):
                np.testing.assert_allclose(x, y, rtol=1e-6)
    # the optimizer state has the layout optax's clip gave it: old checkpoints restore
    tx, _ = optim.make_optimizer(lr=1e-3, total_steps=10)
    old = optax.chain(optax.clip_by_global_norm(1.0),
                      optax.adamw(optim.schedule(1e-3, 10), eps=1e-8, weight_decay=0.01, mask=optim.decay_mask))
    assert jax.tree.structure(tx.init(params)) == jax.tree.structure(old.init(params))
