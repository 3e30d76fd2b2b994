"""Readers for the raw file formats of the benchmark releases, with line numbers for errors.

Each reader yields records plus the 1-based line number where the record starts, so that a
task's parser can raise a `DataError` pointing at the exact spot. Formats:

- tsv            one record per line, tab-separated, no quoting (as XTREME's own readers)
- token\\ttag    PAN-X / UD-POS official layout: one token per line, blank line between sentences
- CoNLL-U        Universal Dependencies; FORM (col 2) and UPOS (col 4); multi-word ranges `1-2`
                 and empty nodes `1.1` are skipped, as the XTREME udpos conversion keeps words
- jsonl / json   one JSON object per line / SQuAD JSON (data > paragraphs > qas)
- csv            with header (Cosmos QA)
- lines          one sentence per line (Tatoeba, MLM corpora)
"""
from __future__ import annotations

import csv
import json
import os
from typing import Iterator

from xtreme_jax.data.errors import DataError, OnError


def not_a_file(path: str) -> str:
    """Why an existing name is no readable data file ("" when it is one, or when nothing is there)."""
    if os.path.isdir(path):
        return "is a directory, not a data file"
    if os.path.islink(path) and not os.path.exists(path):
        try:
            os.stat(path)
        except OSError as e:  # ELOOP for a loop, ENOENT for a dangling link
            return f"is a symlink that leads nowhere ({e.strerror}: {os.readlink(path)!r})"
    return ""


def require_file(path: str, what: str = "data file", fix: str | None = None) -> str:
    if not os.path.isfile(path):
        why = not_a_file(path)
        if why:
            raise DataError(f"the {what} {why}", file=path, reason="missing_file",
                            fix="replace it with the file itself, or point source.path elsewhere")
        raise DataError(f"missing {what}", file=path, reason="missing_file",
                        fix=fix or "check the data directory in the source config (source.path), "
                                   "or download the data (see docs/data.md)")
    return path


class _Utf8Lines:
    """A text file read line by line from bytes, so a line that is not UTF-8 is reported with its
    number (a text-mode file decodes in 8 KB chunks and cannot say where). Line endings are kept,
    as with newline="" (csv needs them); a leading BOM is dropped."""

    def __init__(self, path: str):
        self.path, self.line = path, 0
        try:
            self._f = open(path, "rb")
        except OSError as e:
            raise _unreadable(path, e) from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def readline(self) -> str:
        try:
            raw = self._f.readline()
        except OSError as e:
            raise _unreadable(self.path, e, self.line + 1) from None
        if not raw:
            return ""
        self.line += 1
        try:
            text = raw.decode("utf-8-sig" if self.line == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})",
                            file=self.path, line=self.line, reason="encoding",
                            fix="re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
        return text

    def read(self) -> str:
        return "".join(self)


def _unreadable(path, e: OSError, line=None) -> DataError:
    return DataError(f"cannot read the file ({e.strerror or e})", file=path, line=line, reason="unreadable",
                     fix="check its permissions (chmod a+r) and the disk, or copy the file again")


def _open(path: str) -> _Utf8Lines:
    require_file(path)
    return _Utf8Lines(path)


def check_utf8(path: str) -> None:
    """Raises a DataError at the first line that is not UTF-8 (pyarrow loads such JSON / CSV and
    fails only later, row by row, with a bare UnicodeDecodeError)."""
    with _open(path) as f:
        for _ in f:
            pass


def read_lines(path: str) -> list[str]:
    with _open(path) as f:
        return [line.rstrip("\r\n") for line in f]


def read_tsv(path: str, ncols: tuple[int, ...], on_error: OnError,
             names: str = "columns") -> Iterator[tuple[int, list[str]]]:
    """Yields (line_no, fields) for each non-empty line whose column count is in `ncols`. With
    several allowed counts (a test file with or without its label column) the first row fixes the
    file's layout: a row that lost a column is an error at its line, not a silently unlabelled row."""
    on_error.seen(path)
    layout = None  # (count, line) of the first good row
    with _open(path) as f:
        for i, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) not in ncols:
                on_error(DataError(
                    f"expected {' or '.join(map(str, ncols))} tab-separated columns ({names}), "
                    f"found {len(cols)}", file=path, line=i, reason="column_count",
                    fix="remove stray tab characters or fix the line so it has the right columns"))
                continue
            if layout and len(cols) != layout[0]:
                on_error(DataError(
                    f"{len(cols)} tab-separated columns, but the rows from line {layout[1]} on have "
                    f"{layout[0]} ({names}): this row lost or gained a column", file=path, line=i,
                    reason="column_count", fix="restore the missing field (e.g. the label) of this line"))
                continue
            layout = layout or (len(cols), i)
            yield i, cols


