"""Writing files under a run directory, local or on an object store (gs://): atomic writes and
uploads. Everything that writes results goes through here."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile

from etils import epath


def is_remote(path) -> bool:
    """True for object-store URLs (gs://, s3://, ...): these go through etils.epath."""
    return "://" in os.fspath(path)


def write_atomic(path, data) -> str:
    """Writes `data` (bytes or str, as UTF-8) to `path` so that readers see the old file or the
    new one, never a part; returns the path."""
    path = os.fspath(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    if is_remote(path):
        # One object upload is all-or-nothing on GCS/S3 (no rename needed, and none is cheap there).
        epath.Path(path).write_bytes(data)
        return path
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600 files; keep what the old file had, else the usual 0644.
        mode = stat.S_IMODE(os.stat(path).st_mode) if os.path.exists(path) else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_json(path, obj) -> str:
    """Atomic JSON write (indented, sorted keys), local or gs://."""
    return write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str))


def upload_dir(local, remote) -> list[str]:
    """Copies every file under the local folder `local` to the same relative path under the remote
    folder `remote` (one object each), for writers that only know local files; returns the paths."""
    out = []
    for root, _, files in os.walk(local):
        for name in sorted(files):
            src = os.path.join(root, name)
            dst = epath.Path(remote, os.path.relpath(src, local))
            epath.Path(src).copy(dst, overwrite=True)
            out.append(os.fspath(dst))
    return out


def local_dir_for(kind: str, remote: str) -> str:
    """A local directory standing in for `remote` (what cannot live on an object store)."""
    digest = hashlib.sha1(remote.rstrip("/").encode()).hexdigest()[:16]
    return os.path.join(os.path.expanduser("~"), ".cache", "xtreme_jax", kind, digest)
