"""Tasks that vary difficulty within one format (ANLI rounds, SWAG beside HellaSwag, MNLI split by a
hypothesis-only classifier) and TyDiQA-GoldP training in every language. Fixture files in each
release's layout are written into tmp_path (no network)."""
import csv
import importlib.util
import itertools
import json
import os

import numpy as np
import pytest

from test_data_support import QA, squad_json, write, write_jsonl, write_lines
from xtreme_jax.data.errors import DataError
from xtreme_jax.data.sources import Source
from xtreme_jax.study import expand
from xtreme_jax.tasks import artifacts, get_task

NLI = ("entailment", "neutral", "contradiction")
SYLLABLES = [a + b for a, b in itertools.product("bcdfghjklmnpqrstvwz", "aeiou")]
MNLI_HEADER = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
               "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label")


# --- ANLI rounds ----------------------------------------------------------------------------
def write_anli(d):
    for r in (1, 2, 3):
        write_jsonl(d / f"R{r}" / "train.jsonl", [dict(uid=f"r{r}-{i}", context=f"Premise {r} {i} .",
                                                      hypothesis=f"Hypothesis {i} .", label="enc"[i % 3])
                                                 for i in range(r + 1)])      # R1: 2 rows, R2: 3, R3: 4
        write_jsonl(d / f"R{r}" / "dev.jsonl", [dict(uid=f"r{r}-d", context="A .", hypothesis="B .", label="n")])


def test_anli_rounds_read_their_round_only(tmp_path):
    write_anli(tmp_path)
    src = Source("official", str(tmp_path))
    ids = {r: [e["id"] for e in get_task(f"anli_r{r}").load_examples("train", "en", src)] for r in (1, 2, 3)}
    assert ids == {r: [f"r{r}-{i}" for i in range(r + 1)] for r in (1, 2, 3)}
    # the three rounds are exactly what `anli` reads, in its order
    assert [e["id"] for e in get_task("anli").load_examples("train", "en", src)] == ids[1] + ids[2] + ids[3]
    assert get_task("anli_r2").load_examples("dev", "en", src)[0]["label"] == "neutral"
    for r in (1, 2, 3):
        t = get_task(f"anli_r{r}")
        assert t.labels == get_task("mnli").labels == get_task("xnli").labels   # one 3-way NLI head
        assert [(h.repo, h.split) for h in t.hub("test", "en")] == [("facebook/anli", f"test_r{r}")]


# --- SWAG -----------------------------------------------------------------------------------
SWAG_COLS = ["", "video-id", "fold-ind", "startphrase", "sent1", "sent2", "gold-source",
             "ending0", "ending1", "ending2", "ending3", "label"]


def write_swag(d):
    """rowanz/swagaf data/{train,val,test}.csv: a leading unnamed index column; test has no label."""
    rows = [["0", "anetv_1", "5", "Members of the crowd cheer. A man", "Members of the crowd cheer.", "A man",
             "gold", "runs away.", "waves to the crowd.", "eats soup.", "sleeps.", "1"],
            ["1", "lsmdc_2", "7", "She opens the door. She", "She opens the door.", "She",
             "gen", "walks in.", "flies.", "is a door.", "sings loudly.", "0"]]
    for split, cols, rr in (("train", SWAG_COLS, rows), ("val", SWAG_COLS, rows[:1]),
                            ("test", SWAG_COLS[:-1], [r[:-1] for r in rows])):
        path = d / "data" / f"{split}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([cols] + rr)
    # hub schema (allenai/swag, regular): the same columns, label a ClassLabel int, -1 on test
    write_jsonl(d / "hub" / "train.jsonl", [dict(zip(SWAG_COLS[1:], r[1:-1]), label=int(r[-1])) for r in rows])
    write_jsonl(d / "hub" / "test.jsonl", [dict(zip(SWAG_COLS[1:], r[1:-1]), label=-1) for r in rows])


