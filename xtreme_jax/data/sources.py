"""Where a task's raw examples come from, chosen in the config.

    Source(type="official", path=DIR)   the official XTREME download layout (or the original
                                        release files of an intermediate task) under DIR
    Source(type="local", path=DIR)      files in the Hugging Face hub's schema under DIR:
                                        {split}-{lang}.{parquet,jsonl,json,arrow} or a
                                        `save_to_disk` directory {split}-{lang}/ ({split}.* for
                                        English-only tasks); "dev" also matches "validation"
    Source(type="hub")                  `datasets.load_dataset(hub id, config)`; the task knows
                                        its default ids/configs (DESIGN §3); path/config override
    Source(type="tfds", path=NAME)      TensorFlow Datasets, only if tensorflow_datasets imports

Hub-schema rows go through the same per-task row parser whether they come from the hub, local
files or TFDS, so a local parquet copy of a hub dataset gives exactly what the hub gives.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any, Iterator

from xtreme_jax.data import formats
from xtreme_jax.data.errors import DataError, OnError

SOURCE_TYPES = ("official", "local", "hub", "tfds")
LOCAL_EXTS = ("parquet", "jsonl", "json", "arrow", "csv")
_SPLIT_ALIASES = {"dev": ("dev", "validation"), "validation": ("validation", "dev"),
                  "test": ("test",), "train": ("train",)}


@dataclasses.dataclass(frozen=True)
class Source:
    type: str = "official"
    path: str = ""        # data dir (official/local), hub id override (hub), dataset name (tfds)
    config: str = ""      # hub/tfds config override; may contain {lang}
    split: str = ""       # override of the split name inside the source
    cache_dir: str = ""   # datasets' cache dir (default: HF_DATASETS_CACHE)

    def __post_init__(self):
        if self.type not in SOURCE_TYPES:
            raise DataError(f"unknown source type {self.type!r}", field="source.type",
                            reason="config", fix=f"use one of {SOURCE_TYPES}")
        if self.type in ("official", "local") and not self.path:
            raise DataError(f"source type {self.type!r} needs a data directory", field="source.path",
                            reason="config", fix="set source.path to the directory holding the files")

    def describe(self) -> str:
        return f"{self.type}:{self.path}" + (f"[{self.config}]" if self.config else "")


def as_source(spec: Any) -> Source:
    """Source from a Source, a mapping (e.g. an ml_collections ConfigDict), or "type:path"."""
    if isinstance(spec, Source):
        return spec
    if spec is None:
        return Source(type="hub")
    if isinstance(spec, str):
        kind, _, path = spec.partition(":")
        if kind not in SOURCE_TYPES:  # a bare directory means the official layout
            return Source(type="official", path=spec)
        return Source(type=kind, path=path)
    d = dict(spec.items() if hasattr(spec, "items") else spec)
    return Source(**{k: (v if v is not None else "") for k, v in d.items()})


# --- fingerprints (cache keys) --------------------------------------------------------------
def path_fingerprint(path: str, max_files: int = 20000) -> str:
    """Cheap content fingerprint of a file or directory: names, sizes and mtimes, no reading."""
    h = hashlib.sha1()
    if os.path.isfile(path):
        st = os.stat(path)
        h.update(f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}".encode())
        return h.hexdigest()
    n = 0
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(root, name)
            try:
                st = os.stat(p)
            except OSError:
                continue
            h.update(f"{os.path.relpath(p, path)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
            n += 1
            if n >= max_files:
                return h.hexdigest()
    h.update(os.path.abspath(path).encode())
    return h.hexdigest()


def listed_languages(source: Source) -> tuple:
    """The languages a local or official copy lists in <dir>/languages.txt (one code per line), or ().

    A copy can hold languages the registry does not know (the demo world's translations of its
    intermediate tasks); the file is what says so. Without it the registry's list applies."""
    if source.type not in ("official", "local") or not source.path:
        return ()
    path = os.path.join(source.path, "languages.txt")
    if not os.path.isfile(path):
        return ()
    with open(path, encoding="utf-8") as f:
        return tuple(l.strip() for l in f if l.strip())


def source_fingerprint(source: Source) -> str:
    if source.type in ("official", "local"):
        return f"{source.type}:{path_fingerprint(source.path)}"
    return source.describe()


# --- rows from `datasets` -------------------------------------------------------------------
def _offline_message(what: str, err: Exception) -> str:
    return (f"could not load {what} from the Hugging Face hub ({type(err).__name__}: {err}). "
            "If you are offline or the hub is unreachable, point the config at local files instead: "
            "source.type='official' with source.path=<dir in the official XTREME download layout> "
            "(google-research/xtreme scripts/download_data.sh), or source.type='local' with "
            "source.path=<dir holding {split}-{lang}.parquet/.jsonl/.arrow files in the hub's "
            "schema> (see docs/data.md)")


def _is_unreachable(err: BaseException) -> bool:
    """Network / offline failures, whichever HTTP stack raised them (requests, httpx, hub)."""
    names = {"ConnectError", "ConnectTimeout", "ReadTimeout", "OfflineModeIsEnabled",
             "LocalEntryNotFoundError", "DatasetNotFoundError", "RepositoryNotFoundError",
             "HfHubHTTPError", "HTTPError"}
    e = err
    while e is not None:
        if isinstance(e, (ConnectionError, TimeoutError)) or type(e).__name__ in names:
            return True
        e = e.__cause__ or e.__context__
    return False


