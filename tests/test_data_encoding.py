"""Encoding faults in data files name the file and the line (before: a UnicodeDecodeError
traceback for a Latin-1 byte in a TSV, and a 99-line pyarrow traceback saying "row 6" for a
non-JSON line 7 of a local JSONL file)."""
import json

import pytest

from xtreme_jax.data.errors import DataError
from xtreme_jax.data.sources import Source
from xtreme_jax.tasks import get_task

ROWS = [("the cat sat", "a cat sat", "entailment"), ("a dog ran", "no dog ran", "contradiction")]


def test_invalid_utf8_in_a_tsv_names_file_line_and_byte(tmp_path):
    lines = [f"{a}\t{b}\t{y}".encode() for a, b, y in ROWS] * 3
    lines.insert(4, "caf\xe9\tcoffee\tneutral".encode("latin-1"))
    (tmp_path / "dev-de.tsv").write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(DataError) as e:
        get_task("xnli").load_examples("dev", "de", Source("official", str(tmp_path)))
    assert str(e.value) == (f"{tmp_path}/dev-de.tsv:5: not valid UTF-8 (byte 0xe9 at column 4) -- fix: "
                            "re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)")


def test_bom_and_crlf_are_read_as_plain_text(tmp_path):
    text = "".join(f"{a}\t{b}\t{y}\r\n" for a, b, y in ROWS)
    (tmp_path / "dev-de.tsv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    examples = get_task("xnli").load_examples("dev", "de", Source("official", str(tmp_path)))
    assert [(e["text_a"], e["label"]) for e in examples] == [("the cat sat", "entailment"),
                                                              ("a dog ran", "contradiction")]


def test_non_json_line_in_local_jsonl_names_the_line(tmp_path):
    rows = [json.dumps({"question1": f"q{i}", "question2": f"p{i}", "label": i % 2}) for i in range(6)]
    (tmp_path / "train.jsonl").write_text("\n".join(rows + ["not json", rows[0]]) + "\n")
    with pytest.raises(DataError) as e:
        get_task("qqp").load_examples("train", "en", Source("local", str(tmp_path)))
    assert str(e.value).startswith(f"{tmp_path}/train.jsonl:7: invalid JSON")
