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
    ("warmup", -0.1, "config.target.warmup=-0.1 must not be negative"),
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
