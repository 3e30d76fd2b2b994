"""Small helpers shared by the task families: label normalisation and file lookup."""
from __future__ import annotations

import os

from xtreme_jax.data.errors import DataError

INVALID = object()   # a bad record (already reported); the caller drops it
NO_GOLD = object()   # no gold label (SNLI "-" / -1, unlabeled test rows)


def norm_label(value, labels, rec, field="label", mapping=None):
    """A label name from a name, a numeric string or a class index; INVALID/NO_GOLD otherwise."""
    if value is None or value == "" or value == "-" or (isinstance(value, int) and value < 0):
        return NO_GOLD
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        if 0 <= value < len(labels):
            return labels[value]
        rec.error(f"label index {value} outside the {len(labels)} labels {list(labels)}",
                  field=field, reason="unknown_label", fix="use a label from the task's label set")
        return INVALID
    value = str(value).strip()
    if mapping:
        value = mapping.get(value, value)
    if value not in labels:
        rec.error(f"label {value!r} is not in the label set {list(labels)}", field=field,
                  reason="unknown_label", fix="fix the label, or check that this file belongs to this task")
        return INVALID
    return value


def first_existing(paths, what="data file", fix=None) -> str:
    for p in paths:
        if os.path.isfile(p):
            return p
    raise DataError(f"missing {what}; looked for {', '.join(paths)}", file=paths[0],
                    reason="missing_file",
                    fix=fix or "check source.path, or download the data (see docs/data.md)")


def pick(row: dict, *names, default=None):
    """The first of several possible column names present in a hub-schema row."""
    for n in names:
        if n in row:
            return row[n]
    return default
