"""XLM-R / RoBERTa / BERT encoder in Flax NNX with HF semantics and logical-axis sharding.

Every parameter carries logical axis names; `xtreme_jax.sharding` maps them onto the mesh.
Parameters are fp32; `EncoderConfig.dtype` is the compute dtype (bf16 on accelerators).
"""
import dataclasses
import math
from typing import Any, Optional

import jax
import jax.numpy as jnp
from flax import nnx, struct

from xtreme_jax.sharding import constrain


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    vocab_size: int = 250002
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 1
    # "roberta": position ids count real tokens from pad_token_id + 1 (HF create_position_ids...);
    # "bert": position ids are 0..S-1.
    position_style: str = "roberta"
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    initializer_range: float = 0.02
    dtype: Any = jnp.float32
    remat: bool = False
    # jax.nn.dot_product_attention implementation: None (XLA picks) or "cudnn" (flash attention
    # on GPUs, bf16). Used when attention dropout is off (or at eval).
    attention_impl: Optional[str] = None

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def first_position_id(self) -> int:
        """Position id of a sequence's first token, the model's own convention (not the
        tokenizer's): pad_token_id + 1 for RoBERTa/XLM-R, 0 for BERT. Packed batches restart
        positions here at each sequence; usable length is max_position_embeddings minus this."""
        return self.pad_token_id + 1 if self.position_style == "roberta" else 0

    def replace(self, **kw) -> "EncoderConfig":
        return dataclasses.replace(self, **kw)


# XLM-R sizes (real xlm-roberta configs: type_vocab_size 1, eps 1e-5, 514 positions).
PRESETS = {
    "tiny": dict(vocab_size=1024, hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128,
                 max_position_embeddings=130),
    # Demo-world ladder above tiny (CPU-sized, 1024-piece vocab; step times in docs/demo_data.md).
    "mini": dict(vocab_size=1024, hidden_size=128, num_layers=4, num_heads=4, intermediate_size=512,
                 max_position_embeddings=130),
    "midi": dict(vocab_size=1024, hidden_size=256, num_layers=4, num_heads=8, intermediate_size=1024,
                 max_position_embeddings=130),
    "small": dict(hidden_size=512, num_layers=4, num_heads=8, intermediate_size=2048),
    "base": dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_layers=24, num_heads=16, intermediate_size=4096),
}


def preset(name: str, **overrides) -> EncoderConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model size {name!r}; choose one of {sorted(PRESETS)}")
    return EncoderConfig(**{**PRESETS[name], **overrides})


def param(rngs: nnx.Rngs, init, shape, axes) -> nnx.Param:
    return nnx.Param(nnx.with_partitioning(init, axes)(rngs.params(), shape))


