"""Scoring tests. Every expected number is worked out by hand in the comment beside it."""

import json
import os
import re
import subprocess
import sys

import pytest

from xtreme_jax import score as score_cli
from xtreme_jax.scoring import (ScoringError, aggregate, average_precision_at_k, mlqa_normalize,
                                score_task, squad_normalize, write_submission)
from xtreme_jax.tasks.languages import XTREME, XTREME_R

approx = pytest.approx


def squad(qas):
    """SQuAD v1.1 gold from [(id, [answers])]."""
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [
        {"id": i, "question": "?", "answers": [{"text": a, "answer_start": 0} for a in answers]}
        for i, answers in qas]}]}]}


# --------------------------------------------------------------------------- metrics

def test_accuracy():
    gold = ["entailment", "neutral", "contradiction", "neutral"]
    pred = ["entailment", "contradiction", "contradiction", "neutral"]
    # 3 of 4 right -> 75.
    assert score_task("xnli", pred, gold, "de") == {"accuracy": 75.0}


def test_seqeval_bio_with_partial_entity():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG", "B-LOC"]]
    # gold entities: PER[0:2], LOC[3], ORG[0:3] = 3. predicted: PER[0:1] (partial, so wrong),
    # LOC[3], ORG[0:3], LOC[s2,3] (spurious) = 4. Correct = 2.
    # P = 2/4 = 50, R = 2/3 = 66.67, F1 = 2*(1/2)*(2/3) / (1/2 + 2/3) = (2/3)/(7/6) = 4/7 = 57.14.
    out = score_task("panx", pred, gold, "en")
    assert out == approx({"f1": 400 / 7, "precision": 50.0, "recall": 200 / 3})


def test_udpos_seqeval_quirk_and_token_accuracy():
    gold = [["NOUN", "VERB", "PUNCT"], ["DET", "NOUN"]]
    pred = [["NOUN", "NOUN", "PUNCT"], ["DET", "ADJ"]]
    # Token accuracy: NOUN, PUNCT, DET right = 3 of 5 -> 60.
    # evaluate.py feeds POS tags to seqeval, which reads the first letter as a chunk prefix and
    # the rest as the type, merging runs of the same type: gold chunks OUN, ERB, UNCT | ET, OUN
    # = 5; predicted OUN[0:2], UNCT | ET, DJ = 4; correct UNCT and ET = 2.
    # P = 2/4 = 50, R = 2/5 = 40, F1 = 2*.5*.4/.9 = 4/9 = 44.44.
    out = score_task("udpos", pred, gold, "en")
    assert out == approx({"f1": 400 / 9, "precision": 50.0, "recall": 40.0, "token_accuracy": 60.0})
    assert "token_accuracy" not in score_task("udpos", pred, gold, "en", extras=False)


def test_squad_normalisation_and_em_f1():
    assert squad_normalize("The  Eiffel Tower!") == "eiffel tower"
    # Only ASCII punctuation and English articles go: '¿' and Spanish 'el' stay.
    assert squad_normalize("¿El gato?") == "¿el gato"
    gold = squad([("q1", ["The Eiffel Tower"]), ("q2", ["an apple pie", "apple"]), ("q3", ["x"])])
    pred = {"q1": "eiffel tower!", "q2": "the apple tart."}
    # q1: both normalise to "eiffel tower" -> EM 1, F1 1.
    # q2: "apple tart" vs "apple pie": 1 common, P=R=1/2, F1 1/2; vs "apple": P 1/2, R 1,
    #     F1 2/3; max F1 2/3, EM 0.  q3: unanswered -> 0.
    # EM = 100 * 1/3 = 33.33; F1 = 100 * (1 + 2/3) / 3 = 500/9 = 55.56.
    assert score_task("xquad", pred, gold, "en") == approx({"exact_match": 100 / 3, "f1": 500 / 9})