def test_swag_formats_as_run_swag(tmp_path):
    write_swag(tmp_path)
    task = get_task("swag")
    off = task.load_examples("train", "en", Source("official", str(tmp_path)))
    assert off[0]["context"] == "Members of the crowd cheer."
    assert off[0]["choices"] == ["A man runs away.", "A man waves to the crowd.", "A man eats soup.", "A man sleeps."]
    assert [e["label"] for e in off] == [1, 0] and task.num_choices == 4
    hub = task.load_examples("train", "en", Source("local", str(tmp_path / "hub")))
    assert [(e["context"], e["choices"], e["label"]) for e in hub] == [(e["context"], e["choices"], e["label"])
                                                                      for e in off]
    assert [e["label"] for e in task.load_examples("test", "en", Source("official", str(tmp_path)))] == [None, None]
    assert [e["label"] for e in task.load_examples("test", "en", Source("local", str(tmp_path / "hub")))] == [None] * 2
    assert len(task.load_examples("dev", "en", Source("official", str(tmp_path / "data")))) == 1   # val.csv
    assert task.kind == get_task("hellaswag").kind == "multiple_choice"
    assert [(h.repo, h.config, h.split) for h in task.hub("dev", "en")] == [("allenai/swag", "regular", "validation")]


# --- MNLI easy / hard -----------------------------------------------------------------------
def artifact_rows(n_artifact, n_rest, start=0):
    """Hypotheses of the first n_artifact rows carry an artifact that gives the label away
    ("nobody" -> contradiction, "maybe" -> neutral); the other n_rest rows are entailment with
    words that occur in no other row. Cross-fitted, those words were never seen with any label,
    so the prior (entailment is the rarest class) makes them wrong: hard. In-sample they would
    give their own label away and land in easy."""
    rows, k = [], start
    for i in range(n_artifact):
        label = ("contradiction", "neutral")[i % 2]
        rows.append((f"{'nobody' if label == 'contradiction' else 'maybe'} {SYLLABLES[k]} .", label))
        k += 1
    for i in range(n_rest):
        rows.append((f"{SYLLABLES[k]} {SYLLABLES[k + 1]} .", "entailment"))
        k += 2
    return rows


def write_mnli(d):
    """GLUE MNLI layout: train.tsv (24 artifact + 8 rest rows) and dev_matched.tsv (6 + 4)."""
    for name, rows, tag in (("train.tsv", artifact_rows(24, 8), "t"), ("dev_matched.tsv", artifact_rows(6, 4, 60), "d")):
        write_lines(d / name, [MNLI_HEADER] + [f"{i}\tp\t{tag}{i}\tfiction\t-\t-\t-\t-\tA man sits .\t{h}\t{y}\t{y}"
                                               for i, (h, y) in enumerate(rows)])
    write_jsonl(d / "hub" / "train.jsonl", [dict(premise="A man sits .", hypothesis=h, label=NLI.index(y), idx=i)
                                            for i, (h, y) in enumerate(artifact_rows(24, 8))])


def _ids(task, split, src):
    return [e["id"] for e in get_task(task).load_examples(split, "en", src)]


def test_mnli_easy_hard_split_by_the_hypothesis_artifact(tmp_path):
    write_mnli(tmp_path)
    src = Source("official", str(tmp_path))
    every = {s: _ids("mnli", s, src) for s in ("train", "dev")}
    for split, n_art in (("train", 24), ("dev", 6)):
        easy, hard = _ids("mnli_easy", split, src), _ids("mnli_hard", split, src)
        assert easy == every[split][:n_art] and hard == every[split][n_art:], split
        assert not set(easy) & set(hard) and sorted(easy + hard) == sorted(every[split])
    # identical across calls, also when fitted afresh (not only because of the per-process memo)
    first = _ids("mnli_hard", "train", src)
    artifacts._FITTED.clear()
    assert _ids("mnli_hard", "train", src) == first
    # the hub schema goes through the same selection
    hub = Source("local", str(tmp_path / "hub"))
    assert _ids("mnli_easy", "train", hub) == [str(i) for i in range(24)]
    with pytest.raises(DataError, match="no split 'test'"):
        get_task("mnli_easy").load_examples("test", "en", src)


def test_cross_fitting_is_what_makes_the_rest_hard():
    rows = [dict(id=f"t{i}", text_b=h, label=y) for i, (h, y) in enumerate(artifact_rows(24, 8))]
    s = artifacts._Split(rows, NLI)
    assert s.train_correct.tolist() == [True] * 24 + [False] * 8
    # judged in-sample by the model that saw them, the rest would be "easy": the folds matter
    assert s.correct(rows).all()
    assert artifacts.features("Nobody sleeps.") == ["nobody", "sleeps", ".", "nobody sleeps", "sleeps ."]


