"""The results folder of an evaluation (RUN/evaluate/results, or OUT/evaluate/results of
`python -m xtreme_jax.evaluate`): which checkpoint it belongs to, and replacing its files all at once.

Every folder holds provenance.json naming the checkpoint that produced it. Before any compute,
`check_folder` refuses a folder that holds another checkpoint's results (or files of unknown
origin); the same checkpoint is re-evaluated in place. `staged` then writes the new set of files
into a sibling folder and swaps it in with two renames, so a kill leaves the old set or the new
one, never a mix (an interrupted swap is undone by the next `check_folder`). On an object store
(gs://) folders cannot be renamed: the old set is removed first, provenance.json written first
and results.json last, so an interrupted write is visible as a folder without results.json.
"""
from __future__ import annotations

import contextlib
import datetime
import glob
import json
import logging
import os
import shutil
import tempfile
import uuid

from etils import epath

from xtreme_jax import report, scoring
from xtreme_jax.config import ConfigError
from xtreme_jax.evaluation import results as results_lib
from xtreme_jax.evaluation.checkpoints import location
from xtreme_jax.evaluation.scores import OFFICIAL_TASKS
from xtreme_jax.files import is_remote, write_json
from xtreme_jax.processes import alive
from xtreme_jax.scoring.submission import SUBMISSION_TASKS
from xtreme_jax.tasks.languages import BENCHMARKS
from xtreme_jax.workdir import WriteError, write_error

log = logging.getLogger(__name__)
PROVENANCE = "provenance.json"


def record(checkpoint: str, **facts) -> dict:
    """What provenance.json holds: the checkpoint (its location, the identity compared) + facts."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return {"checkpoint": checkpoint, **facts, "written_at": now}


def _staging(out_dir: str, kind: str) -> list:
    """Sibling folders .NAME.new-PID-xxx (being written) or .NAME.old-PID-xxx (set aside), oldest
    first, as (path, pid of the process that made it)."""
    parent, name = os.path.split(os.path.abspath(out_dir))
    prefix = f".{name}.{kind}-"
    found = sorted(glob.glob(os.path.join(parent, glob.escape(prefix) + "*")), key=os.path.getmtime)
    return [(p, os.path.basename(p)[len(prefix):].split("-")[0]) for p in found]


def _alive(pid: str) -> bool:
    """Whether another process of this id still runs on this host (this one's own staging is not alive)."""
    return alive(pid) and int(pid) != os.getpid()


def recover(out_dir: str) -> None:
    """Undoes an interrupted swap: a killed staging folder is removed, and if the kill came between
    the two renames (no folder, the old one set aside) the old set is put back."""
    if is_remote(out_dir):
        return
    for stage, pid in _staging(out_dir, "new"):
        if not _alive(pid):
            shutil.rmtree(stage, ignore_errors=True)
    old = [(p, pid) for p, pid in _staging(out_dir, "old") if not _alive(pid)]
    if old and not os.path.exists(out_dir):
        os.rename(old[-1][0], out_dir)
        log.warning("%s: put back the previous results (a replacement was interrupted)", out_dir)
        old = old[:-1]
    for path, _ in old:
        shutil.rmtree(path, ignore_errors=True)


def check_folder(out_dir: str, rec: dict, *, repair: bool = True) -> dict | None:
    """Before compute: the folder must be absent, empty, or hold results of the same checkpoint.

    Returns the previous provenance (None if there were no results); raises ConfigError naming
    both checkpoints otherwise. `repair`: undo an interrupted swap first (the writing process
    only: process 0 of a multi-host run).
    """
    if repair:
        recover(out_dir)
    path = epath.Path(out_dir)
    if not path.exists():
        return None
    if not path.is_dir():
        raise ConfigError(f"{out_dir} is a file, not a results folder; use another --workdir")
    if not any(path.iterdir()):
        return None
    fix = f"Use another --workdir for this checkpoint, or remove {out_dir} to replace them"
    prov = path / PROVENANCE
    if not prov.exists():
        old = _legacy(path)
        if old is None:
            raise ConfigError(f"{out_dir} holds files that no checkpoint evaluation wrote (no {PROVENANCE}); "
                              f"the results of {rec['checkpoint']} would be mixed with them. {fix}")
    else:
        try:
            old = json.loads(prov.read_bytes())
            old["checkpoint"]
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"{prov} is damaged: cannot tell which checkpoint {out_dir} belongs to. {fix}") from None
    owner = old["checkpoint"]
    if owner != rec["checkpoint"]:
        raise ConfigError(f"{out_dir} holds the results of checkpoint {owner} (written {old.get('written_at', '?')}); "
                          f"this evaluation is of {rec['checkpoint']}. {fix}")
    return old


