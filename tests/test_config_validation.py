"""Bad settings are refused by config.validate before any compute, naming the field and the fix
(before: a bare StopIteration for batch_size=-8, ZeroDivisionError after compiling for
log_every=0 / save_every=0 / temperature=0, a silent no-op for an empty phase list)."""
import subprocess
import sys

import pytest

from xtreme_jax import config as C
from xtreme_jax.config import ConfigError


def _config():
    c = C.base_config()
    c.phases = "target,evaluate"
    c.target = C.train_phase([C.task_entry("xnli")], num_steps=10, batch_size=8)
    c.evaluate.tasks = [C.eval_task("xnli")]
    return c


def _error(mutate) -> str:
    c = _config()
    mutate(c)
    with pytest.raises(ConfigError) as e:
        C.validate(c, num_devices=8)
    return str(e.value)


def test_the_base_config_validates():
    c = _config()
    before = c.to_json_best_effort(sort_keys=True)
    assert C.validate(c, num_devices=8) is None
    assert c.to_json_best_effort(sort_keys=True) == before  # validation reads, never fills in


@pytest.mark.parametrize("field,value,message", [
    ("batch_size", -8, "config.target.batch_size=-8 must be positive, e.g. --config.target.batch_size=1"),
    ("accum_steps", 0, "config.target.accum_steps=0 must be positive"),
    ("save_every", 0, "config.target.save_every=0 must be positive"),
    ("log_every", 0, "config.target.log_every=0 must be positive"),
    ("eval_every", -1, "config.target.eval_every=-1 must be zero (off) or positive, e.g. "
                       "--config.target.eval_every=0"),
    ("keep", 0, "config.target.keep=0 must be positive"),
    ("warmup", -0.1, "config.target.warmup=-0.1 must be a non-negative fraction of num_steps below 1 "
                     "or a whole number of steps"),
    ("warmup", float("nan"), "config.target.warmup=nan must be a non-negative fraction"),
    ("lr", float("inf"), "config.target.lr=inf must be positive and finite"),
    ("layer_decay", 1.5, "config.target.layer_decay=1.5 must be 0 (off) or in (0, 1]"),
    ("layer_decay", float("nan"), "config.target.layer_decay=nan must be 0 (off) or in (0, 1]"),
    ("b1", 1.0, "config.target.b1=1.0 must be in [0, 1)"),
    ("eps", -1e-8, "config.target.eps=-1e-08 must be positive and finite"),
    ("clip", float("nan"), "config.target.clip=nan must be zero (off) or a positive global norm"),
    ("weight_decay", float("inf"), "config.target.weight_decay=inf must be zero or positive (finite)"),
    ("warmup", 1.5, "config.target.warmup=1.5: use a fraction of num_steps below 1"),
])
def test_phase_numbers(field, value, message):
    assert _error(lambda c: setattr(c.target, field, value)).startswith(message)


def test_temperature_sampler_needs_a_positive_temperature():
    def mutate(c):
        c.target.sampler, c.target.temperature = "temperature", 0.0
    assert _error(mutate).startswith("config.target.temperature=0.0 must be positive")


@pytest.mark.parametrize("field,value,message", [
    ("max_examples", -5, "config.target.tasks[0].max_examples=-5 must be 0"),
    ("fraction", 1.5, "config.target.tasks[0].fraction=1.5 must lie in [0, 1]"),
    ("weight", 0.0, "config.target.tasks[0].weight=0.0 must be positive"),
])
def test_task_entry_numbers(field, value, message):
    assert _error(lambda c: setattr(c.target.tasks[0], field, value)).startswith(message)


def test_empty_phases_unknown_size_and_error_policy():
    assert _error(lambda c: setattr(c, "phases", " , ")).startswith("config.phases=' , ' names no phase")
    assert _error(lambda c: setattr(c.model, "size", "huge")).startswith(
        "config.model.size='huge'; choose from ['base', 'large', 'small', 'tiny']"[:40])
    assert _error(lambda c: setattr(c.data, "errors", "ignore")).startswith(
        "config.data.errors='ignore'; choose 'raise'")


