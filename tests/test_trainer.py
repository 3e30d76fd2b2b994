"""build_trainer (one trainer per phase, used by runs and benchmarks), the loop's hooks and
progress record, the MLM masking rate reaching the head, span dev accuracy, and every
accelerator lever reaching the compiled step."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xtreme_jax import config as C
from xtreme_jax import sharding
from xtreme_jax.config import ConfigError
from xtreme_jax.models.heads import SpanHead, max_masked

WORDS = "the a cat dog sees likes big small red blue runs sleeps".split()


def _context(c, workdir):
    from xtreme_jax.context import build_context
    return build_context(c, str(workdir))


def _smoke_config(smoke, **model):
    c = C.base_config()
    c.model.tokenizer = str(smoke / "tok")
    c.data.buckets = (32,)
    c.data.cache_dir = str(smoke / "cache")
    c.phases = "intermediate"
    c.intermediate = C.train_phase([C.task_entry("xnli", src=C.source("official", str(smoke / "xnli")))],
                                   num_steps=2, batch_size=8, eval_every=0)
    for k, v in model.items():
        c.model[k] = v
    return c


# ---------------------------------------------------------------- build_trainer: the parts

def test_build_trainer_returns_the_parts_a_benchmark_needs(smoke, tmp_path):
    from xtreme_jax.trainer import build_trainer
    c = _smoke_config(smoke)
    c.intermediate.eval_every = 1
    c.intermediate.eval_examples = 16
    context = _context(c, tmp_path)
    tr = build_trainer(c.intermediate, context, None)
    assert tr.heads == {"xnli": ("classification", 3)} and list(tr.steps) == ["xnli"]
    assert [e.name for e in tr.entries] == ["xnli"] and tr.entries[0].dev.num_examples == 16
    assert tr.validating and list(tr.data_state) == ["data_0"] and float(tr.probs.sum()) == 1.0
    i, host = tr.next_batch(0)
    state, m = tr.steps["xnli"](tr.state, sharding.device_batch(host, context.mesh), jax.random.fold_in(tr.rng, 0))
    assert i == 0 and host["input_ids"].shape == (8, 32) and bool(m["finite"]) and int(m["step"]) == 0
    assert int(state["opt"]["step"][...]) == 1  # the step applied the update of tx
    results = tr.validator(state, tr.entries)
    assert set(results["xnli"]) == {"loss", "accuracy"} and 0 <= results["xnli"]["accuracy"] <= 1


# ---------------------------------------------------------------- the MLM masking rate (bug fix)

def test_the_phase_masking_rate_sizes_the_mlm_head_on_long_batches(smoke, tmp_path):
    """Before: make_train_step never got mlm_probability, so the head gathered max_masked(n, 0.15)
    positions: at 0.25 on 32 x 128-token rows ~1,000 tokens are masked against 832 gathered, the
    loss was NaN and every step was refused as non-finite."""
    from xtreme_jax.trainer import build_trainer
    rng = np.random.default_rng(0)
    text = tmp_path / "text"
    text.mkdir()
    (text / "en.txt").write_text("\n".join(" ".join(rng.choice(WORDS, 200)) for _ in range(64)) + "\n")
    c = _smoke_config(smoke)
    c.data.buckets = (128,)
    c.phases = "mlm"
    c.mlm = C.train_phase([C.task_entry("mlm", src=C.source("official", str(text)))], num_steps=1,
                          batch_size=32, eval_every=0, mlm_probability=0.25)
    context = _context(c, tmp_path / "run")
    tr = build_trainer(c.mlm, context, None)
    _, host = tr.next_batch(0)
    n, masked = host["labels"].size, int((host["labels"] >= 0).sum())
    assert host["labels"].shape == (32, 128) and masked > max_masked(n, 0.15)  # the old head's size
    assert masked <= max_masked(n, 0.25)
    _, m = tr.steps["mlm"](tr.state, sharding.device_batch(host, context.mesh), tr.rng)
    assert bool(m["finite"]) and np.isfinite(float(m["loss"])) and int(m["count"]) == masked


# ---------------------------------------------------------------- span dev accuracy

def test_span_accuracy_counts_windows_with_both_boundaries_exact():
    logits = np.full((4, 6, 2), -5.0, np.float32)
    for row, (s, e) in enumerate([(1, 3), (2, 2), (0, 4), (5, 5)]):  # the argmax start / end per row
        logits[row, s, 0], logits[row, e, 1] = 5.0, 5.0
    batch = {"start_positions": jnp.asarray([1, 2, 0, 3]), "end_positions": jnp.asarray([3, 4, 4, -1])}
    # row 0: both exact; row 1: end wrong; row 2: both exact; row 3: no gold window (start 3 >= 0
    # but the end differs) -> 2 of the 4 windows the loss counts
    assert int(SpanHead.correct(jnp.asarray(logits), batch)) == 2
    batch["start_positions"] = jnp.asarray([1, 2, -1, 3])  # a window the loss skips is not counted
    assert int(SpanHead.correct(jnp.asarray(logits), batch)) == 1


def test_validator_reports_span_accuracy_in_0_1(tmp_path):
    from xtreme_jax import optim, train_step
    from xtreme_jax.models.encoder import preset
    from xtreme_jax.tasks import get_task
    from xtreme_jax.validation import Validator, dev_score
    assert get_task("xquad").family.dev_accuracy  # span tasks validate with an accuracy
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    tx, _ = optim.make_optimizer(lr=1e-3, total_steps=10)
    graphdef, state, _ = train_step.create_state(preset("tiny"), {"qa": ("span", 2)}, tx, mesh)
    v = Validator(graphdef, mesh, 4)
    rng = np.random.default_rng(0)
    batch = {"input_ids": rng.integers(5, 100, (4, 16)), "attention_mask": np.ones((4, 16), np.int32),
             "start_positions": np.array([0, 3, 5, -1]), "end_positions": np.array([0, 4, 9, -1])}
    total, count, correct = v._fn(state, "qa", sharding.device_batch(batch, mesh))
    from flax import nnx
    logits = np.asarray(nnx.merge(graphdef, state).model.logits("qa", sharding.device_batch(batch, mesh)))
    hand = sum(int(logits[r, :, 0].argmax() == batch["start_positions"][r]
                   and logits[r, :, 1].argmax() == batch["end_positions"][r]) for r in range(3))
    assert int(count) == 3 and int(correct) == hand
    assert dev_score({"qa": {"loss": 2.0, "accuracy": hand / 3}}) == pytest.approx(hand / 3)


# ---------------------------------------------------------------- the loop's hooks and progress

def test_hooks_fire_on_their_interval_and_at_the_end():
    from xtreme_jax.train_loop import Hook
    calls = []
    h = Hook(3, calls.append)
    fired = [s for s in range(1, 8) if h.due(s, s == 7)]
    assert fired == [3, 6, 7]
    assert [s for s in range(1, 8) if Hook(0, calls.append, at_end=False).due(s, s == 7)] == []
    assert [s for s in range(1, 8) if Hook(1, calls.append).due(s, False)] == list(range(1, 8))


def test_progress_meta_is_what_the_checkpoint_held_before():
    from xtreme_jax.train_loop import Progress
    assert Progress().meta() == {"best_score": None, "bad_evals": 0, "skipped": 0}
    p = Progress.from_meta({"best_score": 0.5, "best_step": 4, "bad_evals": 1, "skipped": 2, "step": 6,
                            "data_sha256": {}, "stop_reason": "early stop", "last_log": {"loss": 1.0}})
    assert p.meta() == {"best_score": 0.5, "best_step": 4, "bad_evals": 1, "skipped": 2,
                        "stop_reason": "early stop", "last_log": {"loss": 1.0}}


# ---------------------------------------------------------------- accelerator levers

def _lowered(smoke, tmp_path, **model):
    from xtreme_jax.trainer import build_trainer
    c = _smoke_config(smoke, **model)
    context = _context(c, tmp_path)
    tr = build_trainer(c.intermediate, context, None)
    _, host = tr.next_batch(0)
    text = tr.steps["xnli"].lower(tr.state, sharding.device_batch(host, context.mesh), tr.rng).as_text()
    return context.model_cfg, text


def test_each_accelerator_lever_changes_the_compiled_step(smoke, tmp_path):
    cfg, base = _lowered(smoke, tmp_path / "base")
    assert (cfg.attention_impl, cfg.dropout_bits, cfg.grad_dtype, cfg.attention_dropout) == (None, 16, None, 0.1)
    for lever, value, field, want in [("attention_dropout", 0.0, "attention_dropout", 0.0),
                                      ("grad_dtype", "bfloat16", "grad_dtype", jnp.bfloat16),
                                      ("dropout_bits", 8, "dropout_bits", 8)]:
        cfg, text = _lowered(smoke, tmp_path / lever, **{lever: value})
        assert getattr(cfg, field) == want and cfg.hidden_dropout == 0.1
        assert text != base, f"model.{lever}={value!r} left the step unchanged"
    cfg, text = _lowered(smoke, tmp_path / "cudnn", attention_impl="cudnn")
    assert cfg.attention_impl == "cudnn"
    # Off a GPU the cuDNN setting is the XLA path by design (tests/test_perf.py); on a GPU the
    # step calls cuDNN's fused attention.
    assert (text != base) == (jax.default_backend() == "gpu")


@pytest.mark.parametrize("field,value,message", [
    ("attention_impl", "flash", "config.model.attention_impl='flash'; choose '' (XLA picks) or one of "
                                "cudnn, cudnn_dropout"),
    ("attention_dropout", 1.0, "config.model.attention_dropout=1.0 must lie in [0, 1)"),
    ("grad_dtype", "float16", "config.model.grad_dtype='float16'; choose from float32, bfloat16"),
    ("dropout_bits", 4, "config.model.dropout_bits=4; choose 16 or 8"),
])
def test_bad_accelerator_levers_name_the_field(field, value, message):
    c = C.base_config()
    c.intermediate.tasks = c.target.tasks = [C.task_entry("xnli")]
    c.phases = "intermediate,target"
    c.model[field] = value
    with pytest.raises(ConfigError) as e:
        C.validate(c, num_devices=8)
    assert str(e.value).startswith(message)


def test_the_levers_are_schema_fields_a_locked_config_accepts():
    c = C.base_config()
    c.lock()
    c.model.grad_dtype, c.model.dropout_bits, c.model.attention_impl = "bfloat16", 8, "cudnn"
    c.model.attention_dropout = 0.0
    with pytest.raises(AttributeError):
        c.model.bf16_grads = True  # the old, unlisted name is refused