def _legacy(path) -> dict | None:
    """The owner of a run's evaluate/results written before provenance.json existed: the phase
    its results.json says was handed on, in the same run."""
    try:
        meta = json.loads((path / "results.json").read_bytes())["metadata"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not meta.get("handoff_phase") or path.parent.name != "evaluate":
        return None
    return {"checkpoint": location(os.fspath(path.parent.parent / meta["handoff_phase"])),
            "written_at": meta.get("written_at", "?")}


@contextlib.contextmanager
def staged(out_dir: str, rec: dict):
    """Yields the folder to write every file of the new result set into (provenance.json is
    already there); on success the set replaces `out_dir` whole, on an exception `out_dir` keeps
    its old files. Write results.json last (an object store shows the set half-written)."""
    if is_remote(out_dir):
        epath.Path(out_dir).rmtree(missing_ok=True)
        write_json(os.path.join(out_dir, PROVENANCE), rec)
        yield out_dir
        return
    parent, name = os.path.split(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    stage = tempfile.mkdtemp(dir=parent, prefix=f".{name}.new-{os.getpid()}-")
    old = ""
    try:
        os.chmod(stage, 0o755)  # mkdtemp's 0700 would hide the results from other users
        write_json(os.path.join(stage, PROVENANCE), rec)
        yield stage
        old = os.path.join(parent, f".{name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        if os.path.exists(out_dir):
            os.rename(out_dir, old)
        os.rename(stage, out_dir)
    except BaseException as e:
        shutil.rmtree(stage, ignore_errors=True)
        if not os.path.exists(out_dir) and os.path.exists(old):
            os.rename(old, out_dir)
        if isinstance(e, OSError) and not isinstance(e, WriteError):  # a full disk: one line, old set kept
            raise write_error("the evaluation results (the previous ones there are kept)", out_dir, e) from None
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_results(out_dir: str, rec: dict, done: dict, metadata: dict, *, benchmark: str,
                  write_submission: bool) -> dict:
    """Writes one evaluation's files (process 0), replacing the folder whole: predictions/,
    aggregate.json, results.md / .csv, heatmap.png, results.json (last). `done`: {task: TaskResult}.
    Returns {"scores", "unscored", "notes", "predictions": {task: folder}}."""
    scores = {t: r.scores for t, r in done.items() if r.scores}
    unscored = {t: r.unscored for t, r in done.items() if r.unscored}
    notes = results_lib.notes(done)
    pred_dirs = {}
    with staged(out_dir, rec) as folder:
        for name, res in done.items():
            split = res.info.get("split")
            # Leaderboard files of test tasks when asked; predictions without a score always.
            langs = list(res.predictions) if write_submission and split == "test" else list(res.unscored)
            for lang in langs:
                _write_prediction(os.path.join(folder, "predictions"), res, split, lang)
            if langs:
                pred_dirs[name] = os.path.join(out_dir, "predictions", name)
        bench = BENCHMARKS[benchmark]
        # The benchmark's average of a task is over its own language list (XTREME and XTREME-R differ).
        official = {t: {lg: m for lg, m in r.items() if t not in bench or lg in bench[t]}
                    for t, r in scores.items() if t in OFFICIAL_TASKS}
        if any(official.values()):
            write_json(os.path.join(folder, "aggregate.json"),
                       scoring.aggregate({t: r for t, r in official.items() if r}, benchmark))
        report.write_report(folder, scores, metadata, unscored=unscored, notes=notes)
    return {"scores": scores, "unscored": unscored, "notes": notes, "predictions": pred_dirs}


def _write_prediction(folder: str, res, split: str, lang: str) -> str:
    """The leaderboard file of a test set (predictions/<task>/test-<lang>.<ext>), else JSON
    (predictions/<task>/<split>-<lang>.json)."""
    if split == "test" and res.task in SUBMISSION_TASKS:
        return scoring.write_submission(folder, res.task, lang, res.predictions[lang])
    return write_json(os.path.join(folder, res.task, f"{split}-{lang}.json"), res.predictions[lang])


def say(out: dict, split: str) -> None:
    """The console lines of what cannot be read as a plain score: notes, then each task with
    languages predicted but not scored (once per task, naming its languages)."""
    for task, note in out["notes"].items():
        print(f"note: {task}: {note}")
    for task, langs in out["unscored"].items():
        where = out["predictions"].get(task, "(not written)")
        print(f"{task}: no score for {' '.join(langs)}: its {split} data has no gold labels; "
              f"predictions written to {where}"
              + (". The official XTREME download strips test labels (the leaderboard scores them); for "
                 "scores evaluate on labelled data: --config.evaluate.split=dev" if split == "test" else ""))
