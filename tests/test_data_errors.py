"""Bad input gives one error naming the file, line and field, and the fix; skip mode counts."""
import json

import pytest

from test_data_support import NLI_ROWS, squad_json, write, write_lines
from xtreme_jax.data.errors import DataError, OnError
from xtreme_jax.data.sources import Source
from xtreme_jax.tasks import get_task


def _xnli(tmp_path, lines, split="dev", lang="de"):
    write_lines(tmp_path / f"{split}-{lang}.tsv", lines)
    return Source("official", str(tmp_path))


GOOD = [f"{a}\t{b}\t{y}" for a, b, y in NLI_ROWS]


def test_wrong_column_count(tmp_path):
    src = _xnli(tmp_path, GOOD[:2] + ["only one column", "a\tb\tneutral\textra"])
    with pytest.raises(DataError) as e:
        get_task("xnli").load_examples("dev", "de", src)
    msg = str(e.value)
    assert f"{tmp_path}/dev-de.tsv:3" in msg and "expected 3 tab-separated columns" in msg
    assert "found 1" in msg and "fix:" in msg


def test_label_outside_label_set(tmp_path):
    src = _xnli(tmp_path, GOOD[:3] + ["a\tb\tentails"])
    with pytest.raises(DataError, match=r"dev-de\.tsv:4, field 'label': label 'entails' is not in the "
                                        r"label set \['entailment', 'neutral', 'contradiction'\]"):
        get_task("xnli").load_examples("dev", "de", src)


def test_tag_token_count_mismatch(tmp_path):
    write_lines(tmp_path / "ccg.train", ["The cat sat\tNP N S", "Anna ran\tN"])
    with pytest.raises(DataError, match=r"ccg\.train:2, field 'tags': 2 tokens but 1 tags"):
        get_task("ccg").load_examples("train", "en", Source("official", str(tmp_path)))


def test_tagging_unknown_tag_and_columns(tmp_path):
    write(tmp_path / "dev-de.tsv", "Anna\tB-PER\nging\tO\n\nOmar\tB-PERSON\n\n")
    with pytest.raises(DataError, match=r"dev-de\.tsv:4, field 'tags': tag 'B-PERSON' is not in the label set"):
        get_task("panx").load_examples("dev", "de", Source("official", str(tmp_path)))
    write(tmp_path / "dev-fr.tsv", "Anna\tB-PER\textra\n\n")
    with pytest.raises(DataError, match=r"dev-fr\.tsv:1: expected 2 tab-separated column"):
        get_task("panx").load_examples("dev", "fr", Source("official", str(tmp_path)))


def test_qa_answer_not_in_context(tmp_path):
    data = squad_json([("q1", "Anna went to Paris .", "Where ?", "Paris")])
    data["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 3
    write(tmp_path / "xquad.de.json", json.dumps(data))
    with pytest.raises(DataError) as e:
        get_task("xquad").load_examples("test", "de", Source("official", str(tmp_path)))
    msg = str(e.value)
    assert "xquad.de.json (question id q1)" in msg and "field 'answers[0].answer_start'" in msg
    assert "answer 'Paris' not found in the context at answer_start=3" in msg


def test_empty_language_file(tmp_path):
    src = _xnli(tmp_path, [])
    with pytest.raises(DataError, match=r"no 'dev' examples for language 'de' of task 'xnli'.*empty"):
        get_task("xnli").load_examples("dev", "de", src)


def test_unknown_language_code(tmp_path):
    with pytest.raises(DataError, match=r"unknown language code 'deu' for task 'xnli'.*use one of ar, bg, de"):
        get_task("xnli").load_examples("dev", "deu", Source("official", str(tmp_path)))


def test_unknown_split(tmp_path):
    with pytest.raises(DataError, match=r"task 'xquad' has no split 'train'"):
        get_task("xquad").load_examples("train", "de", Source("official", str(tmp_path)))


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as e:
        get_task("xnli").load_examples("dev", "fr", Source("official", str(tmp_path)))
    assert f"{tmp_path}/dev-fr.tsv" in str(e.value) and "missing data file" in str(e.value)
    assert e.value.reason == "missing_file"
    with pytest.raises(DataError, match=r"no local file for split 'dev', language 'fr'"):
        get_task("xnli").load_examples("dev", "fr", Source("local", str(tmp_path)))


def test_bad_json_line(tmp_path):
    write_lines(tmp_path / "test-et.jsonl", ['{"premise": "a", "choice1": "b"', ])
    with pytest.raises(DataError, match=r"test-et\.jsonl:1: invalid JSON"):
        get_task("xcopa").load_examples("test", "et", Source("official", str(tmp_path)))


def test_skip_and_count(tmp_path):
    src = _xnli(tmp_path, GOOD + ["bad line", "a\tb\tmaybe", "c\td\tmaybe"])
    policy = OnError(skip=True)
    ex = get_task("xnli").load_examples("dev", "de", src, errors=policy)
    assert len(ex) == len(GOOD)
    s = policy.summary()
    assert s["skipped"] == 3 and s["by_reason"] == {"column_count": 1, "unknown_label": 2}
    assert "dev-de.tsv:6" in s["first"][0]
    assert len(get_task("xnli").load_examples("dev", "de", src, errors="skip")) == len(GOOD)


def test_skip_mode_in_cached_features_reports(tmp_path, tok):
    from xtreme_jax.data.cache import cached_features
    src = _xnli(tmp_path / "d", GOOD + ["bad line"])
    f = cached_features("xnli", "dev", "de", tok, source=src, cache_dir=str(tmp_path / "c"), errors="skip")
    assert f.num_examples == len(GOOD) and f.meta["skipped"]["skipped"] == 1