def read_tsv_header(path: str, required: tuple[str, ...], on_error: OnError
                    ) -> Iterator[tuple[int, dict]]:
    """TSV with a header line (GLUE releases); yields (line_no, {column: value})."""
    on_error.seen(path)
    with _open(path) as f:
        header = f.readline().rstrip("\r\n").split("\t")
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"header lacks columns {missing}; found {header}", file=path, line=1,
                            reason="missing_column", fix="use the original release file with its header")
        for i, line in enumerate(f, 2):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) != len(header):
                on_error(DataError(f"expected {len(header)} columns as in the header, found {len(cols)}",
                                   file=path, line=i, reason="column_count",
                                   fix="remove stray tab characters in this line"))
                continue
            yield i, dict(zip(header, cols))


def read_token_tag(path: str, on_error: OnError, labeled: bool = True
                   ) -> Iterator[tuple[int, list[str], list[str] | None]]:
    """XTREME PAN-X / UD-POS layout: `token\\ttag` per line, blank line ends a sentence.

    Unlabeled files (official test sets) have one column; then tags are None.
    """
    tokens, tags, start, bad = [], [], None, False
    on_error.seen(path)
    with _open(path) as f:
        for i, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                if tokens and not bad:
                    yield start, tokens, (tags if labeled else None)
                tokens, tags, start, bad = [], [], None, False
                continue
            if start is None:
                start = i
            cols = line.split("\t")
            if len(cols) != 2 if labeled else len(cols) not in (1, 2):
                on_error(DataError(
                    f"expected {'2' if labeled else '1 or 2'} tab-separated column(s) "
                    f"(token{', tag' if labeled else ''}), found {len(cols)}",
                    file=path, line=i, reason="column_count",
                    fix="each line must be `token<TAB>tag`; sentences are separated by blank lines"))
                bad = True
                continue
            tokens.append(cols[0])
            if labeled:
                tags.append(cols[1].strip())
    if tokens and not bad:
        yield start, tokens, (tags if labeled else None)


def read_conllu(path: str, on_error: OnError) -> Iterator[tuple[int, list[str], list[str]]]:
    """Universal Dependencies CoNLL-U: yields (line_no, forms, upos) per sentence.

    Multi-word token ranges (`1-2`) and empty nodes (`8.1`) are skipped: XTREME tags the
    syntactic words, which are the integer-id lines.
    """
    forms, upos, start, bad = [], [], None, False
    on_error.seen(path)
    with _open(path) as f:
        for i, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                if forms and not bad:
                    yield start, forms, upos
                forms, upos, start, bad = [], [], None, False
                continue
            if line.startswith("#"):
                continue
            if start is None:
                start = i
            cols = line.split("\t")
            if len(cols) != 10:
                on_error(DataError(f"expected 10 tab-separated CoNLL-U columns, found {len(cols)}",
                                   file=path, line=i, reason="column_count",
                                   fix="CoNLL-U lines are ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC"))
                bad = True
                continue
            if "-" in cols[0] or "." in cols[0]:
                continue
            forms.append(cols[1])
            upos.append(cols[3])
    if forms and not bad:
        yield start, forms, upos


def read_jsonl(path: str, on_error: OnError) -> Iterator[tuple[int, dict]]:
    on_error.seen(path)
    with _open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                on_error(DataError(f"invalid JSON ({e.msg})", file=path, line=i, reason="bad_json",
                                   fix="each line must be one JSON object"))
                continue
            yield i, obj


def read_json(path: str):
    with _open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON ({e.msg})", file=path, line=e.lineno, reason="bad_json",
                            fix="the file must be one JSON document") from None


def read_csv(path: str, required: tuple[str, ...], on_error: OnError) -> Iterator[tuple[int, dict]]:
    on_error.seen(path)
    with _open(path) as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"header lacks columns {missing}; found {reader.fieldnames}", file=path,
                            line=1, reason="missing_column", fix="use the original release csv")
        for row in reader:
            if None in row or any(row.get(c) is None for c in required):
                on_error(DataError("wrong number of comma-separated fields", file=path,
                                   line=reader.line_num, reason="column_count",
                                   fix="quote fields that contain commas"))
                continue
            yield reader.line_num, row


def iter_squad(path: str, data: dict | None = None) -> Iterator[tuple[str, str, dict]]:
    """SQuAD JSON: yields (title, context, qa) for every question."""
    data = read_json(path) if data is None else data
    if not isinstance(data, dict) or "data" not in data:
        raise DataError("not SQuAD JSON (no top-level 'data')", file=path, field="data",
                        reason="bad_json", fix="QA files must be in SQuAD v1.1/v2.0 JSON format")
    for article in data["data"]:
        for para in article.get("paragraphs", []):
            for qa in para.get("qas", []):
                yield article.get("title", ""), para["context"], qa
