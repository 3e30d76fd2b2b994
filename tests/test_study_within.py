"""The difficulty analysis at full scale: the across-format correlation over its own tasks only, and
difficulty varied within a task format (gain contrasts, manipulation check, English-only minus
multilingual), on a fake world with a target factor averaged over. No runs: rows written directly."""
import importlib.util
import json
import os

import numpy as np
import pytest
import scipy.stats

from xtreme_jax.study import analyses, spec
from xtreme_jax.study.analyses.difficulty import difficulty, difficulty_of
from test_study_analyses import world

ACROSS = ("mnli", "qqp", "sst2", "hellaswag")          # harder along the tuple (curves below)
WITHIN = {"anli_rounds": ("anli_r1", "anli_r2", "anli_r3"), "swag_hellaswag": ("swag", "hellaswag"),
          "mnli_artifacts": ("mnli_easy", "mnli_hard")}
ENC = ("english-only", "multilingual")
SEEDS = (0, 1, 2, 3)
# final dev accuracy of each task's curve; swag is harder than hellaswag for the multilingual encoder
TOP = {"mnli": 0.9, "qqp": 0.85, "sst2": 0.8, "hellaswag": 0.6, "anli_r1": 0.7, "anli_r2": 0.6, "anli_r3": 0.5,
       "swag": 0.85, "mnli_easy": 0.95, "mnli_hard": 0.75}


def gain_of(enc, task):
    """Across tasks: English-only gains fall with difficulty (8, 6, 4, 2), multilingual rise (2 .. 8).
    Within a group the English-only encoder gains 3 points less a step harder, the multilingual 0
    (hellaswag's gain is its across one: swag sits 3 above it, or level)."""
    english = enc == "english-only"
    if task in ACROSS:
        j = ACROSS.index(task)
        return 8 - 2 * j if english else 2 + 2 * j
    if task == "swag":
        return gain_of(enc, "hellaswag") + (3 if english else 0)
    step = next(m for m in WITHIN.values() if task in m).index(task)
    return 5.0 - 3 * step if english else 3.0


def within_world(noise=0.1):
    rng = np.random.default_rng(0)
    tasks = sorted(set(ACROSS) | {t for m in WITHIN.values() for t in m}) + ["none"]
    cells, curves, inter = {}, {}, {}
    for e in ENC:
        for seed in SEEDS:
            for t in tasks:
                for target, offset in (("pawsx", 0.0), ("udpos", 4.0)):
                    labels = (("encoder", e), ("intermediate", t), ("target", target))
                    g = 0.0 if t == "none" else gain_of(e, t)
                    v = 50 + offset + g + rng.normal(0, noise)
                    cells[(labels, seed)] = {"en": 80, "de": v, "fr": v}
                    inter[labels] = [t] if t != "none" else []
                    if t != "none":
                        top = 0.4 if (t, e) == ("swag", "multilingual") else TOP[t]
                        top += 0.01 * seed
                        curves[(labels, seed)] = {"intermediate": [(100, top - 0.2), (200, top)]}
    col = world(cells, ["encoder", "intermediate", "target"], curves, intermediate=inter)
    for r in col.rows:
        r["task"] = r["target"]      # each point's target task, as collect writes it
    c = spec.study("difficulty", "q", "full")
    a = c.analysis
    a.encoder, a.task, a.baseline, a.average_over = "encoder", "intermediate", "none", ("target",)
    a.english_only, a.multilingual = ("english-only",), ("multilingual",)
    a.across_format, a.within_format = ACROSS, WITHIN
    return col, c


def excludes_zero(e):
    lo, hi = e["ci95"]
    return lo > 0 or hi < 0


