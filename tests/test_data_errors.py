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





# ---------------------------------------------------------------- issue 25: files that are not data

def test_a_test_row_that_lost_its_label_is_named_not_the_whole_language_unscored(tmp_path):
    """Before: one 2-column row in a labelled test file made every row unlabelled, and the language
    dropped out of the scores as if the official download had stripped its labels."""
    src = _xnli(tmp_path, GOOD[:3] + ["a premise\ta hypothesis"] + GOOD[3:], split="test")
    with pytest.raises(DataError) as e:
        get_task("xnli").load_examples("test", "de", src)
    assert str(e.value) == (
        f"{tmp_path}/test-de.tsv:4: 2 tab-separated columns, but the rows from line 1 on have 3 (sentence1, "
        "sentence2, label): this row lost or gained a column -- fix: restore the missing field (e.g. the "
        "label) of this line")
    unlabelled = _xnli(tmp_path, [l.rsplit("\t", 1)[0] for l in GOOD], split="test", lang="fr")
    assert all(ex["label"] is None for ex in get_task("xnli").load_examples("test", "fr", unlabelled))


def test_a_data_file_that_is_a_directory_or_a_symlink_loop_is_named(tmp_path):
    import os
    (tmp_path / "dev-de.tsv").mkdir()
    with pytest.raises(DataError) as e:
        get_task("xnli").load_examples("dev", "de", Source("official", str(tmp_path)))
    assert str(e.value).startswith(f"{tmp_path}/dev-de.tsv: the data file is a directory, not a data file")
    os.symlink(tmp_path / "dev-fr.tsv", tmp_path / "dev-fr.tsv")  # a link to itself: ELOOP
    with pytest.raises(DataError) as e:
        get_task("xnli").load_examples("dev", "fr", Source("official", str(tmp_path)))
    assert str(e.value).startswith(f"{tmp_path}/dev-fr.tsv: the data file is a symlink that leads nowhere "
                                   "(Too many levels of symbolic links: ")
    local = tmp_path / "local"
    local.mkdir()
    os.symlink(local / "validation-de.jsonl", local / "validation-de.jsonl")
    with pytest.raises(DataError) as e:  # before: "no local file for split", naming neither
        get_task("xnli").load_examples("dev", "de", Source("local", str(local)))
    assert str(e.value).startswith(f"{local}/validation-de.jsonl: the data file for split 'dev', language "
                                   "'de' is a symlink that leads nowhere")


def test_an_unreadable_file_is_named(tmp_path, monkeypatch):
    from xtreme_jax.data import formats

    def denied(path, mode="r", *a, **k):
        raise PermissionError(13, "Permission denied", path)
    src = _xnli(tmp_path, GOOD)
    monkeypatch.setattr(formats, "open", denied, raising=False)  # root reads through chmod 000
    with pytest.raises(DataError) as e:
        get_task("xnli").load_examples("dev", "de", src)
    assert str(e.value) == (f"{tmp_path}/dev-de.tsv: cannot read the file (Permission denied) -- fix: check "
                            "its permissions (chmod a+r) and the disk, or copy the file again")


@pytest.mark.parametrize("name,content,problem", [
    ("validation-de.parquet", b"", "the file is empty (0 bytes)"),
    ("validation-de.parquet", None, "cannot read it as parquet ("),  # truncated
    ("validation-de.jsonl", b"", "the file is empty (0 bytes)"),
    ("validation-de.jsonl", '{"premise": "\xe9t\xe9", "hypothesis": "b", "label": 0}\n'.encode("latin-1"),
     None),
])
def test_an_empty_truncated_or_non_utf8_local_file_is_named(tmp_path, name, content, problem):
    from test_data_support import write_parquet
    if content is None:
        write_parquet(tmp_path / name, [{"premise": a, "hypothesis": b, "label": 0} for a, b, _ in NLI_ROWS])
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
    else:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError) as e:
        get_task("xnli").load_examples("dev", "de", Source("local", str(tmp_path)))
    if problem is None:  # the jsonl reader names the line and the byte
        assert str(e.value).startswith(f"{tmp_path}/{name}:1: not valid UTF-8 (byte 0xe9 at column 14)")
    else:
        assert str(e.value).startswith(f"{tmp_path}/{name}: {problem}")


def test_all_premises_and_hypotheses_empty_is_refused(tmp_path, tok):
    from xtreme_jax.data.cache import cached_features
    src = _xnli(tmp_path / "d", [f" \t\t{y}" for _, _, y in NLI_ROWS], split="train", lang="en")
    with pytest.raises(DataError) as e:
        cached_features("xnli", "train", "en", tok, source=src, cache_dir=str(tmp_path / "c"))
    assert str(e.value) == (
        f"{tmp_path}/d/train-en.tsv: every one of the {len(NLI_ROWS)} 'train' examples of xnli/en has empty text "
        "(premise, hypothesis, sentence...): nothing to learn or score -- fix: check the file's columns (a "
        "wrong separator or schema leaves them blank)")
    half = _xnli(tmp_path / "h", [f" \t\t{y}" for _, _, y in NLI_ROWS[:2]] + GOOD[2:], split="train", lang="en")
    assert cached_features("xnli", "train", "en", tok, source=half, cache_dir=None).num_examples == len(NLI_ROWS)


def test_an_unwritable_cache_dir_is_refused_before_compute(tmp_path, tok):
    from xtreme_jax import config as C
    from xtreme_jax.config import ConfigError
    from xtreme_jax.data.cache import cached_features
    (tmp_path / "afile").write_text("x")
    c = C.base_config()
    c.phases = "target"
    c.target = C.train_phase([C.task_entry("xnli")], batch_size=8)
    c.data.cache_dir = str(tmp_path / "afile" / "cache")
    with pytest.raises(ConfigError) as e:
        C.validate(c, num_devices=8)
    assert str(e.value) == (f"config.data.cache_dir='{tmp_path}/afile/cache': {tmp_path}/afile is a file; set "
                            "--config.data.cache_dir to a writable directory (or '' for the run's own cache)")
    src = _xnli(tmp_path / "d", GOOD)
    with pytest.raises(DataError, match=r"afile/cache: cannot write the feature cache \(") as e:
        cached_features("xnli", "dev", "de", tok, source=src, cache_dir=str(tmp_path / "afile" / "cache"))
