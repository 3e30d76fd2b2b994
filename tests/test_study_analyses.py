"""The analyses on fake worlds built to have the structure each old bug needed: a span task whose
validator recorded -loss, three encoders in a label order that hides the question's contrast, two
arms measured over disjoint ranges. No runs: the collected rows are written directly."""
import math

import ml_collections as mlc
import numpy as np
import pytest

from xtreme_jax.study import spec
from xtreme_jax.study.analyses.difficulty import NotAScore, difficulty, difficulty_of
from xtreme_jax.study.analyses.direct import direct
from xtreme_jax.study.collect import Collected


def world(cells, factors, curves=None, examples=None, intermediate=None):
    """cells: {(labels tuple, seed): {language: score}} -> a Collected with one point per cell."""
    rows, points, index = [], {}, {}
    for i, ((labels, seed), by_lang) in enumerate(cells.items()):
        index[(labels, seed)] = i
        points[i] = {"params": math.nan, "intermediate_tasks": (intermediate or {}).get(labels, [])}
        for lang, v in by_lang.items():
            rows.append({**dict(labels), "point": i, "run": f"r{i}", "seed": seed, "task": "xnli", "language": lang,
                         "seen": lang == "en", "split": "test", "metric": "accuracy", "value": float(v),
                         "primary": True, "steps": 1, "accelerator_hours": 1.0, "cost_source": "estimate"})
    curves = {index[k]: v for k, v in (curves or {}).items()}
    examples = {index[k]: v for k, v in (examples or {}).items()}
    return Collected(rows, factors, curves, {}, [], examples, points)


TASKS = ("mnli", "qqp", "sst2", "hellaswag")


def difficulty_world():
    """bert-large and roberta-large (English-only): the harder the task, the smaller the gain;
    xlm-r-large: the harder, the larger. squad's curve is -loss, as span tasks once recorded it."""
    enc = ("bert-large", "roberta-large", "xlm-r-large")
    cells, curves, inter = {}, {}, {}
    for e in enc:
        for seed in (0, 1, 2):
            for j, t in enumerate(TASKS + ("squad", "none")):
                labels = (("encoder", e), ("intermediate", t))
                gain = (4 - j if e != "xlm-r-large" else j) + 0.1 * seed if t != "none" else 0
                cells[(labels, seed)] = {"en": 80, "de": 60 + gain, "fr": 60 + gain}
                inter[labels] = [t] if t != "none" else []
                if t == "squad":
                    curves[(labels, seed)] = {"intermediate": [(100, -2.1), (200, -1.4)]}
                elif t != "none":    # accuracy rising; later tasks harder (error normalized by chance's)
                    top = (0.95, 0.85, 0.75, 0.5)[j]
                    curves[(labels, seed)] = {"intermediate": [(100, top - 0.2), (200, top)]}
    c = spec.study("difficulty", "q", "full")
    c.analysis.encoder, c.analysis.task, c.analysis.baseline = "encoder", "intermediate", "none"
    c.analysis.english_only, c.analysis.multilingual = ("roberta-large", "bert-large"), ("xlm-r-large",)
    return world(cells, ["encoder", "intermediate"], curves, intermediate=inter), c


def test_a_loss_is_never_read_as_a_difficulty():
    with pytest.raises(NotAScore, match=r"dev/score -2.1 is not a score in \[0, 1\]"):
        difficulty_of([(100, -2.1), (200, -1.4)], 0.0)
    with pytest.raises(NotAScore):
        difficulty_of([(100, 0.4), (200, 1.3)], 0.0)      # > 1: not an accuracy either
    assert difficulty_of([(1, 0.5), (2, 1.0)], 0.5) == pytest.approx(0.5)
    col, c = difficulty_world()
    out = difficulty(col, c)
    est = out["estimates"]
    skipped = est["skipped"]
    assert len(skipped) == 9 and {s["task"] for s in skipped} == {"squad"}   # 3 encoders x 3 seeds
    assert all("not a score in [0, 1]" in s["reason"] for s in skipped)
    for e in ("bert-large", "roberta-large", "xlm-r-large"):
        d = est[e]["difficulty"]
        assert d["squad"]["value"] is None and d["squad"]["n"] == 0            # no difficulty, not 1 + loss
        assert all(0 <= d[t]["value"] <= 1 for t in TASKS)
    assert any("9 learning curve(s) skipped" in line for line in out["lines"])


