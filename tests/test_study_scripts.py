"""Scores split by writing script: the language -> ISO 15924 table every task's languages need, and
the difficulty and languages analyses' per-script tables on fake worlds (no runs)."""
import pytest
from test_study_analyses import world

from xtreme_jax.data import demo_world
from xtreme_jax.study import spec
from xtreme_jax.study.analyses.common import script_groups
from xtreme_jax.study.analyses.difficulty import difficulty
from xtreme_jax.study.analyses.languages import languages_added
from xtreme_jax.tasks import REGISTRY
from xtreme_jax.tasks.languages import BENCHMARKS, SCRIPT, script_of


def test_every_language_of_every_task_has_a_script():
    langs = {l for t in REGISTRY.values() for l in (*t.languages, *t.translate_languages)}
    langs |= {l for table in BENCHMARKS.values() for ls in table.values() for l in ls} | set(demo_world.LANGS)
    assert sorted(l for l in langs if l not in SCRIPT) == []
    assert all(len(s) == 4 and s[0].isupper() and s[1:].islower() for s in SCRIPT.values())   # ISO 15924 form


def test_spot_values_and_the_demo_alphabets():
    assert [script_of(l) for l in ("en", "ru", "kk", "az", "pa", "zh", "ja", "ko", "ka", "my", "he", "ur")] == \
        ["Latn", "Cyrl", "Cyrl", "Latn", "Guru", "Hans", "Jpan", "Kore", "Geor", "Mymr", "Hebr", "Arab"]
    # read from the letters the demo world spells with: xf Greek, xh Cyrillic, the rest Latin (xg's háček too)
    assert {l: script_of(l) for l in demo_world.LANGS} == {
        "en": "Latn", "xa": "Latn", "xb": "Latn", "xc": "Latn", "xd": "Latn", "xe": "Latn", "xf": "Grek",
        "xg": "Latn", "xh": "Cyrl"}
    assert script_of("tlh") is None


def test_groups_are_latin_non_latin_and_scripts_of_two_or_more():
    groups, note = script_groups(["en", "de", "fr", "ru", "bg", "ar", "zz"])
    assert groups == {"Latin": ["de", "fr"], "non-Latin": ["ar", "bg", "ru"], "Cyrl": ["bg", "ru"]}
    assert note == "No script known for zz (add it to tasks/languages.py SCRIPT): left out."
    groups, _ = script_groups(["de", "ru", "uk"])      # the only non-Latin script is the whole group: once
    assert groups == {"Latin": ["de"], "non-Latin": ["ru", "uk"]}
    assert script_groups(["en", "de", "fr"]) == ({}, "All zero-shot languages (de, fr) are written in Latn: "
                                                     "no split by script.")


TASKS = ("mnli", "qqp", "sst2", "hellaswag")
OFFSET = (0.5, -0.5, 0.0)   # per seed: the Latin gain is 10 + it, the non-Latin gain 0 + it


def script_world(langs=("de", "fr", "es", "ru", "bg", "ar")):
    """Latin languages gain +10, the others 0 (both plus a seed offset); within Latin the gain rises
    with the task's difficulty (later tasks harder) by 1 a task, within non-Latin it falls by 0.5."""
    cells, curves, inter = {}, {}, {}
    for e in ("english-only", "multilingual"):
        for seed in (0, 1, 2):
            for j, t in enumerate(TASKS + ("none",)):
                labels = (("encoder", e), ("intermediate", t))
                scores = {"en": 80.0}
                for l in langs:
                    latin = script_of(l) == "Latn"
                    gain = 0.0 if t == "none" else (10 + (j - 1.5) if latin else -(j - 1.5) / 2) + OFFSET[seed]
                    scores[l] = 50 + gain
                cells[(labels, seed)] = scores
                inter[labels] = [t] if t != "none" else []
                if t != "none":
                    top = (0.95, 0.85, 0.75, 0.5)[j]
                    curves[(labels, seed)] = {"intermediate": [(100, top - 0.2), (200, top)]}
    c = spec.study("difficulty", "q", "full")
    c.analysis.encoder, c.analysis.task, c.analysis.baseline = "encoder", "intermediate", "none"
    c.analysis.english_only, c.analysis.multilingual = ("english-only",), ("multilingual",)
    return world(cells, ["encoder", "intermediate"], curves, intermediate=inter), c


