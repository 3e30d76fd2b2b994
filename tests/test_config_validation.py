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
    C.validate(_config(), num_devices=8)


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
