"""configs/stilts.py (one config per paper setting). The studies (configs/studies/) are tested in
tests/test_study_*.py."""
import importlib.util
import os

import pytest

from xtreme_jax import config as C
from xtreme_jax.config import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "configs", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


stilts = load("stilts")
TARGETS = ("xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "xcopa", "bucc2018", "tatoeba")


@pytest.mark.parametrize("inter", list(stilts.INTERMEDIATE) + ["multi", "none"])
@pytest.mark.parametrize("target", TARGETS)
def test_every_paper_setting_validates(inter, target):
    c = stilts.get_config(f"intermediate={inter},target={target},model=base,data=/data")
    C.validate(c, num_devices=8)
    phases = C.phases(c)
    assert phases[-1] == "evaluate" and ("intermediate" in phases) == (inter != "none")
    assert ("target" in phases) == (target not in stilts.RETRIEVAL)
    if inter == "multi":
        assert [t.name for t in c.intermediate.tasks] == list(stilts.INTERMEDIATE)
    assert [t.name for t in c.evaluate.tasks] == [target]


def test_direct_target_language_fine_tuning_reads_translate_train():
    c = stilts.get_config("intermediate=none,target=xnli,target_langs=en+de+sw,target_examples=1000")
    C.validate(c, num_devices=8)
    assert C.phases(c) == ["target", "evaluate"]
    assert [(t.name, t.lang, t.split, t.head, t.max_examples) for t in c.target.tasks] == [
        ("mnli", "en", "train", "xnli", 1000), ("mnli", "de", "translate_train", "xnli", 1000),
        ("mnli", "sw", "translate_train", "xnli", 1000)]
    assert c.target.num_steps == 2 * 3000 // 32   # 2 epochs over 3 x 1000 examples
    assert c.target.eval_every == c.target.save_every == 50


def test_bad_stilts_args_are_named():
    with pytest.raises(ValueError, match="unknown arg 'targett'"):
        stilts.get_config("targett=xnli")
    with pytest.raises(ValueError, match="target_examples='1k' must be a non-negative integer"):
        stilts.get_config("target_examples=1k")
    c = stilts.get_config("intermediate=none,target=xnli,target_langs=en+xx")
    with pytest.raises(ConfigError, match=r"config.target.tasks\[1\].lang='xx'"):
        C.validate(c, num_devices=8)


def test_intermediate_list_is_plus_separated_and_keeps_anli_plus():
    c = stilts.get_config("intermediate=anli++qqp+sst2,target=xnli")
    assert [t.name for t in c.intermediate.tasks] == ["anli+", "qqp", "sst2"]