def test_mlqa_chinese_mixed_segmentation():
    # Unicode punctuation goes, then every CJK ideograph is a token.
    assert mlqa_normalize("北京 大学。", "zh") == "北 京 大 学"
    gold = squad([("q1", ["北京大学"]), ("q2", ["电池abc"])])
    pred = {"q1": "北京 大学。", "q2": "电化电池"}
    # q1: both -> 北 京 大 学: EM 1, F1 1.
    # q2: gold tokens 电 池 abc, pred 电 化 电 池; common 电, 池 = 2; P 2/4, R 2/3,
    #     F1 = (2/3)/(7/6) = 4/7. EM 0.
    # EM = 100 * 1/2 = 50; F1 = 100 * (1 + 4/7) / 2 = 550/7 = 78.57.
    assert score_task("mlqa", pred, gold, "zh") == approx({"exact_match": 50.0, "f1": 550 / 7})
    # SQuAD rules keep '。' and do not split characters, so q1 would not match there.
    assert score_task("xquad", pred, gold, "zh")["exact_match"] == 0.0


def test_mlqa_german_and_arabic_articles():
    gold = squad([("q1", ["der Hund"]), ("q2", ["die Katze"])])
    pred = {"q1": "Ein Hund.", "q2": "Katze und Hund"}
    # q1: German articles der/ein go: "hund" == "hund" -> EM 1, F1 1.
    # q2: "katze" vs "katze und hund": 1 common, P 1/3, R 1, F1 = (2/3)/(4/3) = 1/2. EM 0.
    # EM 50, F1 = 100 * 1.5 / 2 = 75.
    assert score_task("mlqa", pred, gold, "de") == approx({"exact_match": 50.0, "f1": 75.0})
    # English rules would keep der/ein: q1 "der hund" vs "ein hund" -> EM 0.
    assert score_task("xquad", pred, gold, "de")["exact_match"] == 0.0
    # Arabic: every 'ال' becomes a space, wherever it is (the official regex reduces to that).
    assert mlqa_normalize("البيت الكبير", "ar") == "بيت كبير"
    assert mlqa_normalize("جمال", "ar") == "جم"


def test_bucc_f1():
    gold = ["de-1\ten-5", "de-2\ten-7", "de-3\ten-9"]
    pred = [("de-1", "en-5"), ("de-2", "en-8")]
    # 1 correct pair: P 1/2, R 1/3, F1 = 2*(1/2)*(1/3) / (5/6) = 2/5.
    assert score_task("bucc2018", pred, gold, "de") == approx(
        {"f1": 40.0, "precision": 50.0, "recall": 100 / 3})


def test_tatoeba_accuracy():
    # 0-based index of the retrieved English sentence; 3 of 5 right -> 60.
    assert score_task("tatoeba", ["0", "1", "2", "4", "3"], ["0", "1", "2", "3", "4"], "de") == \
        {"accuracy": 60.0}


def test_map_at_20():
    gold = {"e1": ["Q1"], "e2": ["Q2 "], "e3": ["Q3"], "e4": ["Q4"]}
    pred = {"e1": ["Q9", "Q1"], "e2": ["Q2"], "e3": [f"X{i}" for i in range(20)] + ["Q3"]}
    # e1 hit at rank 2 -> 1/2; e2 rank 1 (gold is stripped) -> 1; e3 hit at rank 21, outside
    # the top 20 -> 0; e4 unpredicted -> 0. Mean = 1.5/4 = 0.375 -> 37.5.
    assert score_task("mewslix", pred, gold, "de") == {"map@20": 37.5}
    # LAReQA, several relevant answers: q1 targets {a,b,c}, hits at ranks 1 and 3:
    # (1/1 + 2/3) / min(3, 20) = 5/9.  q2 target {d}, hit at rank 2 (a repeat of d is ignored):
    # 1/2. mAP = (5/9 + 1/2) / 2 = 19/36 = 52.78.
    assert average_precision_at_k({"a", "b", "c"}, ["a", "x", "b", "y"]) == approx(5 / 9)
    out = score_task("lareqa", {"q1": ["a", "x", "b", "y"], "q2": ["x", "d", "d"]},
                     {"q1": ["a", "b", "c"], "q2": ["d"]})
    assert out == approx({"map@20": 1900 / 36})


# --------------------------------------------------------------------------- aggregation

