"""config.ablate: the shared phases run once, then the rest with and without the ablated phase from
that same start, and the per-language gain is printed and written."""
import pytest

from xtreme_jax import config as C
from xtreme_jax.ablation import arm_configs, gain_table, run_ablation
from xtreme_jax.config import ConfigError


def test_arms_share_the_phases_before_the_ablated_one():
    c = C.base_config()
    c.phases, c.ablate = "mlm,intermediate,target,evaluate", "intermediate"
    arms = arm_configs(c)
    assert {k: v.phases for k, v in arms.items()} == {
        "shared": "mlm", "with": "intermediate,target,evaluate", "without": "target,evaluate"}
    assert arms["with"].init_from == arms["without"].init_from == "{workdir}/shared/mlm"
    assert all(a.ablate == "" for a in arms.values())
    c.phases = "intermediate,target,evaluate"  # nothing before it: both arms start from the pretrained model
    assert sorted(arm_configs(c)) == ["with", "without"]
    assert arm_configs(c)["without"].init_from == ""
    c.ablate = "evaluate"
    with pytest.raises(ConfigError, match=r"^config.ablate='evaluate' is not a training phase of "
                                          r"config.phases='intermediate,target,evaluate'; name one of "
                                          r"\['intermediate', 'target'\]"):
        arm_configs(c)


def test_gain_table_is_with_minus_without_and_averages_the_non_english_languages():
    without = {"xnli": {"en": {"accuracy": 70.0}, "de": {"accuracy": 50.0}, "fr": {"accuracy": 60.0}}}
    with_ = {"xnli": {"en": {"accuracy": 72.0}, "de": {"accuracy": 56.0}, "fr": {"accuracy": 61.0}}}
    lines = gain_table(without, with_, "intermediate").splitlines()
    assert "  de             50.0     56.0    +6.0" in lines
    assert "  en             70.0     72.0    +2.0" in lines
    assert any(l.startswith("  zero-shot      55.0     58.5    +3.5") for l in lines)


@pytest.mark.slow
def test_ablation_run_trains_shared_phases_once_and_compares(smoke, tmp_path, capsys):
    c = C.base_config()
    c.model.tokenizer = str(smoke / "tok")
    c.data.buckets = (32,)
    c.data.cache_dir = str(smoke / "cache")
    c.phases, c.ablate = "intermediate,target,evaluate", "target"
    src = C.source("official", str(smoke / "xnli"))
    c.intermediate = C.train_phase([C.task_entry("xnli", src=src)], num_steps=4, batch_size=8, lr=1e-3,
                                   eval_every=0, save_every=4, log_every=2, keep_heads=True)
    c.target = C.train_phase([C.task_entry("xnli", src=src)], num_steps=4, batch_size=8, lr=1e-3,
                             eval_every=0, save_every=4, log_every=2)
    c.evaluate.tasks = [C.eval_task("xnli", src, languages="en,de")]
    c.evaluate.batch_size = 8
    c.evaluate.write_submission = False
    c.lock()
    run_ablation(c, str(tmp_path))
    out = capsys.readouterr().out
    assert out.count("MFU % is relative to") == 1  # one note for the three phase tables of the arms
    assert "One run per arm, one seed (config.seed=" in out
    assert (tmp_path / "shared" / "intermediate" / "final").is_dir()
    assert not (tmp_path / "with" / "intermediate").exists()  # trained once, in shared/
    assert not (tmp_path / "without" / "intermediate").exists()
    assert (tmp_path / "with" / "target" / "final").is_dir() and not (tmp_path / "without" / "target").exists()
    for f in ("comparison.md", "comparison.csv", "comparison_xnli.png"):
        assert (tmp_path / "comparison" / f).is_file()
    assert "xnli (accuracy, %): without vs with target training" in out
    assert f"comparison: {tmp_path}/comparison/comparison.md" in out
    from xtreme_jax.report import read_results
    w = read_results(tmp_path / "with" / "evaluate" / "results" / "results.json")[0]["xnli"]["de"]["accuracy"]
    wo = read_results(tmp_path / "without" / "evaluate" / "results" / "results.json")[0]["xnli"]["de"]["accuracy"]
    assert f"  de         {wo:8.1f} {w:8.1f} {w - wo:+7.1f}" in out


def test_demo_default_is_the_intermediate_ablation():
    """The README's main command (configs/demo.py, no args) is the X-STILTs comparison: MLM shared,
    the arms differ only in the English intermediate phase (tools/demo_gain.py measures its gain)."""
    import importlib
    c = importlib.import_module("configs.demo").get_config()
    arms = arm_configs(c)
    assert {k: v.phases for k, v in arms.items()} == {
        "shared": "mlm", "with": "intermediate,target,evaluate", "without": "target,evaluate"}
    assert [(t.name, t.lang) for t in c.intermediate.tasks] == [("mnli", "en")]
    assert arms["with"].target.to_dict() == arms["without"].target.to_dict()