def test_within_format_contrasts_are_paired_by_seed_and_holm_adjusted():
    col, c = within_world()
    out = analyses.run(col, c)
    w = out["estimates"]["within_format"]
    expect = {"english-only": {"anli_r2": -3, "anli_r3": -6, "hellaswag": -3, "mnli_hard": -3},
              "multilingual": {"anli_r2": 0, "anli_r3": 0, "hellaswag": 0, "mnli_hard": 0}}
    n = 0
    for e, per in expect.items():
        for g, members in WITHIN.items():
            rec = w["encoders"][e][g]
            for t in members[1:]:
                d = rec["gain_minus_reference"][t]
                n += 1
                assert d["value"] == pytest.approx(per[t], abs=0.15) and d["n"] == len(SEEDS)
                assert excludes_zero(d) is (per[t] != 0), (e, t, d)
                assert d["family"] == "within-format gain contrasts, 2 encoders x 4 harder members (8 tests, Holm)"
                assert d["p_holm"] >= d["p"]
    assert n == 8
    assert w["groups"]["anli_rounds"] == {"members": list(WITHIN["anli_rounds"]), "reference": "anli_r1", "missing": []}
    # English-only minus multilingual: the English-only encoder's contrasts, paired by seed
    diff = w["english_only_minus_multilingual"]
    for g, members in WITHIN.items():
        for t in members[1:]:
            d = diff[g][t]
            assert d["value"] == pytest.approx(expect["english-only"][t], abs=0.15) and excludes_zero(d)
            assert d["p_holm"] < 0.05 and "(4 tests, Holm)" in d["family"]
    # the contrast is the paired mean over seeds of the target-averaged gains: recomputed by hand
    S = {}
    for r in col.rows:
        if r["language"] != "en" and r["encoder"] == "english-only" and r["intermediate"] in ("anli_r1", "anli_r3"):
            S.setdefault((r["intermediate"], r["seed"]), []).append(r["value"])
    by_seed = [np.mean(S[("anli_r3", s)]) - np.mean(S[("anli_r1", s)]) for s in SEEDS]
    d = w["encoders"]["english-only"]["anli_rounds"]["gain_minus_reference"]["anli_r3"]
    assert d["value"] == pytest.approx(np.mean(by_seed))
    h = scipy.stats.t.ppf(0.975, len(SEEDS) - 1) * np.std(by_seed, ddof=1) / np.sqrt(len(SEEDS))
    assert d["ci95"] == pytest.approx([np.mean(by_seed) - h, np.mean(by_seed) + h])
    table = [l for l in out["lines"] if l.startswith("| english-only | anli_rounds | anli_r3 |")]
    assert len(table) == 1 and table[0].endswith(" * |")
    assert any(l.startswith("What this does not show: an effect of difficulty alone.") for l in out["lines"])


def test_the_manipulation_check_reads_the_measured_difficulty_order():
    col, c = within_world()
    w = analyses.run(col, c)["estimates"]["within_format"]["encoders"]
    for e in ENC:
        assert w[e]["anli_rounds"]["order_holds"]["share"] == 1.0
        assert w[e]["mnli_artifacts"]["order_holds"]["share"] == 1.0
        assert w[e]["anli_rounds"]["order_holds"]["n"] == len(SEEDS)
    assert w["english-only"]["swag_hellaswag"]["order_holds"]["share"] == 1.0
    assert w["multilingual"]["swag_hellaswag"]["order_holds"]["share"] == 0.0   # swag measured harder
    d = w["english-only"]["anli_rounds"]["difficulty"]["anli_r2"]
    expect = np.mean([difficulty_of([(100, TOP["anli_r2"] + 0.01 * s - 0.2), (200, TOP["anli_r2"] + 0.01 * s)], 1 / 3)
                      for s in SEEDS])
    assert d["value"] == pytest.approx(expect) and d["ci95"][0] < d["value"] < d["ci95"][1]
    up = w["multilingual"]["swag_hellaswag"]["difficulty_minus_reference"]["hellaswag"]
    assert up["value"] < 0 and excludes_zero(up)       # hellaswag measured easier than swag


def test_the_headline_correlation_uses_only_the_across_format_tasks():
    col, c = within_world()
    out = analyses.run(col, c)
    est = out["estimates"]
    assert est["english-only"]["spearman_difficulty_gain"]["value"] == pytest.approx(-1.0)
    assert est["multilingual"]["spearman_difficulty_gain"]["value"] == pytest.approx(1.0)
    assert est["spearman_difference"]["value"] == pytest.approx(-2.0)
    assert est["english-only"]["spearman_difficulty_gain"]["items"] == 4
    assert est["across_format"]["tasks"] == sorted(ACROSS) and "mnli_easy" in est["across_format"]["left_out"]
    assert set(est["english-only"]["gain"]) == set(ACROSS) | {t for m in WITHIN.values() for t in m}  # table: all
    # over every task (the within ones included) the correlations would be others
    del c.analysis.across_format
    every = analyses.run(col, c)["estimates"]
    assert every["english-only"]["spearman_difficulty_gain"]["items"] == 10
    assert every["english-only"]["spearman_difficulty_gain"]["value"] != pytest.approx(-1.0, abs=0.05)
    assert every["spearman_difference"]["value"] != pytest.approx(-2.0, abs=0.05)
    assert "across_format" not in every