def load_hub(repo: str, config: str | None, split: str, cache_dir: str = ""):
    """`datasets.load_dataset` with one clear error when the hub cannot be reached."""
    import datasets
    what = f"{repo!r} config {config!r} split {split!r}"
    try:
        return datasets.load_dataset(repo, config or None, split=split, cache_dir=cache_dir or None)
    except Exception as e:  # noqa: BLE001  (HF_DATASETS_OFFLINE=1 raises ConnectionError, fast)
        if _is_unreachable(e) or isinstance(e, FileNotFoundError):
            raise DataError(_offline_message(what, e), reason="offline") from e
        if isinstance(e, ValueError) and "split" in str(e).lower():
            raise DataError(f"hub dataset {what}: {e}", reason="missing_split",
                            fix="set source.split to one of its splits") from e
        raise


def find_local(directory: str, split: str, lang: str | None) -> tuple[str, bool]:
    """(path, per_language) of the local hub-schema file or save_to_disk dir for (split, lang).

    Looks for {split}-{lang}.*, {lang}/{split}.* and then {split}.*; the last one may hold
    every language (per_language False). Clear error if none exists.
    """
    if os.path.isfile(directory):
        return directory, False
    stems = []
    for s in _SPLIT_ALIASES.get(split, (split,)):
        if lang:
            stems += [(f"{s}-{lang}", True), (os.path.join(lang, s), True)]
        stems.append((s, False))
    tried = []
    for stem, per_lang in stems:
        base = os.path.join(directory, stem)
        if os.path.isdir(base) and (os.path.exists(os.path.join(base, "dataset_info.json"))
                                     or os.path.exists(os.path.join(base, "state.json"))):
            return base, per_lang
        for ext in LOCAL_EXTS:
            tried.append(f"{stem}.{ext}")
            if os.path.isfile(f"{base}.{ext}"):
                return f"{base}.{ext}", per_lang
            why = formats.not_a_file(f"{base}.{ext}")
            if why and not os.path.isdir(base):  # the file the split would be read from, broken
                raise DataError(f"the data file for split {split!r}" + (f", language {lang!r}" if lang else "")
                                + f" {why}", file=f"{base}.{ext}", reason="missing_file",
                                fix="replace it with the file itself (or a save_to_disk dir without the extension)")
    raise DataError(f"no local file for split {split!r}" + (f", language {lang!r}" if lang else ""),
                    file=directory, reason="missing_file",
                    fix=f"put one of {tried[:6]}... (hub schema) or a save_to_disk dir there")


def load_local(path: str, cache_dir: str = ""):
    """A local parquet/jsonl/json/arrow/csv file or a save_to_disk directory as a Dataset."""
    import datasets
    if os.path.isdir(path):
        ds = datasets.load_from_disk(path)
        if isinstance(ds, datasets.DatasetDict):
            raise DataError("a DatasetDict directory; point at one split's directory", file=path,
                            reason="config", fix=f"use {path}/<split>")
        return ds
    ext = path.rsplit(".", 1)[-1]
    builder = {"jsonl": "json", "json": "json"}.get(ext, ext)
    if os.path.getsize(path) == 0:
        raise DataError("the file is empty (0 bytes)", file=path, reason="empty",
                        fix="copy the file again, or remove it")
    if ext in ("jsonl", "json", "csv"):
        formats.check_utf8(path)
    try:
        return datasets.load_dataset(builder, data_files={"data": path}, split="data",
                                     cache_dir=cache_dir or None)
    except Exception as e:  # noqa: BLE001  pyarrow / datasets raise many types for a damaged file
        if ext == "jsonl":  # pyarrow says "row 6" (0-based, blank lines not counted): find the line
            for _ in formats.read_jsonl(path, OnError()):
                pass
        cause = e.__cause__ or e
        raise DataError(f"cannot read it as {ext} ({type(cause).__name__}: {str(cause)[:300]})", file=path,
                        reason="unreadable", fix=f"the file is truncated, damaged or not {ext}: copy it "
                                                 "again or convert it") from None


def dataset_rows(ds) -> Iterator[dict]:
    """Rows of a `datasets.Dataset` with ClassLabel ids turned into their names.

    Label columns then hold names whether the hub stores ClassLabel ints or plain strings;
    -1 (no gold label, e.g. SNLI) becomes None.
    """
    import datasets
    decode = {}
    for name, feat in ds.features.items():
        if isinstance(feat, datasets.ClassLabel):
            decode[name] = (False, feat.names)
        elif isinstance(feat, (datasets.Sequence, datasets.List)) and isinstance(
                getattr(feat, "feature", None), datasets.ClassLabel):
            decode[name] = (True, feat.feature.names)

    def name_of(names, v):
        return None if v is None or v < 0 else names[v]

    for batch in ds.iter(batch_size=1000):
        cols = list(batch)
        for i in range(len(batch[cols[0]]) if cols else 0):
            row = {c: batch[c][i] for c in cols}
            for c, (seq, names) in decode.items():
                row[c] = [name_of(names, v) for v in row[c]] if seq else name_of(names, row[c])
            yield row


def load_tfds_rows(name: str, config: str, split: str) -> Iterator[dict]:
    try:
        import tensorflow_datasets as tfds  # optional extra
    except ImportError as e:
        raise DataError("source type 'tfds' needs tensorflow_datasets, which is not installed",
                        reason="config", fix="pip install tensorflow-datasets tensorflow, or use "
                        "source.type='hub'/'local'/'official'") from e
    full = f"{name}/{config}" if config else name
    ds = tfds.load(full, split=split)
    for ex in tfds.as_numpy(ds):
        yield {k: _decode_tf(v) for k, v in ex.items()}


def _decode_tf(v):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, dict):
        return {k: _decode_tf(x) for k, x in v.items()}
    if hasattr(v, "tolist"):
        return _decode_tf(v.tolist())
    if isinstance(v, list):
        return [_decode_tf(x) for x in v]
    return v