def _full_xtreme(drop=None):
    """Every XTREME task x language with one value per task (xnli: ar is 100, the rest 70)."""
    per_task = {"pawsx": {"accuracy": 80.0}, "xnli": {"accuracy": 70.0},
                "panx": {"f1": 60.0, "precision": 1.0, "recall": 2.0}, "udpos": {"f1": 50.0},
                "bucc2018": {"f1": 40.0}, "tatoeba": {"accuracy": 30.0},
                "xquad": {"exact_match": 60.0, "f1": 70.0}, "mlqa": {"exact_match": 40.0, "f1": 60.0},
                "tydiqa": {"exact_match": 50.0, "f1": 60.0}}
    res = {t: {lg: dict(m) for lg in XTREME[t]} for t, m in per_task.items()}
    res["xnli"]["ar"] = {"accuracy": 100.0}
    if drop:
        del res[drop[0]][drop[1]]
    return res


def test_aggregate_xtreme():
    out = aggregate(_full_xtreme(), "xtreme")
    # xnli: (100 + 14 * 70) / 15 = 1080/15 = 72.  QA avg_metric = (EM + F1) / 2:
    # xquad 65, mlqa 50, tydiqa 55.
    assert out["xnli"]["avg_accuracy"] == approx(72.0)
    assert out["xnli"]["avg_metric"] == approx(72.0)
    assert out["xquad"]["avg_metric"] == 65.0 and out["mlqa"]["avg_metric"] == 50.0
    assert out["panx"]["avg_metric"] == 60.0 and out["panx"]["avg_recall"] == 2.0
    # classification (pawsx 80 + xnli 72)/2 = 76; tagging (50+60)/2 = 55;
    # qa (65+50+55)/3 = 170/3; retrieval (40+30)/2 = 35;
    # all_task = (80+72+60+50+40+30+65+50+55)/9 = 502/9.
    assert out["classification"] == approx(76.0)
    assert out["tagging"] == 55.0 and out["retrieval"] == 35.0
    assert out["qa"] == approx(170 / 3)
    assert out["all_task"] == approx(502 / 9)
    assert list(out)[:5] == ["all_task", "classification", "tagging", "qa", "retrieval"]
    assert list(out["xnli"]) == ["accuracy", "avg_accuracy", "avg_metric"]
    assert list(out["xnli"]["accuracy"]) == XTREME["xnli"]


def test_aggregate_partial_languages_drop_group_and_overall():
    out = aggregate(_full_xtreme(drop=("panx", "de")), "xtreme")
    # panx is still averaged over its 39 languages, but tagging and all_task need all 40.
    assert out["panx"]["avg_f1"] == 60.0
    assert "tagging" not in out and "all_task" not in out
    assert out["classification"] == approx(76.0)


def test_aggregate_xtreme_r_groups():
    res = {"xcopa": {lg: {"accuracy": 60.0} for lg in XTREME_R["xcopa"]},
           "xnli": {lg: {"accuracy": 70.0} for lg in XTREME_R["xnli"]},
           "tatoeba": {lg: {"accuracy": 30.0} for lg in XTREME_R["tatoeba"]},
           "mewslix": {lg: {"map@20": 20.0} for lg in XTREME_R["mewslix"]},
           "lareqa": {lg: {"map@20": 10.0} for lg in XTREME_R["lareqa"]}}
    out = aggregate(res, "xtreme-r")
    # classification = (xnli 70 + xcopa 60)/2 = 65; multi_choice = xcopa = 60;
    # retrieval = (tatoeba 30 + mewslix 20)/2 = 25 (evaluate.py leaves lareqa out).
    assert out["classification"] == 65.0 and out["multi_choice"] == 60.0
    assert out["retrieval"] == 25.0
    assert out["lareqa"]["avg_metric"] == 10.0
    assert "all_task" not in out  # qa and tagging tasks missing


# --------------------------------------------------------------------------- submission round trip

def _write_both(pred_root, label_root, task, langs, pred, gold):
    for lg in langs:
        write_submission(pred_root, task, lg, pred)
        write_submission(label_root, task, lg, gold)