def test_difficulty_splits_the_gain_by_script():
    col, c = script_world()
    out = difficulty(col, c)
    split = out["estimates"]["by_script"]
    assert split["groups"] == {"Latin": ["de", "es", "fr"], "non-Latin": ["ar", "bg", "ru"], "Cyrl": ["bg", "ru"]}
    assert split["no_split"] is None
    half = 4.302653 * 0.5 / 3 ** 0.5      # t(2) x s / sqrt(3) of the offsets (0.5, -0.5, 0)
    for enc, per in split["encoders"].items():
        lat, non, cyr = per["Latin"]["gain"], per["non-Latin"]["gain"], per["Cyrl"]["gain"]
        assert lat["value"] == pytest.approx(10) and lat["ci95"] == pytest.approx([10 - half, 10 + half], abs=1e-5)
        assert non["value"] == pytest.approx(0, abs=1e-9) and non["ci95"] == pytest.approx([-half, half], abs=1e-5)
        assert lat["ci95"][0] > 0 and non["ci95"][0] < 0 < non["ci95"][1] and cyr["ci95"][0] < 0 < cyr["ci95"][1]
        assert lat["n"] == 3 and lat["unit"] == "seed" and lat["p_holm"] < 0.05 < non["p_holm"]
        assert per["Latin"]["spearman_difficulty_gain"]["value"] == pytest.approx(1.0)
        assert per["non-Latin"]["spearman_difficulty_gain"]["value"] == pytest.approx(-1.0)
        assert per["latin_minus_non_latin"]["value"] == pytest.approx(10)   # paired by seed: the offsets cancel
        assert per["Latin"]["gain_by_task"]["hellaswag"]["value"] == pytest.approx(11.5)
    # the existing keys are what they were: the gain over every zero-shot language
    assert out["estimates"]["multilingual"]["gain"]["mnli"]["value"] == pytest.approx((8.5 + 0.75) / 2)
    text = "\n".join(out["lines"])
    assert "### Zero-shot gain by writing script" in text
    assert "| multilingual | Latin | 3 | 10.00 [" in text and "| multilingual | Latin − non-Latin | | 10.00 [" in text
    assert "What this does not show" in text and "confounded with language family" in text


def test_one_script_gives_no_split_and_says_so():
    col, c = script_world(langs=("de", "fr"))
    out = difficulty(col, c)
    split = out["estimates"]["by_script"]
    assert split["groups"] == {} and "encoders" not in split
    assert split["no_split"] == "All zero-shot languages (de, fr) are written in Latn: no split by script."
    assert split["no_split"] in out["lines"]


def test_languages_reports_the_score_by_script():
    cells = {}
    for seed in (0, 1, 2):
        for o in ("o0", "o1"):
            for k in range(3):   # Latin demo languages rise 2 per added language, Greek / Cyrillic ones not
                labels = (("k", str(k)), ("order", o))
                cells[(labels, seed)] = {"en": 80, "xa": 50 + 2 * k + OFFSET[seed], "xb": 52 + 2 * k + OFFSET[seed],
                                         "xf": 40 + OFFSET[seed], "xh": 42 - OFFSET[seed]}
    c = spec.study("languages", "q", "tiny")
    c.prefix.order, c.prefix.count, c.unseen = "order", "k", "xh"
    out = languages_added(world(cells, ["k", "order"]), c)
    split = out["estimates"]["by_script"]
    assert split["groups"] == {"Latin": ["xa", "xb"], "non-Latin": ["xf", "xh"]}
    lat, non = split["estimates"]["Latin"]["rise"], split["estimates"]["non-Latin"]["rise"]
    assert lat["value"] == pytest.approx(4) and lat["ci95"][0] > 0 and lat["n"] == 6
    assert non["value"] == pytest.approx(0) and non["ci95"] == [0.0, 0.0]   # xf and xh's offsets cancel
    assert split["estimates"]["Latin"]["by_k"]["0"]["value"] == pytest.approx(51)
    assert any(l.startswith("| Latin | 2 | 51.0 [") for l in out["lines"])


def test_target_size_reports_the_gain_by_script_at_each_size():
    from xtreme_jax.study.analyses.target_size import target_size
    cells = {}
    for seed in (0, 1, 2):
        for n in ("100", "400", "1600"):
            for arm in ("entail", "none"):
                gain = dict(de=10.0, fr=10.0, ru=0.0, bg=0.0) if arm == "entail" else dict(de=0, fr=0, ru=0, bg=0)
                off = OFFSET[seed] if arm == "entail" else 0
                cells[((("intermediate", arm), ("target_examples", n)), seed)] = {
                    "en": 90, **{l: 50 + g + off for l, g in gain.items()}}
    c = spec.study("target_size", "q", "full")
    a = c.analysis
    a.size, a.arm, a.baseline, a.full_size = "target_examples", "intermediate", "none", 6400
    out = target_size(world(cells, ["intermediate", "target_examples"]), c)
    split = out["estimates"]["entail"]["by_script"]
    assert split["groups"] == {"Latin": ["de", "fr"], "non-Latin": ["bg", "ru"]}
    for n in ("100", "400", "1600"):
        lat, non = split["gain_by_size"]["Latin"][n], split["gain_by_size"]["non-Latin"][n]
        assert lat["value"] == pytest.approx(10) and lat["ci95"][0] > 0
        assert non["value"] == pytest.approx(0, abs=1e-9) and non["ci95"][0] < 0 < non["ci95"][1]
    assert out["estimates"]["entail"]["per_size"]["100"]["gain"]["value"] == pytest.approx(5)  # every language
    assert any(l.startswith("| Latin | 2 | 10.0 [") for l in out["lines"])
