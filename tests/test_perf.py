"""Issue 16's waste removal, checked for exactness: the MLM loss computed at the masked positions
only equals the dense one (loss and gradients), its static count is never exceeded silently, the
select-based non-finite guard refuses an update like the cond did, the divide folded into
the loss gives the accumulated path's gradients, and the opt-in row-wise embedding update is
dense AdamW wherever every row is used and leaves unused rows alone."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from xtreme_jax import metrics, optim, sharding, train_step as T
from xtreme_jax.data.batching import apply_mlm_mask
from xtreme_jax.models.encoder import preset
from xtreme_jax.models.heads import TaskModel, max_masked


def _mlm_batch(b, s, vocab, seed=0, prob=0.15):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(s // 2, s + 1, b)
    mask = (np.arange(s)[None] < lengths[:, None]).astype(np.int32)
    ids = np.where(mask, rng.integers(5, vocab, (b, s)), 1).astype(np.int32)
    ids[:, 0] = 0
    meta = {"vocab_size": vocab, "special_ids": [0, 1, 2, 3, 4], "mask_id": 4}
    return apply_mlm_mask(dict(input_ids=ids, attention_mask=mask), meta, rng, prob)


def _model(cfg):
    return T.create_model(cfg, {"mlm": ("mlm", 2)}, sharding.make_mesh((1, 1, 1), jax.devices()[:1]))


def test_mlm_loss_at_masked_positions_equals_the_dense_loss_and_gradients():
    cfg = preset("tiny", num_layers=1)  # dropout 0.1: both paths draw the same masks
    model = _model(cfg)
    batch = {k: jnp.asarray(v) for k, v in _mlm_batch(6, 32, cfg.vocab_size).items()}
    assert 0 < int((batch["labels"] >= 0).sum()) <= max_masked(6 * 32)
    rng = jax.random.key(3)

    def gathered(m):
        return m.loss("mlm", batch, rng)[0]

    def dense(m):
        total, count = m.heads["mlm"].loss(m.heads["mlm"].logits(m.encoder, batch, rng), batch)
        return total / count

    lg, gg = nnx.jit(nnx.value_and_grad(gathered))(model)
    ld, gd = nnx.jit(nnx.value_and_grad(dense))(model)
    np.testing.assert_allclose(lg, ld, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(gg), jax.tree.leaves(gd)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


def test_static_masked_count_holds_the_masks_the_pipeline_draws_and_overflow_is_loud():
    # the bound against the real masking: 1,000 batches of 8 x 64 fully real tokens
    k = max_masked(8 * 64)
    worst = max(int((_mlm_batch(8, 64, 1000, seed=i)["labels"] >= 0).sum()) for i in range(1000))
    assert worst < k < 8 * 64 and k % 64 == 0
    assert max_masked(256 * 128) < 0.17 * 256 * 128 and max_masked(64) == 64
    assert max_masked(4096, 0.4) > 0.4 * 4096
    # more masked tokens than the static count: NaN (the step's guard refuses it), never a cut
    model = _model(preset("tiny", num_layers=1))
    b = _mlm_batch(2, 64, 1024)
    b["labels"] = np.where(b["attention_mask"] > 0, b["input_ids"], -100)
    assert int((b["labels"] >= 0).sum()) > max_masked(128)
    loss = nnx.jit(lambda m, b, p: m.loss("mlm", b, mlm_probability=p)[0], static_argnums=2)
    assert np.isnan(float(loss(model, b, 0.15)))
    assert np.isfinite(float(loss(model, b, 1.0)))


def _state(heads, tx=None):
    cfg = preset("tiny", num_layers=1, hidden_dropout=0.0, attention_dropout=0.0)
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    tx, sched = (tx, None) if tx else optim.make_optimizer(lr=1e-2, total_steps=100, warmup=0)
    return cfg, sched, T.create_state(cfg, heads, tx, mesh)


def _cls_batch(vocab, b=8, s=16, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, (b, s)).astype(np.int32)
    return dict(input_ids=ids, attention_mask=np.ones_like(ids), labels=rng.integers(0, 3, b).astype(np.int32))


@pytest.mark.parametrize("guard", ["select", "cond"])
def test_nonfinite_step_is_not_applied_by_either_guard(monkeypatch, guard):
    orig = TaskModel.loss

    def poisoned(self, task, batch, rng=None, **kw):
        _, (total, count) = orig(self, task, batch, rng, **kw)
        total = total * jnp.where(batch["poison"][0] > 0, jnp.nan, 1.0)
        return total / jnp.maximum(count, 1), (total, count)
    monkeypatch.setattr(TaskModel, "loss", poisoned)
    cfg, sched, (g, state, sh) = _state({"cls": ("classification", 3)})
    step = T.make_train_step(g, sh, "cls", sched, guard=guard)
    batch = _cls_batch(cfg.vocab_size)
    poison = dict(batch, poison=np.ones(8, np.int32))
    hlo = step.lower(state, poison, jax.random.key(0)).compile().as_text()
    # select: no conditional (a GPU copies its predicate to the host); both: one global norm,
    # shared by the metrics and the clipping (before, the cond's branch recomputed it)
    assert ("conditional(" in hlo) == (guard == "cond")
    assert len(re.findall(r"= f32\[\] sqrt\(", hlo)) == 1
    before = [np.asarray(x) for x in jax.tree.leaves(state)]
    state, m = step(state, poison, jax.random.key(0))
    assert not bool(m["finite"])
    after = [np.asarray(x) for x in jax.tree.leaves(state)]
    assert all(np.array_equal(a, b, equal_nan=False) for a, b in zip(before, after))  # params, moments, count
    state, m = step(state, dict(batch, poison=np.zeros(8, np.int32)), jax.random.key(0))
    assert bool(m["finite"]) and int(nnx.merge(g, state).opt.step[...]) == 1
    changed = [not np.array_equal(a, np.asarray(b)) for a, b in zip(before, jax.tree.leaves(state))]
    assert sum(changed) > len(changed) // 2


def test_divide_folded_into_the_loss_gives_the_accumulated_gradients():
    # plain SGD with lr 1: the parameter change is the gradient itself
    cfg, sched, (g, s1, sh) = _state({"cls": ("classification", 3)}, optax.sgd(1.0))
    _, _, (_, s2, _) = _state({"cls": ("classification", 3)}, optax.sgd(1.0))
    batch = _cls_batch(cfg.vocab_size)
    one = T.make_train_step(g, sh, "cls", sched, accum_steps=1)
    two = T.make_train_step(g, sh, "cls", sched, accum_steps=2)
    s1, m1 = one(s1, batch, jax.random.key(0))
    s2, m2 = two(s2, batch, jax.random.key(0))
    np.testing.assert_allclose(m1["loss"], m2["loss"], rtol=1e-6)
    np.testing.assert_allclose(m1["grad_norm"], m2["grad_norm"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_flops_per_token_counts_the_heads_as_computed():
    cfg = preset("base")
    enc = metrics.flops_per_token(cfg, 128)
    assert enc == metrics.flops_per_token(cfg, 128, kind=None)
    # MLM: dense d x d + tied decoder d x V at the computed fraction of the positions
    d, v = cfg.hidden_size, cfg.vocab_size
    frac = max_masked(32 * 128) / (32 * 128)
    mlm = metrics.flops_per_token(cfg, 128, kind="mlm", predicted_fraction=frac)
    assert mlm - enc == pytest.approx(6 * frac * (d * d + d * v))
    dense = metrics.flops_per_token(cfg, 128, kind="mlm", predicted_fraction=1.0)
    assert dense / mlm > 2   # the dense head cost twice the whole base encoder
    cls = metrics.flops_per_token(cfg, 128, kind="classification", num_labels=3)
    assert cls - enc == pytest.approx(6 * (d * d + 3 * d) / 128)
    assert metrics.flops_per_token(cfg, 128, kind="tagging", num_labels=7) - enc == pytest.approx(6 * 7 * d)


def test_attention_masks_lengths_and_cudnn_fallback():
    from xtreme_jax.models import encoder as E
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.normal(size=(3, 16, 2, 8)), jnp.float32) for _ in range(3))
    am = np.ones((3, 16), np.int32)
    am[1, 9:], am[2, 3:] = 0, 0
    mask = E.attention_mask_4d(jnp.asarray(am))
    cfg = preset("tiny", num_heads=2, hidden_size=16)
    ref = E.attention(q, k, v, mask, cfg, None)
    # the lengths path (what cuDNN gets instead of a [B,1,S,S] mask), run through XLA here:
    # equal at real positions, zero at padding
    lens = np.asarray(E._cudnn_attention(q, k, v, mask, cfg, 0.0, implementation="xla"))
    real = am[:, :, None, None] > 0
    np.testing.assert_allclose(np.where(real, lens, 0), np.where(real, ref, 0), rtol=1e-5, atol=1e-6)
    assert not np.any(np.where(real, 0, lens))
    # off a GPU the cuDNN settings are the XLA path, with and without dropout
    for impl in ("cudnn", "cudnn_dropout"):
        c = cfg.replace(attention_impl=impl)
        np.testing.assert_array_equal(E.attention(q, k, v, mask, c, None), ref)
        key = jax.random.key(0)
        np.testing.assert_array_equal(E.attention(q, k, v, mask, c, key), E.attention(q, k, v, mask, cfg, key))
    # packed rows: per-segment lengths and offsets in cuDNN's layout (-1 past the last segment)
    seg = jnp.asarray([[1, 1, 1, 2, 2, 0], [1, 1, 1, 1, 1, 1]], jnp.int32)
    lengths, offsets = E.attention_mask_4d(seg > 0, seg).segments()
    np.testing.assert_array_equal(lengths, [[3, 2, -1, -1, -1, -1], [6, -1, -1, -1, -1, -1]])
    np.testing.assert_array_equal(offsets, [[0, 3, -1, -1, -1, -1, -1], [0, -1, -1, -1, -1, -1, -1]])


@pytest.mark.parametrize("bits", [8, 16])
def test_dropout_bits_keep_the_expectation_exact(bits):
    from xtreme_jax.models import encoder as E
    x = jnp.ones((64, 1024))
    mask, p = E._keep_mask(jax.random.key(1), 0.9, x.shape, bits)
    assert p == round(0.9 * 2 ** bits) / 2 ** bits and abs(float(mask.mean()) - p) < 0.005
    y = E.dropout(x, 0.1, jax.random.key(1), bits)
    np.testing.assert_allclose(float(y.mean()), float(mask.mean()) / p, rtol=1e-6)  # kept / p
    assert abs(float(y.mean()) - 1.0) < 0.01


def _rows_setup(vocab=64, guard="auto"):
    cfg = preset("tiny", num_layers=1, hidden_dropout=0.0, attention_dropout=0.0, vocab_size=vocab)
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    kw = dict(lr=1e-2, total_steps=100, warmup=0, layer_decay=0.9, num_layers=1)  # clip 1.0 bites at step 3
    tx, sched = optim.make_optimizer(**kw)
    heads = {"cls": ("classification", 3)}
    g1, s1, sh1 = T.create_state(cfg, heads, tx, mesh)
    g2, s2, sh2 = T.create_state(cfg, heads, tx, mesh, row_embeddings=True)
    dense = T.make_train_step(g1, sh1, "cls", sched)
    rows = T.make_train_step(g2, sh2, "cls", sched, row_update=optim.make_row_update(**kw), guard=guard)
    return (g1, s1, dense), (g2, s2, rows)


def _word(g, s):
    ts = nnx.merge(g, s)
    w = np.asarray(ts.model.encoder.embeddings.word[...])
    return (w, np.asarray(ts.word_mu[...]), np.asarray(ts.word_nu[...])) if hasattr(ts, "word_mu") else w


def test_row_wise_embedding_update_is_dense_adamw_when_every_row_is_used():
    (g1, s1, dense), (g2, s2, rows) = _rows_setup()
    rng = np.random.default_rng(0)
    norms = []
    for i in range(3):
        ids = rng.permutation(np.tile(np.arange(64), 2)).reshape(8, 16).astype(np.int32)  # each row twice
        b = dict(input_ids=ids, attention_mask=np.ones_like(ids), labels=rng.integers(0, 3, 8).astype(np.int32))
        s1, m1 = dense(s1, b, jax.random.key(i))
        s2, m2 = rows(s2, b, jax.random.key(i))
        np.testing.assert_allclose(m2["loss"], m1["loss"], rtol=1e-6)
        np.testing.assert_allclose(m2["grad_norm"], m1["grad_norm"], rtol=1e-6)
        norms.append(float(m1["grad_norm"]))
    assert max(norms) > 1.0 > min(norms)   # clipping both off and on along the way
    np.testing.assert_allclose(_word(g2, s2)[0], _word(g1, s1), atol=1e-5)
    d1 = {jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree.leaves_with_path(s1)}
    d2 = {jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree.leaves_with_path(s2)}
    shared = [k for k in d2 if k in d1 and "word" not in k]
    assert len(shared) > 20
    for k in shared:   # every other parameter, and the dense optimizer's moments and counts
        a, b = d2[k], d1[k]
        if "qkv_bias" in k and a.ndim == 2:   # the key bias has no gradient (softmax ignores a shift):
            a, b = a[[0, 2]], b[[0, 2]]         # Adam turns its rounding noise into lr-sized steps
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("guard", ["select", "cond"])
def test_row_wise_embedding_update_leaves_unused_rows_and_refuses_non_finite_steps(guard):
    (g1, s1, dense), (g2, s2, rows) = _rows_setup(guard=guard)
    rng = np.random.default_rng(1)
    for i in range(2):   # warm the moments of every row
        ids = rng.permutation(np.tile(np.arange(64), 2)).reshape(8, 16).astype(np.int32)
        b = dict(input_ids=ids, attention_mask=np.ones_like(ids), labels=rng.integers(0, 3, 8).astype(np.int32))
        s1, _ = dense(s1, b, jax.random.key(i))
        s2, _ = rows(s2, b, jax.random.key(i))
    ids = rng.integers(5, 20, (8, 16)).astype(np.int32)    # rows 5..19 only
    b = dict(input_ids=ids, attention_mask=np.ones_like(ids), labels=rng.integers(0, 3, 8).astype(np.int32))
    before, dense_before = _word(g2, s2), _word(g1, s1)
    s2, m = rows(s2, b, jax.random.key(9))
    s1, _ = dense(s1, b, jax.random.key(9))
    after, dense_after = _word(g2, s2), _word(g1, s1)
    used = np.zeros(64, bool)
    used[np.unique(ids)] = True
    for x, y in zip(before, after):   # table, mu, nu: unused rows bit-identical, used rows moved
        assert np.array_equal(x[~used], y[~used]) and (np.abs(x[used] - y[used]).max(1) > 0).all()
    assert (np.abs(dense_after[~used] - dense_before[~used]).max(1) > 0).all()   # dense moves them all
    # a non-finite gradient: nothing moves, the used rows included
    bad = dict(b, attention_mask=np.ones_like(ids))
    s2b, m = rows(s2, dict(bad, labels=np.full(8, 7, np.int32)), jax.random.key(10))   # label 7 of 3: NaN loss
    assert not bool(m["finite"])
    assert all(np.array_equal(x, y) for x, y in zip(after, _word(g2, s2b)))


def test_row_wise_embedding_update_refuses_a_tied_decoder():
    cfg = preset("tiny", num_layers=1)
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    kw = dict(lr=1e-2, total_steps=100, warmup=0)
    tx, sched = optim.make_optimizer(**kw)
    g, s, sh = T.create_state(cfg, {"mlm": ("mlm", 2)}, tx, mesh, row_embeddings=True)
    step = T.make_train_step(g, sh, "mlm", sched, row_update=optim.make_row_update(**kw))
    with pytest.raises(ValueError, match="^row_update with the 'mlm' head: its decoder reads every word-embedding row"):
        step(s, _mlm_batch(2, 16, cfg.vocab_size), jax.random.key(0))


def test_row_wise_state_resumes_from_a_checkpoint_to_the_same_steps(tmp_path):
    from xtreme_jax import checkpoint as ckpt_lib
    (_, _, _), (g, s, rows) = _rows_setup()
    rng = np.random.default_rng(2)
    batches = []
    for i in range(3):
        ids = rng.integers(0, 40, (8, 16)).astype(np.int32)
        batches.append(dict(input_ids=ids, attention_mask=np.ones_like(ids),
                            labels=rng.integers(0, 3, 8).astype(np.int32)))
    s, _ = rows(s, batches[0], jax.random.key(0))
    ck = ckpt_lib.Checkpointer(str(tmp_path / "ck"), async_save=False)
    ck.save(1, s)
    ck.wait()
    _, restored, _ = ck.restore(ckpt_lib.abstract_like(s))
    ck.close()
    for i, b in enumerate(batches[1:], 1):
        s, _ = rows(s, b, jax.random.key(i))
        restored, _ = rows(restored, b, jax.random.key(i))
    for a, b in zip(jax.tree.leaves(s), jax.tree.leaves(restored)):   # word_mu / word_nu included
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(nnx.merge(g, restored).opt.step[...]) == 3


def test_row_wise_update_with_gradient_accumulation_equals_one_step():
    # the used rows are found over the whole batch, then the microbatches run on that table
    cfg = preset("tiny", num_layers=1, hidden_dropout=0.0, attention_dropout=0.0, vocab_size=64)
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    kw = dict(lr=1e-2, total_steps=100, warmup=0)
    tx, sched = optim.make_optimizer(**kw)
    g, s1, sh = T.create_state(cfg, {"cls": ("classification", 3)}, tx, mesh, row_embeddings=True)
    s2 = jax.tree.map(jnp.copy, s1)
    one = T.make_train_step(g, sh, "cls", sched, accum_steps=1, row_update=optim.make_row_update(**kw))
    two = T.make_train_step(g, sh, "cls", sched, accum_steps=2, row_update=optim.make_row_update(**kw))
    b = _cls_batch(40)
    s1, m1 = one(s1, b, jax.random.key(0))
    s2, m2 = two(s2, b, jax.random.key(0))
    np.testing.assert_allclose(m2["loss"], m1["loss"], rtol=1e-6)
    np.testing.assert_allclose(m2["grad_norm"], m1["grad_norm"], rtol=1e-5)
    for x, y in zip(_word(g, s1), _word(g, s2)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