# --- TyDiQA-GoldP: gold training in every language ------------------------------------------
def test_tydiqa_train_in_each_language(tmp_path):
    """The release's combined train file (ids "{language name}-{n}"), as XTREME's download keeps it,
    and the per-language files that its utils_preprocess.py writes."""
    qs = [("arabic-1", *QA[0][1:]), ("english-2", *QA[1][1:]), ("arabic-3", *QA[2][1:])]
    write(tmp_path / "one" / "tydiqa-goldp-v1.1-train" / "tydiqa-goldp-v1.1-train.json", json.dumps(squad_json(qs)))
    task = get_task("tydiqa")
    one = Source("official", str(tmp_path / "one"))
    assert [e["id"] for e in task.load_examples("train", "ar", one)] == ["arabic-1", "arabic-3"]
    assert [e["id"] for e in task.load_examples("train", "en", one)] == ["english-2"]
    with pytest.raises(DataError, match="no 'train' examples for language 'ko'"):
        task.load_examples("train", "ko", one)
    write(tmp_path / "xt" / "tydiqa-goldp-v1.1-train" / "tydiqa.ar.train.json", json.dumps(squad_json(QA[:2])))
    write(tmp_path / "xt" / "tydiqa-goldp-v1.1-dev" / "tydiqa.ar.dev.json", json.dumps(squad_json(QA[2:])))
    xt = Source("official", str(tmp_path / "xt"))
    assert len(task.load_examples("train", "ar", xt)) == 2 and len(task.load_examples("test", "ar", xt)) == 1
    # the hub's tydiqa config holds every language in one split: rows kept by id prefix
    keep = task.hub("train", "sw")[0].keep
    assert keep({"id": "swahili-7"}) and not keep({"id": "english-7"})


def study_config(name, arg):
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "studies", f"{name}.py")
    s = importlib.util.spec_from_file_location(f"study_{name}", path)
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    return m, m.get_config(arg)


def test_direct_study_trains_tydiqa_on_gold_in_language_data():
    direct, c = study_config("direct", "scale=full,target=tydiqa")
    langs = direct.GOLD["tydiqa"].split()
    assert sorted(langs) == sorted(set(get_task("tydiqa").languages) - {"en"})
    c.seeds = (0,)
    points, _ = expand.expand(c)
    for arm in ("direct", "stilts_all"):
        p = next(q for q in points if q.labels["arm"] == arm and q.labels["target_examples"] == "1000").config
        got = [(t["name"], t["lang"], t["split"]) for t in p["target"]["tasks"]]
        assert got == [("tydiqa", "en", "train")] + [("tydiqa", l, "train") for l in langs], arm


def test_mnli_subsets_are_mnli_for_the_contamination_check():
    # an MNLI subset as the intermediate task of XNLI (trained on MNLI) is the target data seen twice
    from xtreme_jax.study import spec
    from xtreme_jax.study.validate import validate_points
    c = spec.study("difficulty", "q", "full")
    c.recipe, c.fixed, c.seeds = "configs/stilts.py", "target=xnli,model=large", (0,)
    c.factors.intermediate = ("mnli_hard", "anli_r2", "swag")
    msgs = validate_points(expand.expand(c)[0], c)[1]
    assert len(msgs) == 1 and "(mnli_hard) contains mnli, the training data of the target xnli" in msgs[0]


def test_difficulty_study_adds_the_within_format_contrasts():
    _, c = study_config("difficulty", "scale=full")
    inter = c.factors.intermediate
    for group in c.analysis.within_format.values():
        assert all(t in inter for t in group) and all(get_task(t).kind == get_task(group[0]).kind for t in group)
    assert len(c.analysis.across_format) == 9 and set(c.analysis.across_format) < set(inter) and inter[-1] == "none"
    assert "within_format" not in study_config("difficulty", "scale=tiny")[1].analysis


def test_hypothesis_only_accuracy_is_artifacts_plus_chance():
    """3000 rows: 30% carry their label's artifact word, the rest are random words with random
    labels. The cross-fitted classifier gets every artifact row and about a third of the rest
    (chance): 0.3 + 0.7 / 3 = 53%, the synthetic twin of MNLI's 53% (Gururangan et al.)."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    cue = {"entailment": "someone", "neutral": "maybe", "contradiction": "nobody"}
    rows = []
    for i in range(3000):
        y = NLI[rng.integers(3)]
        h = list(rng.choice(words, rng.integers(4, 10)))
        if i % 10 < 3:
            h.insert(0, cue[y])
        rows.append(dict(id=f"s{i}", text_b=" ".join(h), label=y))
    ok = artifacts._Split(rows, NLI).train_correct
    art = np.arange(3000) % 10 < 3
    assert ok[art].all()
    assert 0.28 < ok[~art].mean() < 0.39, ok[~art].mean()
