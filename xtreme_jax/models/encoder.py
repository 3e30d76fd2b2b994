"""XLM-R / RoBERTa / BERT encoder in Flax NNX with HF semantics and logical-axis sharding;
with `pre_layer_norm`, XLM-R XL / XXL (HF XLMRobertaXLModel).

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
    # False: post-LN (BERT / RoBERTa / XLM-R base, large). True: XLM-R XL / XXL's pre-LN, as HF
    # XLMRobertaXLModel: no embedding LayerNorm, LayerNorm before self-attention and before the
    # FFN (residuals add un-normalised), one final LayerNorm after the last layer.
    pre_layer_norm: bool = False
    dtype: Any = jnp.float32
    remat: bool = False
    # Accelerator levers (config.model.*, validated in config.py, copied here by context.py):
    # attention implementation, see `attention`: None (XLA picks), "cudnn", "cudnn_dropout";
    attention_impl: Optional[str] = None
    # random bits per dropout-mask element, see `_keep_mask`: 16, or 8 (half the hashing);
    dropout_bits: int = 16
    # dtype the gradients are rounded to before the update (train_step; e.g. bf16 reduction), None = fp32.
    grad_dtype: Any = None

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
    # Pre-LN XLM-R (Goyal et al. 2021, arXiv:2105.00572: 3.5B / 10.7B parameters). Sizes from the
    # hub config.json of facebook/xlm-roberta-xl and facebook/xlm-roberta-xxl (model_type
    # "xlm-roberta-xl"; XL's also transformers' XLMRobertaXLConfig defaults): vocab 250880 (the
    # tokenizer's 250002 pieces, padded), 514 positions, type_vocab_size 1, eps 1e-5.
    "xl": dict(vocab_size=250880, hidden_size=2560, num_layers=36, num_heads=32, intermediate_size=10240,
               pre_layer_norm=True),
    "xxl": dict(vocab_size=250880, hidden_size=4096, num_layers=48, num_heads=32, intermediate_size=16384,
                pre_layer_norm=True),
}


def preset(name: str, **overrides) -> EncoderConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model size {name!r}; choose one of {sorted(PRESETS)}")
    return EncoderConfig(**{**PRESETS[name], **overrides})


def param(rngs: nnx.Rngs, init, shape, axes) -> nnx.Param:
    return nnx.Param(nnx.with_partitioning(init, axes)(rngs.params(), shape))


ATTENTION_IMPLS = (None, "cudnn", "cudnn_dropout")
# Random bits per dropout-mask element drawn from a threefry key: 16 (four uniforms per threefry
# block) or 8 (eight per block: half the hashing; the keep probability is then rounded to 1/256,
# e.g. rate 0.1 -> 0.1016, and the kept values are scaled by the rounded probability so the
# expectation stays exact). EncoderConfig.dropout_bits chooses per model.
DROPOUT_BIT_CHOICES = (16, 8)


def dropout(x, rate: float, rng, bits: int = 16):
    if rng is None or rate == 0.0:
        return x
    keep, p = _keep_mask(rng, 1.0 - rate, x.shape, bits)
    return jnp.where(keep, x / p, 0).astype(x.dtype)


def _keep_mask(rng, keep: float, shape, bits: int = 16):
    """(Bernoulli mask, its keep probability). With a threefry key and a last dim divisible by
    64 / bits, each threefry block (64 bits) gives 64 / bits uniforms of `bits` bits instead of
    one 32-bit draw per element, so the mask costs 1/4 (16 bits) or 1/8 (8 bits) of the hashing
    (measured: ~20% of a CPU train step with jax.random.bernoulli, ~5% with 16 bits). The keep
    probability is rounded to 1/2**bits. Counters are element indices, so the mask does not
    depend on how the array is sharded."""
    per = 64 // bits
    typed = jnp.issubdtype(rng.dtype, jax.dtypes.prng_key)
    data = jax.random.key_data(rng) if typed else rng
    if (data.shape != (2,) or not shape or shape[-1] % per or math.prod(shape) >= 2 ** 34
            or (typed and str(jax.random.key_impl(rng)) != "threefry2x32")):
        return jax.random.bernoulli(rng, keep, shape), keep
    short = shape[:-1] + (shape[-1] // per,)
    index, stride = jnp.zeros(short, jnp.uint32), 1
    for axis in range(len(short) - 1, -1, -1):
        index = index + jax.lax.broadcasted_iota(jnp.uint32, short, axis) * jnp.uint32(stride)
        stride *= short[axis]
    from jax.extend.random import threefry2x32_p
    hi, lo = threefry2x32_p.bind(data[0], data[1], jnp.zeros(short, jnp.uint32), index)
    low = (1 << bits) - 1
    parts = [(w >> (bits * i)) & low for w in (hi, lo) for i in range(32 // bits)]
    threshold = round(keep * (1 << bits))
    return jnp.concatenate(parts, axis=-1) < jnp.uint32(threshold), threshold / (1 << bits)


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
        # Pre-LN: the first layer's attention LayerNorm normalises the embeddings instead.
        self.norm = None if cfg.pre_layer_norm else LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, rngs)

    def __call__(self, input_ids, token_type_ids, position_ids, rng):
        x = (jnp.take(self.word[...], input_ids, axis=0)
             + jnp.take(self.position[...], position_ids, axis=0)
             + jnp.take(self.token_type[...], token_type_ids, axis=0)).astype(self.cfg.dtype)
        if self.norm is not None:
            x = self.norm(x)
        return hidden(dropout(x, self.cfg.hidden_dropout, rng, self.cfg.dropout_bits))


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
        pre = cfg.pre_layer_norm
        b, s, d = x.shape
        h = self.attn_norm(x) if pre else x
        qkv = jnp.einsum("bsd,dkh->bskh", h, self.qkv_kernel[...].astype(cfg.dtype))
        qkv = (qkv + self.qkv_bias[...].astype(cfg.dtype)).reshape(b, s, 3, cfg.num_heads, cfg.head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        ctx = attention(q, k, v, mask, cfg, _fold(rng, 0))
        attn = dropout(self.attn_out(ctx.reshape(b, s, d)), cfg.hidden_dropout, _fold(rng, 1), cfg.dropout_bits)
        x = x + attn if pre else self.attn_norm(x + attn)
        h = self.ffn_out(jax.nn.gelu(self.ffn_in(self.ffn_norm(x) if pre else x), approximate=False))
        if pre:  # HF's XLMRobertaXLOutput drops nothing after the FFN (fairseq's pre-LN layer does)
            return hidden(x + h)
        h = dropout(h, cfg.hidden_dropout, _fold(rng, 2), cfg.dropout_bits)
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


@struct.dataclass
class AttentionMask:
    """What attention needs to know about padding and packing. `keys` [B, 1, 1, S]: real tokens;
    `segment_ids` [B, S] (packed rows: segments 1..K from offset 0, 0 on padding) or None.
    The XLA path uses the boolean `dense()` mask; cuDNN takes lengths instead (right-padded rows,
    as the batcher makes them), so no [B, 1, S, S] mask is built."""
    keys: jax.Array
    segment_ids: Optional[jax.Array] = None

    def dense(self):
        """Boolean [B, 1, Sq, Sk] (broadcastable): keys real and in the query's segment."""
        if self.segment_ids is None:
            return self.keys
        seg = self.segment_ids
        return (seg[:, None, :, None] == seg[:, None, None, :]) & self.keys

    @property
    def lengths(self):
        return jnp.sum(self.keys[:, 0, 0], axis=-1, dtype=jnp.int32)

    def segments(self):
        """cuDNN's packed layout: per segment k = 1..S, its length and start offset ([B, S] and
        [B, S + 1]), -1 where a row has fewer segments."""
        seg = self.segment_ids
        s = seg.shape[-1]
        lengths = jnp.sum(seg[..., None] == jnp.arange(1, s + 1, dtype=seg.dtype), axis=1, dtype=jnp.int32)
        starts = jnp.cumsum(lengths, axis=-1) - lengths
        present = lengths > 0
        pad = jnp.full(seg.shape[:1] + (1,), -1, jnp.int32)
        return (jnp.where(present, lengths, -1),
                jnp.concatenate([jnp.where(present, starts, -1), pad], axis=-1))


