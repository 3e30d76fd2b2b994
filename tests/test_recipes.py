"""Recipes match the official XTREME / XTREME-R scripts (google-research/xtreme, scripts/*.sh)."""
import importlib.util
import os

from xtreme_jax import config as C

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _stilts(arg):
    spec = importlib.util.spec_from_file_location("stilts", os.path.join(ROOT, "configs", "stilts.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(arg)


def test_xcopa_trains_siqa_then_continues_on_english_copa():
    """scripts/train_xcopa.sh: SIQA (5 epochs), then the same model on English COPA (5 epochs),
    then predictions on the XCOPA languages."""
    c = _stilts("intermediate=mnli,target=xcopa,model=base")
    assert C.phases(c) == ["intermediate", "pretarget", "target", "evaluate"]
    assert [(t.name, t.head, t.lang) for t in c.pretarget.tasks] == [("siqa", "xcopa", "en")]
    assert [(t.name, t.head, t.lang) for t in c.target.tasks] == [("copa", "xcopa", "en")]
    assert c.pretarget.keep_heads  # the multiple-choice head trained on SIQA continues on COPA
    assert (c.pretarget.num_steps, c.target.num_steps) == (5 * 33_000 // 32, 5 * 400 // 32)
    assert [t.name for t in c.evaluate.tasks] == ["xcopa"]
    C.validate(c, num_devices=8)


def test_single_stage_targets_have_no_pretarget_phase():
    assert "pretarget" not in C.phases(_stilts("intermediate=mnli,target=pawsx,model=base"))