def test_submission_round_trip(tmp_path, capsys):
    P, L = str(tmp_path / "predictions"), str(tmp_path / "labels")
    _write_both(P, L, "pawsx", XTREME["pawsx"], [0, 1, 0, 0], [0, 1, 1, 0])  # 3/4 -> 75
    tags_gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG", "O"]]
    tags_pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG", "B-LOC"]]
    _write_both(P, L, "panx", XTREME["panx"], tags_pred, tags_gold)  # as above: 4/7, 1/2, 2/3
    _write_both(P, L, "bucc2018", XTREME["bucc2018"], [("de-1", "en-5"), ("de-2", "en-8")],
                [("de-1", "en-5"), ("de-2", "en-7"), ("de-3", "en-9")])  # F1 40, P 50, R 33.3
    _write_both(P, L, "tatoeba", XTREME["tatoeba"], [0, 1, 2, 4, 3], [0, 1, 2, 3, 4])  # 60
    for lg in XTREME["mlqa"]:
        os.makedirs(f"{L}/mlqa", exist_ok=True)
        with open(f"{L}/mlqa/test-{lg}.json", "w", encoding="utf-8") as f:
            json.dump(squad([("a", ["Paris"]), ("b", ["two cats"])]), f)
        # a: "paris." -> "paris": EM 1, F1 1 in every MLQA language.
        # b: "cats" vs "two cats": P 1, R 1/2, F1 2/3, EM 0.  EM 50, F1 100*(5/3)/2 = 83.33.
        write_submission(P, "mlqa", lg, {"a": "paris.", "b": "cats"})
    assert sorted(os.listdir(f"{P}/panx"))[:2] == ["test-af.tsv", "test-ar.tsv"]
    with open(f"{P}/panx/test-en.tsv") as f:  # tag per line, blank line between sentences
        assert f.read() == "B-PER\nO\nO\nB-LOC\n\nB-ORG\nI-ORG\nI-ORG\nB-LOC\n"

    assert score_cli.main(["--prediction_folder", P, "--label_folder", L]) == 0
    out = json.loads(capsys.readouterr().out)
    # retrieval = (bucc 40 + tatoeba 60)/2 = 50; no other group is complete, no all_task.
    assert list(out) == ["retrieval", "pawsx", "panx", "bucc2018", "tatoeba", "mlqa"]
    assert out["retrieval"] == approx(50.0)
    assert out["pawsx"] == {"accuracy": {lg: 75.0 for lg in XTREME["pawsx"]},
                            "avg_accuracy": 75.0, "avg_metric": 75.0}
    assert out["panx"]["avg_f1"] == approx(400 / 7) and out["panx"]["avg_metric"] == approx(400 / 7)
    assert out["panx"]["avg_precision"] == approx(50.0)
    assert out["panx"]["avg_recall"] == approx(200 / 3)
    assert out["bucc2018"]["avg_metric"] == approx(40.0)
    assert out["mlqa"]["exact_match"] == {lg: 50.0 for lg in XTREME["mlqa"]}
    assert out["mlqa"]["avg_f1"] == approx(250 / 3)
    # (50 + 83.33) / 2 = 66.67
    assert out["mlqa"]["avg_metric"] == approx(200 / 3)
    assert list(out["mlqa"]) == ["exact_match", "f1", "avg_exact_match", "avg_f1", "avg_metric"]