def attention_mask_4d(attention_mask, segment_ids=None) -> AttentionMask:
    """The attention mask of a batch: keys must be real tokens (and in the query's segment)."""
    return AttentionMask(attention_mask.astype(bool)[:, None, None, :], segment_ids)


def _on_gpu() -> bool:
    return jax.default_backend() == "gpu"


def attention(q, k, v, mask: AttentionMask, cfg: EncoderConfig, rng):
    """Multi-head attention of q, k, v [B, S, N, H] under `mask`, by `cfg.attention_impl`:

    None             XLA: jax.nn.dot_product_attention with the boolean mask; spelled out
                     (softmax, then dropout of the probabilities) when attention dropout applies.
    "cudnn"          cuDNN flash attention (GPU, bf16/fp16) wherever it computes the same thing:
                     padding from the rows' lengths (jax.nn.dot_product_attention with
                     key_value_seq_lengths), packed rows from segment lengths and offsets (the
                     cuDNN fused-attention API); with attention dropout, the XLA path above.
    "cudnn_dropout"  also with attention dropout, inside the cuDNN kernel (dropout_rate). JAX's
                     cuDNN API takes a static seed, so the kernel's dropout pattern is not drawn
                     from `rng`: a speed lever to measure, not a default.
    Off a GPU both cuDNN settings fall back to XLA. The cuDNN paths zero the outputs at padding
    positions (never attended to; this keeps them finite for the layers above)."""
    rate = 0.0 if rng is None else cfg.attention_dropout
    impl = cfg.attention_impl
    if impl in ("cudnn", "cudnn_dropout") and _on_gpu() and (rate == 0.0 or impl == "cudnn_dropout"):
        return _cudnn_attention(q, k, v, mask, cfg, rate)
    if rate == 0.0:
        return jax.nn.dot_product_attention(q, k, v, mask=mask.dense())
    logits = jnp.einsum("bqnh,bknh->bnqk", q, k) / jnp.sqrt(cfg.head_dim).astype(cfg.dtype)
    logits = jnp.where(mask.dense(), logits.astype(jnp.float32), jnp.finfo(jnp.float32).min)
    probs = dropout(jax.nn.softmax(logits, axis=-1).astype(cfg.dtype), rate, rng, cfg.dropout_bits)
    return jnp.einsum("bnqk,bknh->bqnh", probs, v)


