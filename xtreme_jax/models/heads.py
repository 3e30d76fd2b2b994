"""Task heads on the shared encoder, and `TaskModel` = encoder + one head per task.

Head kinds follow the batch contract (docs/batch_contract.md): classification, multiple_choice,
tagging, span, mlm. Every loss returns (sum of per-item losses, number of items) so averages stay
exact under gradient accumulation, packing and multi-host batches.
"""
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from xtreme_jax.models.encoder import Dense, Encoder, EncoderConfig, LayerNorm, dropout, param


def _masked_xent(logits, labels):
    valid = labels >= 0
    losses = optax.softmax_cross_entropy_with_integer_labels(
        logits.astype(jnp.float32), jnp.where(valid, labels, 0))
    return jnp.sum(losses * valid), jnp.sum(valid)


class PooledHead(nnx.Module):
    """dense -> tanh -> out_proj on a pooled token (RoBERTa classification head / BERT pooler+classifier)."""

    def __init__(self, cfg: EncoderConfig, num_labels: int, rngs: nnx.Rngs):
        self.cfg = cfg
        self.dense = Dense(cfg.hidden_size, cfg.hidden_size, ("embed", "hidden"), rngs, cfg.dtype)
        self.out_proj = Dense(cfg.hidden_size, num_labels, ("hidden", "labels"), rngs, cfg.dtype)

    def __call__(self, pooled, rng):
        rate = self.cfg.hidden_dropout
        x = dropout(pooled, rate, None if rng is None else jax.random.fold_in(rng, 0))
        x = jnp.tanh(self.dense(x))
        x = dropout(x, rate, None if rng is None else jax.random.fold_in(rng, 1))
        return self.out_proj(x).astype(jnp.float32)


class ClassificationHead(PooledHead):
    kind = "classification"

    def logits(self, encoder, batch, rng):
        h = encode(encoder, batch, rng).last_hidden_state
        if "cls_index" in batch:  # packed rows: one pooled token per segment -> [B, K, n]
            pooled = jnp.take_along_axis(h, batch["cls_index"][..., None], axis=1)
        else:
            pooled = h[:, 0]
        return self(pooled, _head_rng(rng))

    def loss(self, logits, batch):
        return _masked_xent(logits, batch["labels"])


class MultipleChoiceHead(PooledHead):
    kind = "multiple_choice"

    def __init__(self, cfg, num_labels, rngs):
        super().__init__(cfg, 1, rngs)

    def logits(self, encoder, batch, rng):
        b, c, s = batch["input_ids"].shape
        flat = {k: batch[k].reshape(b * c, s) for k in ("input_ids", "attention_mask", "token_type_ids")
                if k in batch}
        h = encode(encoder, flat, rng).last_hidden_state
        return self(h[:, 0], _head_rng(rng)).reshape(b, c)

    def loss(self, logits, batch):
        return _masked_xent(logits, batch["labels"])


class TaggingHead(nnx.Module):
    kind = "tagging"

    def __init__(self, cfg: EncoderConfig, num_labels: int, rngs: nnx.Rngs):
        self.cfg = cfg
        self.classifier = Dense(cfg.hidden_size, num_labels, ("embed", "labels"), rngs, cfg.dtype)

    def logits(self, encoder, batch, rng):
        h = encode(encoder, batch, rng).last_hidden_state
        return self.classifier(dropout(h, self.cfg.hidden_dropout, _head_rng(rng))).astype(jnp.float32)

    def loss(self, logits, batch):
        return _masked_xent(logits, batch["labels"])


class SpanHead(nnx.Module):
    """Extractive QA: start/end logits per token (HF `qa_outputs`)."""
    kind = "span"

    def __init__(self, cfg: EncoderConfig, num_labels: int, rngs: nnx.Rngs):
        self.qa_outputs = Dense(cfg.hidden_size, 2, ("embed", "labels"), rngs, cfg.dtype)

    def logits(self, encoder, batch, rng):
        h = encode(encoder, batch, rng).last_hidden_state
        logits = self.qa_outputs(h).astype(jnp.float32)
        # Padding can never be an answer boundary.
        return jnp.where(batch["attention_mask"][..., None] > 0, logits, -1e9)

    def loss(self, logits, batch):
        ls, ns = _masked_xent(logits[..., 0], batch["start_positions"])
        le, _ = _masked_xent(logits[..., 1], batch["end_positions"])
        return (ls + le) / 2, ns


class MLMHead(nnx.Module):
    """dense -> gelu -> LayerNorm -> decoder tied to the word embeddings (+ bias)."""
    kind = "mlm"

    def __init__(self, cfg: EncoderConfig, num_labels: int, rngs: nnx.Rngs):
        self.dense = Dense(cfg.hidden_size, cfg.hidden_size, ("embed", "hidden"), rngs, cfg.dtype)
        self.norm = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, rngs)
        self.bias = param(rngs, nnx.initializers.zeros, (cfg.vocab_size,), ("vocab",))

    def logits(self, encoder, batch, rng):
        h = encode(encoder, batch, rng).last_hidden_state
        h = self.norm(jax.nn.gelu(self.dense(h), approximate=False))
        word = encoder.embeddings.word[...].astype(h.dtype)
        return (h @ word.T).astype(jnp.float32) + self.bias[...]

    def loss(self, logits, batch):
        return _masked_xent(logits, batch["labels"])


HEADS = {h.kind: h for h in (ClassificationHead, MultipleChoiceHead, TaggingHead, SpanHead, MLMHead)}

ENCODER_KEYS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "segment_ids")


def encode(encoder, batch, rng, output_hidden_states=False):
    return encoder(**{k: batch[k] for k in ENCODER_KEYS if k in batch},
                   output_hidden_states=output_hidden_states,
                   dropout_rng=None if rng is None else jax.random.fold_in(rng, 1))


def _head_rng(rng):
    return None if rng is None else jax.random.fold_in(rng, 2)


class TaskModel(nnx.Module):
    """The shared encoder plus a head per task name: {task: (kind, num_labels)}."""

    def __init__(self, cfg: EncoderConfig, heads: dict, *, rngs: nnx.Rngs):
        self.encoder = Encoder(cfg, rngs=rngs)
        self.heads = nnx.Dict({name: make_head(cfg, kind, n, rngs) for name, (kind, n) in heads.items()})

    def logits(self, task: str, batch, rng=None):
        return self.heads[task].logits(self.encoder, batch, rng)

    def loss(self, task: str, batch, rng=None):
        """Returns (mean loss, (loss sum, item count))."""
        head = self.heads[task]
        total, count = head.loss(head.logits(self.encoder, batch, rng), batch)
        return total / jnp.maximum(count, 1), (total, count)


def make_head(cfg: EncoderConfig, kind: str, num_labels: int, rngs: nnx.Rngs):
    if kind not in HEADS:
        raise ValueError(f"unknown head kind {kind!r}; choose one of {sorted(HEADS)}")
    return HEADS[kind](cfg, num_labels, rngs)