def test_the_pooled_within_group_slope_takes_each_groups_means_out():
    col, c = within_world()
    est = analyses.run(col, c)["estimates"]
    slopes = est["within_format"]["pooled_slope"]
    for e in ENC:       # least squares on the seed means, centred within each group, by numpy
        x = np.concatenate([np.array([est[e]["difficulty"][t]["value"] for t in m]) for m in WITHIN.values()])
        y = np.concatenate([np.array([est[e]["gain"][t]["value"] for t in m]) for m in WITHIN.values()])
        at = np.cumsum([0] + [len(m) for m in WITHIN.values()])
        for i in range(len(WITHIN)):
            x[at[i]:at[i + 1]] -= x[at[i]:at[i + 1]].mean()
            y[at[i]:at[i + 1]] -= y[at[i]:at[i + 1]].mean()
        assert slopes[e]["value"] == pytest.approx(float(x @ y / (x @ x)))
    # English-only: -3 points a step whose measured difficulty rises 0.15-0.33; multilingual: flat
    assert slopes["english-only"]["ci95"][1] < -10 and excludes_zero(slopes["english-only"])
    assert not excludes_zero(slopes["multilingual"])
    d = slopes["english_only_minus_multilingual"]
    assert d["value"] == pytest.approx(slopes["english-only"]["value"] - slopes["multilingual"]["value"])
    assert excludes_zero(d) and d["n"] == len(SEEDS) and d["method"] == "jackknife t"


def tiny_config():
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "studies", "difficulty.py")
    s = importlib.util.spec_from_file_location("study_difficulty_tiny", path)
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    return m.get_config("scale=tiny")


def test_the_tiny_scale_output_is_the_one_without_the_new_settings():
    c = tiny_config()
    assert c.analysis.get("across_format") is None and c.analysis.get("within_format") is None
    tasks = ("entail", "para", "sst", "pos")
    cells, curves = {}, {}
    for e in ("english-only", "multilingual"):
        for seed in (0, 1, 2):
            for j, t in enumerate(tasks + ("none",)):
                labels = (("encoder", e), ("intermediate", t))
                g = 0 if t == "none" else (3 - j if e == "english-only" else j) + 0.2 * seed
                cells[(labels, seed)] = {"en": 80, "de": 60 + g, "ru": 55 + g}
                if t != "none":
                    top = (0.95, 0.85, 0.75, 0.5)[j] + 0.01 * seed
                    curves[(labels, seed)] = {"intermediate": [(100, top - 0.2), (200, top)]}
    col = world(cells, ["encoder", "intermediate"], curves)
    out = analyses.run(col, c)
    est = out["estimates"]
    assert set(est) == {"english-only", "multilingual", "spearman_difference", "by_script"}
    assert set(out["headline"]) == {"english-only", "multilingual", "english_only_minus_multilingual"}
    assert not any("within a task format" in l or "across-format" in l for l in out["lines"])
    # the correlation is over all four tasks: scipy on the seed means
    for e in ("english-only", "multilingual"):
        diff = [est[e]["difficulty"][t]["value"] for t in tasks]
        gain = [est[e]["gain"][t]["value"] for t in tasks]
        r = est[e]["spearman_difficulty_gain"]
        assert r["items"] == 4 and r["value"] == pytest.approx(scipy.stats.spearmanr(diff, gain).statistic)
    assert est["spearman_difference"]["value"] == pytest.approx(-2.0)
    # naming every task as across-format changes nothing but the new record and its line
    c.analysis.across_format = tasks
    named = analyses.run(col, c)
    assert named["estimates"].pop("across_format")["left_out"] == []
    assert json.dumps(named["estimates"], sort_keys=True) == json.dumps(est, sort_keys=True)
    lines = named["lines"]
    i = next(i for i, l in enumerate(lines) if "across-format tasks (entail, para, sst, pos)" in l)
    assert lines[i - 1] == "" and lines[:i - 1] + lines[i + 1:] == out["lines"]
    assert difficulty(col, c)["headline"].keys() == out["headline"].keys()