def _cudnn_attention(q, k, v, mask: AttentionMask, cfg: EncoderConfig, rate: float,
                     implementation: str = "cudnn"):
    real = mask.keys[:, 0, 0][:, :, None, None]
    if mask.segment_ids is None and rate == 0.0:  # `implementation="xla"`: the same call on CPU
        ctx = jax.nn.dot_product_attention(q, k, v, key_value_seq_lengths=mask.lengths,
                                           implementation=implementation)
    else:
        from jax._src.cudnn.fused_attention_stablehlo import MaskType, dot_product_attention
        if mask.segment_ids is None:
            lengths, offsets = mask.lengths, None
        else:
            lengths, offsets = mask.segments()
        ctx = dot_product_attention(q, k, v, q_seqlen=lengths, kv_seqlen=lengths, q_offsets=offsets,
                                    kv_offsets=offsets, scale=1.0 / math.sqrt(cfg.head_dim),
                                    mask_type=MaskType.PADDING, dropout_rate=rate, qkv_layout="BTNH")
    return jnp.where(real, ctx, 0).astype(q.dtype)


class Encoder(nnx.Module):
    def __init__(self, cfg: EncoderConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embeddings = Embeddings(cfg, rngs)
        self.layers = nnx.List([Layer(cfg, rngs) for _ in range(cfg.num_layers)])
        self.final_norm = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, rngs) if cfg.pre_layer_norm else None

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
        if self.final_norm is not None:
            # HF returns the final LayerNorm's output as last_hidden_state and as hidden_states[-1].
            x = states[-1] = hidden(self.final_norm(x))
        return EncoderOutput(x, tuple(states) if output_hidden_states else None)