def dropout(x, rate: float, rng):
    if rng is None or rate == 0.0:
        return x
    keep = _keep_mask(rng, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


def _keep_mask(rng, keep: float, shape):
    """Bernoulli(keep) mask. With a threefry key and a last dim divisible by 4, each threefry
    block (64 bits) gives four 16-bit uniforms instead of one 32-bit draw per element, so the
    mask costs a quarter of the hashing (measured: ~20% of a CPU train step with
    jax.random.bernoulli, ~5% this way). The keep probability is rounded to 1/65536. Counters
    are element indices, so the mask does not depend on how the array is sharded."""
    typed = jnp.issubdtype(rng.dtype, jax.dtypes.prng_key)
    data = jax.random.key_data(rng) if typed else rng
    if (data.shape != (2,) or not shape or shape[-1] % 4 or math.prod(shape) >= 2 ** 34
            or (typed and str(jax.random.key_impl(rng)) != "threefry2x32")):
        return jax.random.bernoulli(rng, keep, shape)
    quarter = shape[:-1] + (shape[-1] // 4,)
    index, stride = jnp.zeros(quarter, jnp.uint32), 1
    for axis in range(len(quarter) - 1, -1, -1):
        index = index + jax.lax.broadcasted_iota(jnp.uint32, quarter, axis) * jnp.uint32(stride)
        stride *= quarter[axis]
    from jax.extend.random import threefry2x32_p
    hi, lo = threefry2x32_p.bind(data[0], data[1], jnp.zeros(quarter, jnp.uint32), index)
    u16 = jnp.concatenate([hi & 0xFFFF, hi >> 16, lo & 0xFFFF, lo >> 16], axis=-1)
    return u16 < jnp.uint32(round(keep * 65536))


def hidden(x):
    """Hidden states [B, S, d] split over the batch like the input (no-op without a mesh)."""
    return constrain(x, "activation_batch", "activation_length", "activation_embed")


def _fold(rng, i):
    return None if rng is None else jax.random.fold_in(rng, i)


class LayerNorm(nnx.Module):
    def __init__(self, dim: int, eps: float, rngs: nnx.Rngs):
        self.eps = eps
        self.scale = param(rngs, nnx.initializers.ones, (dim,), ("norm",))
        self.bias = param(rngs, nnx.initializers.zeros, (dim,), ("norm",))

    def __call__(self, x):
        # Statistics in fp32 whatever the compute dtype.
        x32 = x.astype(jnp.float32)
        mean = x32.mean(-1, keepdims=True)
        var = jnp.square(x32 - mean).mean(-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]
        return y.astype(x.dtype)


class Dense(nnx.Module):
    """y = x @ kernel + bias, kernel (in, out) with logical axes, computed in `dtype`."""

    def __init__(self, d_in, d_out, axes, rngs, dtype, std=0.02):
        self.dtype = dtype
        self.kernel = param(rngs, nnx.initializers.normal(std), (d_in, d_out), axes)
        self.bias = param(rngs, nnx.initializers.zeros, (d_out,), (axes[1],))

    def __call__(self, x):
        return x.astype(self.dtype) @ self.kernel[...].astype(self.dtype) + self.bias[...].astype(self.dtype)


class Embeddings(nnx.Module):
    def __init__(self, cfg: EncoderConfig, rngs: nnx.Rngs):
        init = nnx.initializers.normal(cfg.initializer_range)
        self.cfg = cfg
        self.word = param(rngs, init, (cfg.vocab_size, cfg.hidden_size), ("vocab", "embed"))
        self.position = param(rngs, init, (cfg.max_position_embeddings, cfg.hidden_size), ("positions", "embed"))
        self.token_type = param(rngs, init, (cfg.type_vocab_size, cfg.hidden_size), ("types", "embed"))
        self.norm = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, rngs)

    def __call__(self, input_ids, token_type_ids, position_ids, rng):
        x = (jnp.take(self.word[...], input_ids, axis=0)
             + jnp.take(self.position[...], position_ids, axis=0)
             + jnp.take(self.token_type[...], token_type_ids, axis=0))
        x = self.norm(x.astype(self.cfg.dtype))
        return hidden(dropout(x, self.cfg.hidden_dropout, rng))


class Layer(nnx.Module):
    def __init__(self, cfg: EncoderConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        d, std = cfg.hidden_size, cfg.initializer_range
        # Fused q/k/v projection: one matmul instead of three.
        self.qkv_kernel = param(rngs, nnx.initializers.normal(std), (d, 3, d), ("embed", "qkv", "heads"))
        self.qkv_bias = param(rngs, nnx.initializers.zeros, (3, d), ("qkv", "heads"))
        self.attn_out = Dense(d, d, ("heads", "embed"), rngs, cfg.dtype, std)
        self.attn_norm = LayerNorm(d, cfg.layer_norm_eps, rngs)
        self.ffn_in = Dense(d, cfg.intermediate_size, ("embed", "mlp"), rngs, cfg.dtype, std)
        self.ffn_out = Dense(cfg.intermediate_size, d, ("mlp", "embed"), rngs, cfg.dtype, std)
        self.ffn_norm = LayerNorm(d, cfg.layer_norm_eps, rngs)

    def __call__(self, x, mask, rng):
        cfg = self.cfg
        b, s, d = x.shape
        qkv = jnp.einsum("bsd,dkh->bskh", x, self.qkv_kernel[...].astype(cfg.dtype))
        qkv = (qkv + self.qkv_bias[...].astype(cfg.dtype)).reshape(b, s, 3, cfg.num_heads, cfg.head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if rng is None or cfg.attention_dropout == 0.0:
            if cfg.attention_impl == "cudnn":  # cuDNN wants the mask at full [B, 1, S, S]
                mask = jnp.broadcast_to(mask, (b, 1, s, s))
            ctx = jax.nn.dot_product_attention(q, k, v, mask=mask, implementation=cfg.attention_impl)
        else:  # dot_product_attention has no dropout: spell attention out.
            logits = jnp.einsum("bqnh,bknh->bnqk", q, k) / jnp.sqrt(cfg.head_dim).astype(cfg.dtype)
            logits = jnp.where(mask, logits.astype(jnp.float32), jnp.finfo(jnp.float32).min)
            probs = dropout(jax.nn.softmax(logits, axis=-1).astype(cfg.dtype), cfg.attention_dropout,
                            _fold(rng, 0))
            ctx = jnp.einsum("bnqk,bknh->bqnh", probs, v)
        attn = dropout(self.attn_out(ctx.reshape(b, s, d)), cfg.hidden_dropout, _fold(rng, 1))
        x = self.attn_norm(x + attn)
        h = jax.nn.gelu(self.ffn_in(x), approximate=False)
        h = dropout(self.ffn_out(h), cfg.hidden_dropout, _fold(rng, 2))
        return hidden(self.ffn_norm(x + h))


@struct.dataclass
class EncoderOutput:
    last_hidden_state: jax.Array
    hidden_states: Optional[tuple] = None


def default_position_ids(cfg: EncoderConfig, attention_mask):
    if cfg.position_style == "bert":
        return jnp.broadcast_to(jnp.arange(attention_mask.shape[-1]), attention_mask.shape)
    mask = attention_mask.astype(jnp.int32)
    return jnp.cumsum(mask, axis=-1) * mask + cfg.pad_token_id


def attention_mask_4d(attention_mask, segment_ids=None):
    """Boolean [B, 1, Sq, Sk] mask: keys must be real tokens (and in the query's segment)."""
    keys = attention_mask.astype(bool)[:, None, None, :]
    if segment_ids is None:
        return keys
    same = segment_ids[:, None, :, None] == segment_ids[:, None, None, :]
    return same & keys


class Encoder(nnx.Module):
    def __init__(self, cfg: EncoderConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embeddings = Embeddings(cfg, rngs)
        self.layers = nnx.List([Layer(cfg, rngs) for _ in range(cfg.num_layers)])

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                 segment_ids=None, output_hidden_states=False, dropout_rng=None) -> EncoderOutput:
        if attention_mask is None:
            attention_mask = (input_ids != self.cfg.pad_token_id).astype(jnp.int32)
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        if position_ids is None:
            position_ids = default_position_ids(self.cfg, attention_mask)
        mask = attention_mask_4d(attention_mask, segment_ids)
        x = self.embeddings(input_ids, token_type_ids, position_ids, _fold(dropout_rng, 0))
        states = [x]
        for i, layer in enumerate(self.layers):
            call = nnx.remat(type(layer).__call__) if self.cfg.remat else type(layer).__call__
            x = call(layer, x, mask, _fold(dropout_rng, i + 1))
            states.append(x)
        return EncoderOutput(x, tuple(states) if output_hidden_states else None)
