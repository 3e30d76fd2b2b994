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


def test_target_recipe_is_jiants_xtreme_guide():
    """jiant guides/benchmarks/xtreme.md (the X-STILTs paper's code): lr 1e-5, effective batch 32
    (QA 16), XNLI 2 / PAWS-X 5 / tagging 10 / QA 2 epochs, max length 256 (QA 384), validation
    every 1000 steps, 30 validations of patience."""
    from xtreme_jax.study import cost, expand
    sizes = {"xnli": 393_000, "pawsx": 49_000, "udpos": 21_000, "panx": 20_000, "xquad": 88_000,
             "tydiqa": 3_700}
    expect = {"xnli": (2, 32, 256), "pawsx": (5, 32, 256), "udpos": (10, 32, 256), "panx": (10, 32, 256),
              "xquad": (2, 16, 384), "tydiqa": (2, 16, 384)}
    for target, (epochs, batch, length) in expect.items():
        c = _stilts(f"intermediate=mnli,target={target},model=base")
        p = c.target
        assert (p.lr, p.batch_size, p.patience) == (1e-5, batch, 30), target
        assert p.num_steps == epochs * sizes[target] // batch, target
        assert p.eval_every == min(1000, max(50, p.num_steps // 4)), target
        assert cost.phase_seq(expand.to_plain(c), "target") == length, target
        assert [e.max_length or length for e in c.evaluate.tasks] == [length], target
        C.validate(c, num_devices=8)


def test_intermediate_entries_use_jiants_length_and_retrieval_keeps_the_registrys():
    c = _stilts("intermediate=multi,target=tatoeba,model=base")
    lengths = {t.name: t.max_length for t in c.intermediate.tasks}
    assert lengths["mnli"] == lengths["hellaswag"] == lengths["ccg"] == 256
    assert lengths["squad"] == 0            # the registry's 384, jiant's too
    assert [e.max_length for e in c.evaluate.tasks] == [0]


def test_ccg_reads_its_own_directory_and_every_other_task_the_hub_or_data():
    """CCGbank is LDC-licensed (no hub copy): `ccg=DIR` takes CCG from local files while the other
    tasks stay on the hub; without it, CCG is <data>/ccg like every task."""
    sources = lambda c: {t.name: (t.source.type, t.source.path) for t in c.intermediate.tasks}  # noqa: E731
    got = sources(_stilts("intermediate=multi,target=pawsx,ccg=/ldc/ccg"))
    assert got["ccg"] == ("official", "/ldc/ccg")
    assert {v for k, v in got.items() if k != "ccg"} == {("hub", "")}
    got = sources(_stilts("intermediate=multi,target=pawsx,data=/d"))
    assert got["ccg"] == ("official", "/d/ccg") and got["mnli"] == ("official", "/d/mnli")
    assert sources(_stilts("intermediate=ccg,target=pawsx,data=/d,ccg=/ldc"))["ccg"] == ("official", "/ldc")
