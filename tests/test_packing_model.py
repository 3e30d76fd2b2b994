"""A packed batch gives the same logits as its examples run unpacked (data packer + encoder)."""
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xtreme_jax.data import batching as B
from xtreme_jax.models.encoder import preset
from xtreme_jax.models.heads import TaskModel
from xtreme_jax.tasks import get_task

WORDS = "the a cat dog sees likes big small red blue runs sleeps house tree".split()


def model_for(kind, n, vocab):
    cfg = preset("tiny", vocab_size=max(vocab, 64), hidden_dropout=0.0, attention_dropout=0.0)
    with nnx.use_eager_sharding(False):
        return TaskModel(cfg, {"t": (kind, n)}, rngs=nnx.Rngs(3))


def as_jnp(batch):
    return {k: jnp.asarray(v) for k, v in batch.items() if not k.startswith("meta_")}


@pytest.mark.parametrize("task_name", ["xnli", "panx"])
def test_packed_logits_equal_unpacked(tok, task_name):
    rng = np.random.default_rng(1)
    task = get_task(task_name)
    if task.kind == "classification":
        examples = [{"id": str(i), "text_a": " ".join(rng.choice(WORDS, rng.integers(2, 7))),
                     "text_b": " ".join(rng.choice(WORDS, rng.integers(2, 7))), "label": "neutral"}
                    for i in range(7)]
    else:
        examples = []
        for i in range(7):
            words = list(rng.choice(WORDS, rng.integers(2, 7)))
            examples.append({"id": str(i), "tokens": words, "tags": ["O"] * (len(words) - 1) + ["B-PER"]})
    f = task.featurize(examples, tok, 64, progress=False)
    model = model_for(task.kind, len(task.labels), len(tok))
    rows = B.pack_first_fit(np.asarray(f.unit_lengths), np.arange(f.num_units), 64, 4)
    assert any(len(r) > 1 for r in rows), "the fixture must actually pack several examples per row"
    packed = B.assemble_packed(f, rows, 64, 4)
    plain = B.assemble(f, np.arange(f.num_units), 64)
    logits = nnx.jit(lambda m, batch: m.logits("t", batch))
    packed_logits = np.asarray(logits(model, as_jnp(packed)))
    plain_logits = np.asarray(logits(model, as_jnp(plain)))
    for b, units in enumerate(rows):
        at = 0
        for k, u in enumerate(units):
            n = int(f.unit_lengths[u])
            if task.kind == "classification":
                np.testing.assert_allclose(packed_logits[b, k], plain_logits[u], atol=1e-5)
            else:
                np.testing.assert_allclose(packed_logits[b, at:at + n], plain_logits[u, :n], atol=1e-5)
            at += n