def test_demo_gain_aggregates_seeds(tmp_path):
    """tools/demo_gain.py over two finished seeds (the launcher `true` stands in for the runs): the
    per-language and per-group gains, their bootstrap CI, the intermediate dev accuracy, the table."""
    import json
    from tools import demo_gain
    langs = demo_gain.LANGS
    for seed, (base, gain) in enumerate([(50.0, 4.0), (60.0, 8.0)]):
        for arm, g in (("without", 0.0), ("with", gain)):
            d = tmp_path / f"seed{seed}" / arm / "evaluate" / "results"
            d.mkdir(parents=True)
            acc = {l: {"accuracy": base + (g if l in demo_gain.RELATED else 0.0)} for l in langs}
            (d / "results.json").write_text(json.dumps({"results": {"demo_nli": acc}}))
        m = tmp_path / f"seed{seed}" / "with" / "intermediate" / "metrics"
        m.mkdir(parents=True)
        m.joinpath("train.jsonl").write_text(
            json.dumps({"step": 100, "dev/mnli/accuracy": 0.5, "dev/score": 0.5}) + "\n" + json.dumps(
                {"step": 200, "dev/mnli/accuracy": 0.7 + seed / 10, "dev/score": 0.7}) + "\n")
        (tmp_path / f"seed{seed}" / "timing.json").write_text(json.dumps(
            {"wall_s": 200.0, "cpu_s": 300.0, "load_before": [1.0, 1, 1], "load_after": [2.0, 2, 2]}))
    demo_gain.main(["--workdir", str(tmp_path), "--seeds", "0,1", "--launcher", "true"])
    out = json.loads((tmp_path / "gain.json").read_text())
    t = out["test_accuracy"]
    assert t["xa"]["gain"]["values"] == [4.0, 8.0] and t["xe"]["gain"]["mean"] == 0.0
    assert t["related"]["gain"]["mean"] == 6.0 and t["related"]["languages"] == demo_gain.RELATED
    assert 4.0 <= t["related"]["gain"]["ci95"][0] < t["related"]["gain"]["ci95"][1] <= 8.0
    assert t["all non-English"]["gain"]["mean"] == 6.0 * len(demo_gain.RELATED) / (len(langs) - 1)
    assert out["intermediate_dev_accuracy"]["mnli"]["values"] == [70.0, 80.0]
    assert out["transfer_gap"]["reduction"]["values"] == [4.0, 8.0]  # English unchanged: all of it
    md = (tmp_path / "gain.md").read_text()
    assert "| xa | 55.0 ± 7.1 | 61.0 ± 9.9 | +6.0 ± 2.8 |" in md
    assert "mnli 75.0 ± 7.1" in md and "wall 200 s" in md
    assert out["command"].endswith(f"--workdir={tmp_path}/seedSEED --config.seed=SEED")


def test_console_and_comparison_md_average_the_same_languages_and_say_what_one_run_cannot_show(tmp_path):
    """One definition of each average (issue 25: comparison.md averaged 9 languages, the console 8):
    'avg' over every common language, 'zero-shot' over the non-English ones, in both places; the
    one-seed note under the table, in comparison.md and on the plot."""
    from xtreme_jax import report
    from xtreme_jax.ablation import one_run_note
    without = {"xnli": {"en": {"accuracy": 70.0}, "de": {"accuracy": 50.0}, "fr": {"accuracy": 60.0}}}
    with_ = {"xnli": {"en": {"accuracy": 72.0}, "de": {"accuracy": 56.0}, "fr": {"accuracy": 61.0}}}
    lines = gain_table(without, with_, "intermediate").splitlines()
    assert "  avg            60.0     63.0    +3.0   (mean over all 3 languages, English included)" in lines
    assert "  zero-shot      55.0     58.5    +3.5   (mean over the 2 non-English languages)" in lines
    c = C.base_config()
    c.seed = 8
    note = one_run_note(c)
    assert note.startswith("One run per arm, one seed (config.seed=8): a single run's gain moves with the seed")
    paths = report.write_comparison(tmp_path, with_, without, names=("with", "without"), note=note)
    md = open(paths["markdown"]).read()
    assert "| xnli | accuracy | 63.0 | 60.0 | +3.0 | 3/3 | +3.5 | 2 |" in md
    assert "| **avg** | 63.0 | 60.0 | +3.0 |" in md and "| **zero-shot** (2) | 58.5 | 55.0 | +3.5 |" in md
    assert note in md