@pytest.mark.slow
def test_main_reports_a_bad_number_as_one_error_line(tmp_path):
    """Through the real entry point: exit 2, one `error:` line, no traceback, nothing trained."""
    out = subprocess.run(
        [sys.executable, "-m", "xtreme_jax.main", "--config=configs/demo.py", f"--workdir={tmp_path}/run",
         "--config.target.log_every=0"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1] == (
        "error: config.target.log_every=0 must be positive, e.g. --config.target.log_every=1")
    assert "Traceback" not in out.stderr


def test_max_length_beyond_the_position_table_is_refused_before_compute():
    """Before: tiny (130 positions) with cosmosqa (default 256) ran, the position lookup returned
    NaN and the run died with 'lower the learning rate'."""
    from xtreme_jax.models.encoder import preset
    tiny = preset("tiny")
    assert C.usable_positions(tiny) == 128  # XLM-R style: ids start at pad_token_id + 1 = 2
    assert C.usable_positions(tiny.replace(position_style="bert")) == 130
    c = _config()
    c.intermediate = C.train_phase([C.task_entry("cosmosqa")])
    c.phases = "intermediate,target,evaluate"
    with pytest.raises(ConfigError) as e:
        C.validate_lengths(c, tiny)
    assert str(e.value) == (
        "config.intermediate.tasks[0].max_length=256 (task 'cosmosqa''s default, as the field is 0) "
        "exceeds the model's 128 usable positions (max_position_embeddings=130, roberta-style position "
        "ids); set --config.intermediate.tasks[0].max_length=128 or use a model with more positions")
    c.intermediate.tasks[0].max_length = 128
    C.validate_lengths(c, tiny)
    c.evaluate.tasks = [C.eval_task("xquad")]  # QA default 384
    with pytest.raises(ConfigError, match=r"^config.evaluate.tasks\[0\].max_length=384 \(task 'xquad'"):
        C.validate_lengths(c, tiny)
    C.validate_lengths(c, preset("base"))  # 514 positions hold 384


def test_translate_train_availability_is_checked_before_compute():
    c = _config()
    c.target.tasks = [C.task_entry("panx", lang="de", split="translate_train")]
    with pytest.raises(ConfigError) as e:
        C.validate(c, num_devices=8)
    assert str(e.value) == ("config.target.tasks[0].split='translate_train': task 'panx' has no such split; "
                            "choose from ['train', 'dev', 'test'] (it has no translate-train data)")
    c.target.tasks = [C.task_entry("squad", lang="ur", split="translate_train")]  # XNLI has ur, QA not
    with pytest.raises(ConfigError, match=r"^config.target.tasks\[0\].lang='ur': task 'squad' has no "
                                          r"translate_train data in 'ur'; its translate_train languages are ar "):
        C.validate(c, num_devices=8)
    c.target.tasks = [C.task_entry("mnli", lang="sw", split="translate_train")]
    C.validate(c, num_devices=8)


def test_a_data_copy_that_lists_its_languages_is_taken_at_its_word(tmp_path):
    """The demo world's translated intermediate data and demo_nli's translate-train split validate
    in languages the registry does not know; a language the copy does not list is refused."""
    import importlib
    demo = importlib.import_module("configs.demo")
    c = demo.get_config("arm=with,translated=xa+xf,target_langs=en+xb,quick")
    C.validate(c, num_devices=8)
    assert [(t.name, t.lang, t.split) for t in c.target.tasks] == [
        ("demo_nli", "en", "train"), ("demo_nli", "xb", "translate_train")]
    c.intermediate.tasks[1].lang = "zz"
    with pytest.raises(ConfigError) as e:
        C.validate(c, num_devices=8)
    assert str(e.value).startswith("config.intermediate.tasks[1].lang='zz': task 'mnli' has no such "
                                   "language; choose from ['en', 'xa', 'xb',")
    c = demo.get_config("arm=with,quick")
    d = tmp_path / "copy"
    d.mkdir()
    c.intermediate.tasks[0].source.path = str(d)
    (d / "languages.txt").write_text("de\n")  # a copy listing other languages than the entry's
    with pytest.raises(ConfigError, match=r"^config.intermediate.tasks\[0\].lang='en': task 'mnli' has no such"):
        C.validate(c, num_devices=8)


@pytest.mark.parametrize("field, value", [("data.buckets", (64, 32)), ("evaluate.buckets", (16, 0, 32)),
                                          ("evaluate.buckets", (16, 16, 32))])
def test_length_buckets_must_increase(field, value):
    c = _config()
    section, key = field.split(".")
    c[section][key] = value
    with pytest.raises(ConfigError) as e:
        C.validate(c, num_devices=8)
    assert str(e.value) == (f"config.{field}={value} must be increasing positive lengths, "
                            f"e.g. --config.{field}='(16, 32, 64, 128, 256)'")



def test_row_wise_embedding_update_is_refused_where_a_head_reads_every_row():
    assert _error(lambda c: setattr(c.target, "embedding_update", "sparse")) == (
        "config.target.embedding_update='sparse'; choose 'dense' or 'rows'")
    def mutate(c):
        c.target.embedding_update = "rows"
        c.target.tasks = [C.task_entry("xnli"), C.task_entry("mlm")]
    assert _error(mutate) == (
        "config.target.embedding_update='rows' with target.tasks[1].name='mlm': its mlm head's decoder is "
        "tied to every word-embedding row; use --config.target.embedding_update=dense for this phase")
    c = _config()
    c.target.embedding_update = "rows"
    C.validate(c, num_devices=8)


@pytest.mark.parametrize("value", [0.0, 1.0, -0.15, float("nan")])
def test_mlm_probability_lies_strictly_between_0_and_1(value):
    """Before: mlm_probability=0.0 trained with an MLM loss of 0.0000 (nothing masked)."""
    def mutate(c):
        c.phases = "mlm,target,evaluate"
        c.mlm.tasks = [C.task_entry("mlm", head="mlm")]
        c.mlm.mlm_probability = value
    assert _error(mutate).startswith(f"config.mlm.mlm_probability={value} must be strictly between 0 and 1")


@pytest.mark.parametrize("value", [1.0, -0.1, float("inf")])
def test_dropout_is_a_fraction_below_1(value):
    assert _error(lambda c: setattr(c.model, "dropout", value)).startswith(
        f"config.model.dropout={value} must lie in [0, 1)")


def test_phases_out_of_order_or_repeated_are_refused_before_any_phase_trains():
    assert _error(lambda c: setattr(c, "phases", "evaluate,target")) == (
        "config.phases='evaluate,target': list each phase once, in the order "
        "mlm,intermediate,pretarget,target,evaluate, e.g. --config.phases=target,evaluate")
    assert _error(lambda c: setattr(c, "phases", "target,target,evaluate")).startswith(
        "config.phases='target,target,evaluate': list each phase once")


def test_evaluate_alone_is_refused_unless_something_trained_is_loaded():
    """Before: phases=evaluate scored a randomly initialised model and head without a word."""
    c = _config()
    c.phases = "evaluate"
    with pytest.raises(ConfigError, match=r"^config.phases='evaluate' trains nothing, so it would score a "
                                          r"randomly initialised encoder and heads"):
        C.check_runnable(c)
    c.model.pretrained = "FacebookAI/xlm-roberta-base"  # a pretrained encoder, but xnli's head is new
    with pytest.raises(ConfigError, match=r"would score the heads of xnli\. "):
        C.check_runnable(c)
    c.evaluate.tasks = [C.eval_task("tatoeba")]  # retrieval: scored from the encoder alone
    C.check_runnable(c)
    c.model.pretrained, c.init_from, c.evaluate.tasks = "", "/runs/a/target", [C.eval_task("xnli")]
    C.check_runnable(c)
    C.check_runnable(_config())