def test_the_difference_contrasts_english_only_with_multilingual_encoders():
    col, c = difficulty_world()
    out = difficulty(col, c)
    est = out["estimates"]
    assert est["bert-large"]["spearman_difficulty_gain"]["value"] == pytest.approx(-1.0)
    assert est["roberta-large"]["spearman_difficulty_gain"]["value"] == pytest.approx(-1.0)
    assert est["xlm-r-large"]["spearman_difficulty_gain"]["value"] == pytest.approx(1.0)
    # the first two encoders by label (bert, roberta) would give 0; the question's contrast is -2
    diff = est["spearman_difference"]
    assert diff["value"] == pytest.approx(-2.0) and "multilingual (xlm-r-large)" in diff["of"]
    assert out["headline"]["english_only_minus_multilingual"] is diff
    # the task gains are one family (3 encoders x 5 tasks), Holm-adjusted
    g = est["xlm-r-large"]["gain"]["hellaswag"]
    assert g["family"] == "task gains, 3 encoders x 5 tasks (15 tests, Holm)" and g["p_holm"] >= g["p"]
    c.analysis.multilingual = ()
    assert "spearman_difference" not in difficulty(col, c)["estimates"]   # no role given: no contrast


def test_a_crossover_is_inside_only_where_both_arms_were_measured():
    # stilts measured at 100-800 examples, direct (32 languages) at 3200-25600: the curves cross at
    # e^10 = 22026, inside direct's range but where stilts has no data: an extrapolation
    cells, examples = {}, {}
    for seed in (0, 1):
        for n in (100, 200, 400, 800):
            for arm, f, x in (("stilts", lambda x: 10 + 5 * np.log(x), n), ("direct", lambda x: 40 + 2 * np.log(x), 32 * n)):
                key = ((("arm", arm), ("target_examples", str(n))), seed)
                cells[key] = {"en": 90, "de": f(x) + 0.01 * seed}
                examples[key] = x
    c = spec.study("direct", "q", "full")
    c.analysis.size, c.analysis.arm, c.analysis.arms, c.analysis.full_size = "target_examples", "arm", ("stilts", "direct"), 1600
    out = direct(world(cells, ["arm", "target_examples"], examples=examples), c)
    cross = out["estimates"]["crossover_examples"]
    assert cross["value"] == pytest.approx(math.exp(10), rel=1e-3)
    assert cross["within_measured_range"] is False and cross["measured_by_both_arms"] == [3200.0, 800.0]
    assert any("outside the range both arms measured" in line for line in out["lines"])
    assert out["estimates"]["stilts"]["vs_examples"]["powerlaw_error_floor"]["floor"]["value"] is not None


def test_languages_reports_each_budget_arm_and_no_knee_on_a_line():
    from xtreme_jax.study.analyses.languages import languages_added
    cells, rng = {}, np.random.default_rng(0)
    for seed in (0, 1, 2):
        for budget, slope in (("english_fixed", 1.0), ("total_fixed", 0.0)):
            for o in ("o0", "o1"):
                for k in range(5):   # a straight rise (or none): no knee either way
                    noise = rng.normal(0, 0.3)
                    labels = (("budget", budget), ("k", str(k)), ("order", o))
                    cells[(labels, seed)] = {"en": 80, "xa": 50 + slope * k + noise, "xe": 40 + slope * k + noise}
    c = spec.study("languages", "q", "tiny")
    c.prefix.order, c.prefix.count, c.unseen = "order", "k", "xe"
    c.analysis.budget = "budget"
    out = languages_added(world(cells, ["budget", "k", "order"]), c)
    head, by = out["headline"], out["estimates"]["by_budget"]
    assert set(by) == {"english_fixed", "total_fixed"}
    assert head["rise"]["value"] == pytest.approx(4.0, abs=0.5) and head["rise (total_fixed)"]["value"] == pytest.approx(0, abs=0.5)
    assert head["knee"]["value"] is None and head["knee_verdict"].startswith("no knee")
    assert any(l == "### Budget `total_fixed`" for l in out["lines"])
    assert set(out["plots"]) == {"english_fixed_score_vs_languages.png", "total_fixed_score_vs_languages.png"}
