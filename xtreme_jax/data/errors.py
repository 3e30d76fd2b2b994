"""Errors for bad input data, and the opt-in "skip and count" policy for noisy files.

Every reader reports a bad record through an `OnError` policy. The default policy raises a
`DataError` at once, naming the file, the line (or record id) and the field, and saying how to
fix it. `OnError(skip=True)` instead counts the bad record by reason and goes on; its
`summary()` says what was skipped, so a noisy dataset can still be used knowingly.
"""
from __future__ import annotations

import collections
import logging

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A problem with input data, located as precisely as the format allows."""

    def __init__(self, problem: str, *, file=None, line=None, field=None, fix=None,
                 reason: str = "bad_record"):
        self.problem, self.file, self.line, self.field, self.fix = problem, file, line, field, fix
        self.reason = reason
        where = ""
        if file is not None:
            where = str(file) + ("" if line is None else f":{line}" if isinstance(line, int)
                                 else f" ({line})")
        elif line is not None:
            where = f"line {line}" if isinstance(line, int) else str(line)
        parts = [p for p in (where, f"field {field!r}" if field is not None else "") if p]
        msg = ", ".join(parts)
        msg = f"{msg}: {problem}" if msg else problem
        if fix:
            msg += f" -- fix: {fix}"
        super().__init__(msg)


class OnError:
    """Policy for bad records. `skip=False` (default) raises; `skip=True` skips and counts."""

    def __init__(self, skip: bool = False, keep: int = 5):
        self.skip = skip
        self.keep = keep
        self.counts: collections.Counter = collections.Counter()
        self.messages: list[str] = []
        self.files: list[str] = []   # files read under this policy (named when nothing was found)

    def seen(self, path) -> None:
        if str(path) not in self.files:
            self.files.append(str(path))

    def __call__(self, err: DataError) -> None:
        if not self.skip:
            raise err
        self.counts[err.reason] += 1
        if len(self.messages) < self.keep:
            self.messages.append(str(err))

    @property
    def skipped(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> dict:
        return {"skipped": self.skipped, "by_reason": dict(self.counts), "first": list(self.messages)}

    def log_summary(self, what: str) -> None:
        if self.skipped:
            log.warning("%s: skipped %d bad records %s; first: %s", what, self.skipped,
                        dict(self.counts), self.messages[:1])


def as_policy(errors) -> OnError:
    """Accepts None (raise), "raise", "skip", or an OnError instance."""
    if errors is None or errors == "raise":
        return OnError(skip=False)
    if errors == "skip":
        return OnError(skip=True)
    if isinstance(errors, OnError):
        return errors
    raise ValueError(f"errors must be 'raise', 'skip' or an OnError, got {errors!r}")