def test_round_trip_xtreme_r_subprocess(tmp_path):
    P, L = str(tmp_path / "p"), str(tmp_path / "l")
    _write_both(P, L, "xcopa", XTREME_R["xcopa"], [1, 1, 1, 0], [0, 1, 1, 0])  # 3/4 -> 75
    for lg in XTREME_R["mewslix"]:
        write_submission(P, "mewslix", lg, {"e1": ["Q9", "Q1"], "e2": ["Q2"]})  # (1/2 + 1)/2
        os.makedirs(f"{L}/mewslix", exist_ok=True)
        with open(f"{L}/mewslix/test-{lg}.json", "w") as f:
            json.dump({"e1": ["Q1"], "e2": ["Q2"]}, f)
    with open(f"{P}/xcopa/test-et.jsonl") as f:
        assert f.read().splitlines()[0] == '{"label": 1}'
    out_file = tmp_path / "scores.json"
    proc = subprocess.run([sys.executable, "-m", "xtreme_jax.score", "--prediction_folder", P,
                           "--label_folder", L, "--xtreme_version", "xtreme-r",
                           "--output_file", str(out_file)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out == json.loads(out_file.read_text())
    # multi_choice = xcopa = 75; mewslix map@20 = 75 per language.
    assert out["multi_choice"] == 75.0
    assert out["xcopa"]["avg_metric"] == 75.0
    assert out["mewslix"]["map@20"]["de"] == 75.0 and out["mewslix"]["avg_metric"] == 75.0


def test_write_is_atomic_and_overwrites(tmp_path):
    path = write_submission(str(tmp_path), "xnli", "de", ["neutral"])
    path2 = write_submission(str(tmp_path), "xnli", "de", ["entailment", "neutral"])
    assert path == path2 == str(tmp_path / "xnli" / "test-de.tsv")
    assert os.listdir(tmp_path / "xnli") == ["test-de.tsv"]  # no temp file left behind
    with open(path) as f:
        assert f.read() == "entailment\nneutral\n"


# --------------------------------------------------------------------------- errors

@pytest.fixture
def xnli_folders(tmp_path):
    P, L = str(tmp_path / "p"), str(tmp_path / "l")
    _write_both(P, L, "xnli", XTREME["xnli"], ["neutral", "entailment"], ["neutral", "entailment"])
    return P, L


def _cli_error(P, L, capsys, *extra):
    assert score_cli.main(["--prediction_folder", P, "--label_folder", L, *extra]) == 2
    return capsys.readouterr().err


def test_error_missing_file(xnli_folders, capsys):
    P, L = xnli_folders
    os.remove(f"{P}/xnli/test-sw.tsv")
    err = _cli_error(P, L, capsys)
    assert f"missing prediction file {P}/xnli/test-sw.tsv" in err
    assert "write_submission" in err and "delete the xnli folder" in err


def test_error_length_mismatch(xnli_folders, capsys):
    P, L = xnli_folders
    write_submission(P, "xnli", "de", ["neutral"])
    err = _cli_error(P, L, capsys)
    assert f"{P}/xnli/test-de.tsv has 1 examples but {L}/xnli/test-de.tsv has 2" in err
    assert "regenerate predictions" in err


def test_error_unknown_label(xnli_folders, capsys):
    P, L = xnli_folders
    with open(f"{P}/xnli/test-de.tsv", "w") as f:
        f.write("neutral\nentail\n")
    err = _cli_error(P, L, capsys)
    assert f"{P}/xnli/test-de.tsv:2: unknown xnli label 'entail'" in err
    assert "'contradiction'" in err


def test_error_tags(tmp_path, capsys):
    P, L = str(tmp_path / "p"), str(tmp_path / "l")
    _write_both(P, L, "panx", XTREME["panx"], [["O", "B-PER"], ["O"]], [["O", "B-PER"], ["O"]])
    with open(f"{P}/panx/test-de.tsv", "w") as f:
        f.write("O\nB-PER\n\nO\nO\n")  # second sentence (line 4) has one tag too many
    err = _cli_error(P, L, capsys)
    assert f"{P}/panx/test-de.tsv:4: sentence 1 has 2 predicted tags but the gold sentence has 1" in err
    with open(f"{P}/panx/test-de.tsv", "w") as f:
        f.write("O\nB-MISC\n\nO\n")
    err = _cli_error(P, L, capsys)
    assert f"{P}/panx/test-de.tsv:2: unknown panx tag 'B-MISC'" in err


@pytest.mark.parametrize("task,lang,content,message", [
    ("bucc2018", "de", "de-1 en-5\n", "test-de.tsv:1: expected 'source_id<TAB>target_id'"),
    ("tatoeba", "de", "3\nfoo\n", "test-de.tsv:2: tatoeba prediction 'foo' is not the 0-based"),
    ("xcopa", "et", '{"label": 1}\n{"lbl": 0}\n', 'test-et.jsonl:2: expected a JSON object like'),
    ("xquad", "de", '{"q1": "a",\n "q2": }', "test-de.json:2: invalid JSON"),
    ("xquad", "de", '{"q1": ["a"]}', "prediction for question 'q1' is list"),
])
def test_error_malformed_files(tmp_path, task, lang, content, message):
    from xtreme_jax.scoring import score_file
    ext = {"xcopa": "jsonl", "xquad": "json"}.get(task, "tsv")
    path = tmp_path / f"test-{lang}.{ext}"
    path.write_text(content)
    gold = tmp_path / ("gold" + path.suffix)
    gold.write_text({"bucc2018": "de-1\ten-5\n", "tatoeba": "3\n4\n", "xcopa": '{"label": 1}\n' * 2,
                     "xquad": json.dumps(squad([("q1", ["a"])]))}[task])
    with pytest.raises(ScoringError, match="^" + re.escape(str(tmp_path))):
        score_file(task, str(path), str(gold), lang)
    with pytest.raises(ScoringError) as e:
        score_file(task, str(path), str(gold), lang)
    assert message in str(e.value)


def test_error_in_memory_and_writer(tmp_path):
    with pytest.raises(ScoringError, match="1 examples but labels has 2"):
        score_task("xnli", ["neutral"], ["neutral", "neutral"])
    with pytest.raises(ScoringError, match="MLQA scores languages .* not 'fr'"):
        score_task("mlqa", {}, squad([("q", ["a"])]), "fr")
    with pytest.raises(ScoringError, match="sentence 1 has no tags"):
        write_submission(str(tmp_path), "panx", "de", [["O"], []])
    with pytest.raises(ScoringError, match="no leaderboard file"):
        write_submission(str(tmp_path), "lareqa", "de", {})
    with pytest.raises(ScoringError, match="not a plain language code"):
        write_submission(str(tmp_path), "xnli", "../de", ["neutral"])
    with pytest.raises(ScoringError, match="unknown task 'foo'"):
        score_task("foo", [], [])


def test_error_not_a_folder(tmp_path, capsys):
    err = _cli_error(str(tmp_path / "nope"), str(tmp_path), capsys)
    assert "nope is not a folder" in err


def test_in_memory_ints_compare_like_the_written_files():
    # pawsx labels 0/1 and tatoeba indices as ints score as their text in the .tsv would:
    # pawsx 2 of 3 right -> 66.67; tatoeba 1 of 2 -> 50.
    assert score_task("pawsx", [0, 1, 1], ["0", "1", "0"], "de") == approx({"accuracy": 200 / 3})
    assert score_task("tatoeba", [3, 4], [3, 5], "de") == {"accuracy": 50.0}


def test_error_no_task_folders(tmp_path, capsys):
    # Before: exit 0 with "{}" (nothing scored looked like success).
    (tmp_path / "p").mkdir()
    (tmp_path / "l").mkdir()
    err = _cli_error(str(tmp_path / "p"), str(tmp_path / "l"), capsys)
    assert err.startswith("error: no xtreme task folder found in both ")
    assert "xnli/test-de.tsv" in err and err.count("\n") == 1


def test_error_output_file_is_a_directory(xnli_folders, tmp_path, capsys):
    P, L = xnli_folders
    err = _cli_error(P, L, capsys, "--output_file", str(tmp_path))
    assert err == (f"error: --output_file={tmp_path} is a directory; pass a file path such as "
                   f"{tmp_path}/scores.json\n")


def test_error_invalid_utf8_names_file_and_line(xnli_folders, capsys):
    P, L = xnli_folders
    with open(f"{P}/xnli/test-de.tsv", "wb") as f:
        f.write(b"neutral\nentail\xe9ment\n")  # Latin-1 byte on line 2
    err = _cli_error(P, L, capsys)
    assert err == f"error: {P}/xnli/test-de.tsv:2: not valid UTF-8 (byte 0xe9); save the file as UTF-8\n"


def test_utf8_bom_in_prediction_file_is_accepted(xnli_folders, capsys):
    P, L = xnli_folders
    with open(f"{P}/xnli/test-de.tsv", "w", encoding="utf-8-sig") as f:
        f.write("neutral\nentailment\n")
    assert score_cli.main(["--prediction_folder", P, "--label_folder", L]) == 0
    assert json.loads(capsys.readouterr().out)["xnli"]["accuracy"]["de"] == 100.0
