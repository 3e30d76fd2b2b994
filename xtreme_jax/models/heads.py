"""Task heads on the shared encoder, and `TaskModel` = encoder + one head per task.

Head kinds follow the batch contract (docs/batch_contract.md): classification, multiple_choice,
tagging, span, mlm. Every loss returns (sum of per-item losses, number of items) so averages stay
exact under gradient accumulation, packing and multi-host batches.
"""
import math

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


def argmax_correct(logits, batch):
    """Dev accuracy's numerator (the validation in training phases): items whose argmax is the
    label, over the items the loss counts (label >= 0). Heads override it (span: both boundaries)."""
    labels = batch["labels"]
    return jnp.sum((jnp.argmax(logits, -1) == labels) & (labels >= 0))


class PooledHead(nnx.Module):
    """dense -> tanh -> out_proj on a pooled token (RoBERTa classification head / BERT pooler+classifier)."""
    correct = staticmethod(argmax_correct)

    def __init__(self, cfg: EncoderConfig, num_labels: int, rngs: nnx.Rngs):
        self.cfg = cfg
        self.dense = Dense(cfg.hidden_size, cfg.hidden_size, ("embed", "hidden"), rngs, cfg.dtype)
        self.out_proj = Dense(cfg.hidden_size, num_labels, ("hidden", "labels"), rngs, cfg.dtype)

    def __call__(self, pooled, rng):
        rate, bits = self.cfg.hidden_dropout, self.cfg.dropout_bits
        x = dropout(pooled, rate, None if rng is None else jax.random.fold_in(rng, 0), bits)
        x = jnp.tanh(self.dense(x))
        x = dropout(x, rate, None if rng is None else jax.random.fold_in(rng, 1), bits)
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
    correct = staticmethod(argmax_correct)

    def __init__(self, cfg: EncoderConfig, num_labels: int, rngs: nnx.Rngs):
        self.cfg = cfg
        self.classifier = Dense(cfg.hidden_size, num_labels, ("embed", "labels"), rngs, cfg.dtype)

    def logits(self, encoder, batch, rng):
        h = encode(encoder, batch, rng).last_hidden_state
        return self.classifier(dropout(h, self.cfg.hidden_dropout, _head_rng(rng),
                                       self.cfg.dropout_bits)).astype(jnp.float32)

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

    @staticmethod
    def correct(logits, batch):
        """Exact match of the boundaries (a cheap EM proxy): argmax start and argmax end both
        equal the gold start and end, over the windows the loss counts (start >= 0)."""
        start, end = batch["start_positions"], batch["end_positions"]
        hit = (jnp.argmax(logits[..., 0], -1) == start) & (jnp.argmax(logits[..., 1], -1) == end)
        return jnp.sum(hit & (start >= 0))


# Tail probability allowed for a batch to hold more masked tokens than `max_masked` positions.
MLM_OVERFLOW_TAIL = 1e-12


def max_masked(n_tokens: int, probability: float = 0.15, tail: float = MLM_OVERFLOW_TAIL) -> int:
    """Static number of positions the MLM loss computes logits at, for `n_tokens` positions.

    `data.batching.apply_mlm_mask` picks each real non-special token independently with
    `probability`, so the masked count is at most Binomial(n_tokens, p). Bernstein's inequality,
    P(M >= np + t) <= exp(-t^2 / (2 np(1-p) + 2t/3)), gives the t whose tail is `tail`; the
    count is rounded up to a multiple of 64 (GEMM tiles) and capped at n_tokens. B=32, S=128:
    832 of 4,096 positions (20%); B=256: 5,440 of 32,768 (17%)."""
    p = min(max(float(probability), 0.0), 1.0)
    log_inv = math.log(1.0 / tail)
    var = n_tokens * p * (1.0 - p)
    t = log_inv / 3 + math.sqrt((log_inv / 3) ** 2 + 2 * log_inv * var)
    return min(int(n_tokens), 64 * math.ceil((n_tokens * p + t) / 64))


class MLMHead(nnx.Module):
    """dense -> gelu -> LayerNorm -> decoder tied to the word embeddings (+ bias)."""
    kind = "mlm"

    def __init__(self, cfg: EncoderConfig, num_labels: int, rngs: nnx.Rngs):
        self.dense = Dense(cfg.hidden_size, cfg.hidden_size, ("embed", "hidden"), rngs, cfg.dtype)
        self.norm = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, rngs)
        self.bias = param(rngs, nnx.initializers.zeros, (cfg.vocab_size,), ("vocab",))

    def decode(self, encoder, h):
        h = self.norm(jax.nn.gelu(self.dense(h), approximate=False))
        word = encoder.embeddings.word[...].astype(h.dtype)
        return (h @ word.T).astype(jnp.float32) + self.bias[...]

    def logits(self, encoder, batch, rng):
        """Vocabulary logits at every position (inspection, validation); training uses train_loss."""
        return self.decode(encoder, encode(encoder, batch, rng).last_hidden_state)

    def loss(self, logits, batch):
        return _masked_xent(logits, batch["labels"])

    def train_loss(self, encoder, batch, rng, mlm_probability: float = 0.15, dense: bool = False):
        """The loss of `logits` + `loss`, with the head (d x d dense and the d x V decoder) run
        only at the masked positions: a static `max_masked` of them, gathered in order, the
        unused ones padded and ignored. A batch with more masked tokens than that (probability
        < MLM_OVERFLOW_TAIL when `mlm_probability` is the masking rate) is never cut short: its
        loss is NaN, so the step's non-finite guard refuses the update and the host reports it.
        `dense`: logits at every position instead (the benchmark's reference)."""
        if dense:
            return self.loss(self.logits(encoder, batch, rng), batch)
        h = encode(encoder, batch, rng).last_hidden_state
        labels = batch["labels"].reshape(-1)
        n = labels.shape[0]
        k = max_masked(n, mlm_probability)
        valid = labels >= 0
        count = jnp.sum(valid)
        (idx,) = jnp.nonzero(valid, size=k, fill_value=0)
        picked = jnp.where(jnp.arange(k) < count, labels[idx], -1)
        total, _ = _masked_xent(self.decode(encoder, h.reshape(n, -1)[idx]), picked)
        return jnp.where(count > k, jnp.nan, total), count


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

    def loss(self, task: str, batch, rng=None, **options):
        """Returns (mean loss, (loss sum, item count)). `options` go to the head's train_loss
        (MLM: mlm_probability)."""
        head = self.heads[task]
        if hasattr(head, "train_loss"):  # a head that computes only what its loss needs
            total, count = head.train_loss(self.encoder, batch, rng, **options)
        else:
            total, count = head.loss(head.logits(self.encoder, batch, rng), batch)
        return total / jnp.maximum(count, 1), (total, count)


def make_head(cfg: EncoderConfig, kind: str, num_labels: int, rngs: nnx.Rngs):
    if kind not in HEADS:
        raise ValueError(f"unknown head kind {kind!r}; choose one of {sorted(HEADS)}")
    return HEADS[kind](cfg, num_labels, rngs)
