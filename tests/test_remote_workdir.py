"""A gs:// workdir: every file under it goes through etils.epath; nothing lands in a local `gs:` dir.

Real GCS is out of reach in tests. Without TensorFlow, epath sends gs:// paths to its fsspec
backend, which asks `fsspec.filesystem("gcs")` (gcsfs in production). A fake filesystem is
registered for the gs/gcs protocols instead: it keeps `gs://bucket/key` under tmp_path and, like
GCS, refuses to append to an object. So epath's real gs:// code path runs, only the storage is
fake. Orbax is not covered: it writes array data through tensorstore's own GCS driver.
"""
import json
import logging
import os
import sys

import fsspec
import pytest
from etils import epath
from etils.epath import backend as epath_backend
from fsspec.implementations.local import LocalFileSystem

from xtreme_jax import checkpoint as ckpt_lib
from xtreme_jax import config as C
from xtreme_jax import context, files, handoff, metrics, phases, report, train_loop
from xtreme_jax.config import ConfigError
from xtreme_jax.tasks import get_task

RESULTS = {"xnli": {"en": {"accuracy": 84.1}, "de": {"accuracy": 78.25}},
           "xquad": {"en": {"exact_match": 70.0, "f1": 80.0}, "de": {"exact_match": 60.0, "f1": 75.0}}}
META = {"git_commit": "abc", "written_at": "2026-01-01T00:00:00+00:00", "seed": 0}


class FakeGCS(LocalFileSystem):
    """gs://bucket/key -> <root>/bucket/key on local disk, with the GCS rules that matter here: a
    write needs no parent "directory", and an object cannot be appended to."""
    protocol = ("gs", "gcs")
    root = ""

    def __init__(self, *args, **kwargs):  # epath passes gcsfs options (finalize_on_close=True)
        super().__init__(auto_mkdir=True)

    @classmethod
    def _strip_protocol(cls, path):
        path = os.fspath(path)
        for prefix in ("gs://", "gcs://"):
            if path.startswith(prefix):
                return os.path.join(cls.root, path[len(prefix):]).rstrip("/")
        return super()._strip_protocol(path)

    def _open(self, path, mode="rb", **kwargs):
        if "a" in mode:
            raise NotImplementedError("GCS objects cannot be appended to")
        return super()._open(path, mode=mode, **kwargs)


class EpathEventWriter:
    """Stands in for tensorboardX's GCS writer (which calls google-cloud-storage itself): the same
    whole-object upload on every flush, through epath so the bytes land in the fake bucket."""

    def __init__(self, path):
        self.path, self.data = path, b""

    def write(self, data):
        self.data += data

    def flush(self):
        epath.Path(self.path).write_bytes(self.data)

    def close(self):
        self.flush()


class EpathEventWriterFactory:
    def open(self, path):
        return EpathEventWriter(path)

    def directory_check(self, path):
        pass


@pytest.fixture
def gcs(tmp_path, monkeypatch):
    """Returns the local folder that holds the fake buckets; cwd and HOME are inside tmp_path."""
    FakeGCS.root = str(tmp_path / "gcs")
    registry = sys.modules["fsspec.registry"]._registry
    for proto in ("gs", "gcs"):
        monkeypatch.delitem(registry, proto, raising=False)  # restored (gcsfs or nothing) after
        fsspec.register_implementation(proto, FakeGCS, clobber=True)
    # epath caches one filesystem per protocol: forget any earlier one, before and after.
    cache_clear = epath_backend._FileSystemSpecBackend._get_filesystem.cache_clear
    cache_clear()
    from tensorboardX import record_writer
    monkeypatch.setitem(record_writer.REGISTERED_FACTORIES, "gs", EpathEventWriterFactory())
    monkeypatch.setattr(record_writer, "GCS_ENABLED", True)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # a path mistaken for a local one would land here
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    yield tmp_path / "gcs"
    cache_clear()
    stray = [p for p in tmp_path.rglob("gs:*")]
    assert not stray, f"a gs:// path was used as a local path: {stray}"


def test_epath_takes_its_fsspec_path_to_the_fake(gcs):
    p = epath.Path("gs://bucket/a/b.txt")
    assert p._backend is epath_backend.fsspec_backend  # not TensorFlow's gfile, not os
    p.write_text("x")
    assert (gcs / "bucket" / "a" / "b.txt").read_text() == "x"
    with pytest.raises(NotImplementedError):
        p.open("a")


def test_write_atomic_on_gcs_and_relative_local(gcs, tmp_path):
    path = "gs://bucket/run/sub/f.json"
    assert files.write_atomic(path, "été\n") == path
    assert (gcs / "bucket" / "run" / "sub" / "f.json").read_bytes() == "été\n".encode()
    files.write_atomic(path, b"new")
    assert epath.Path(path).read_bytes() == b"new"
    # Local: relative path, temp file + os.replace, 0644, no temp file left behind.
    assert files.write_atomic("rel/dir/f.txt", b"abc") == "rel/dir/f.txt"
    local = tmp_path / "cwd" / "rel" / "dir"
    assert (local / "f.txt").read_bytes() == b"abc"
    assert oct((local / "f.txt").stat().st_mode & 0o777) == oct(0o644)
    assert os.listdir(local) == ["f.txt"]


def test_metrics_jsonl_and_tensorboard_on_gcs(gcs):
    mdir = "gs://bucket/run/intermediate/metrics"
    obj = gcs / "bucket" / "run" / "intermediate" / "metrics" / "train.jsonl"
    log = metrics.MetricsLog(mdir, flush_secs=0)  # every write uploads
    log.write(2, {"loss": 1.5})
    assert [json.loads(l) for l in obj.read_text().splitlines()] == [{"step": 2, "loss": 1.5}]
    log.write(4, {"loss": 1.25, "note": "x"})
    log.close()
    # A restarted run keeps what the first wrote; between flushes the object is unchanged.
    log = metrics.MetricsLog(mdir, flush_secs=3600)
    log.write(6, {"loss": 1.0})
    assert len(obj.read_text().splitlines()) == 2
    log.close()  # the loop closes the log on preemption too
    assert [json.loads(l) for l in obj.read_text().splitlines()] == [
        {"step": 2, "loss": 1.5}, {"step": 4, "loss": 1.25, "note": "x"}, {"step": 6, "loss": 1.0}]
    events = list((obj.parent / "tensorboard").iterdir())  # tensorboardX wrote gs:// itself
    assert events and all(e.name.startswith("events.out.tfevents") and b"loss" in e.read_bytes()
                           for e in events)


def test_tensorboard_stays_local_and_says_so_without_a_gcs_client(gcs, tmp_path, monkeypatch, caplog):
    from tensorboardX import record_writer
    monkeypatch.setattr(record_writer, "GCS_ENABLED", False)
    caplog.set_level(logging.WARNING, logger="xtreme_jax.metrics")
    log = metrics.MetricsLog("gs://bucket/run/target/metrics", flush_secs=0)
    log.write(1, {"loss": 2.0})
    log.close()
    local = files.local_dir_for("tensorboard", "gs://bucket/run/target/metrics/tensorboard")
    assert local.startswith(str(tmp_path / "home" / ".cache" / "xtreme_jax" / "tensorboard"))
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(local))
    assert local in caplog.text and "written locally" in caplog.text
    assert not (gcs / "bucket" / "run" / "target" / "metrics" / "tensorboard").exists()
    assert (gcs / "bucket" / "run" / "target" / "metrics" / "train.jsonl").read_text().count("\n") == 1


def test_check_workdir_on_gcs_detects_another_config(gcs):
    workdir, cfg = "gs://bucket/run", C.base_config()
    phases.check_workdir(cfg, workdir)
    stored = json.loads((gcs / "bucket" / "run" / "config.json").read_text())
    assert stored == json.loads(cfg.to_json_best_effort(sort_keys=True))
    phases.check_workdir(cfg, workdir)  # same config: fine
    other = C.base_config()
    other.seed = 1
    with pytest.raises(ConfigError, match="differs in: seed"):
        phases.check_workdir(other, workdir)
    # new_run: the old phases go, the new config is recorded.
    files.write_json("gs://bucket/run/target/results/summary.json", {"steps": 4})
    other.new_run = True
    phases.check_workdir(other, workdir)
    assert not (gcs / "bucket" / "run" / "target").exists()
    assert json.loads((gcs / "bucket" / "run" / "config.json").read_text())["seed"] == 1


def test_finished_phase_is_skipped_on_restart(gcs, monkeypatch):
    summary = {"phase": "target", "steps": 4, "heads": {"xnli": ["classification", 3]},
               "best_dev_score": None}
    files.write_json("gs://bucket/run/target/results/summary.json", summary)
    assert json.loads((gcs / "bucket" / "run" / "target" / "results" / "summary.json").read_text()) == summary

    loaded = []

    class NoRun:  # any use beyond these would fail: nothing is rebuilt for a finished phase
        workdir, config, model_cfg, mesh = "gs://bucket/run", C.base_config(), "cfg", "mesh"
    monkeypatch.setattr(train_loop.Handoff, "load", lambda *a, **k: loaded.append((a, k)) or "handoff")
    assert train_loop.train_phase("target", C.train_phase(), NoRun(), None) == (summary, "handoff")
    assert loaded == [(("gs://bucket/run/target", "cfg", "mesh"), {"keep_heads": True})]


def test_report_files_on_gcs_equal_local_ones(gcs, tmp_path):
    remote = report.write_report("gs://bucket/run/evaluate/results", RESULTS, META)
    local = report.write_report(tmp_path / "local", RESULTS, META)
    assert set(remote) == set(local) == {"json", "markdown", "csv", "csv_long", "heatmap"}
    for kind, path in remote.items():
        assert path.startswith("gs://bucket/run/evaluate/results/")
        name = os.path.basename(path)
        assert (gcs / "bucket" / "run" / "evaluate" / "results" / name).read_bytes() == \
            (tmp_path / "local" / name).read_bytes(), kind
    assert report.read_results(remote["json"]) == (RESULTS, META)
    assert report.read_long_csv(remote["csv_long"]) == RESULTS


def test_submission_files_on_gcs(gcs, tmp_path):
    from xtreme_jax.evaluation import EvalResults, TaskResult
    res = EvalResults({"xnli": TaskResult("xnli", {}, {"de": ["entailment", "neutral"]}, {"split": "test"})})
    [remote] = res.write_submission("gs://bucket/run/evaluate/results/predictions")
    [local] = res.write_submission(str(tmp_path / "predictions"))
    assert remote == "gs://bucket/run/evaluate/results/predictions/xnli/" + os.path.basename(local)
    assert epath.Path(remote).read_bytes() == open(local, "rb").read() == b"entailment\nneutral\n"


def test_hf_export_to_gcs_is_built_locally_then_uploaded(gcs, monkeypatch):
    import numpy as np
    from flax import nnx
    written = {"config.json": b"{}", "model.safetensors": b"weights"}

    def export_hf(out_dir, cfg, encoder, **kw):  # models.hf writes a local folder only
        assert not files.is_remote(out_dir) and encoder["w"].tolist() == [0.0]
        os.makedirs(out_dir)
        for name, data in written.items():
            with open(os.path.join(out_dir, name), "wb") as f:
                f.write(data)
    monkeypatch.setattr(handoff.hf_lib, "export_hf", export_hf)

    class Context:  # only what export_hf reads
        config, model_cfg, hf_type, hf_path = C.base_config(), None, None, None
    files.write_atomic("gs://bucket/run/target/hf/stale.bin", b"from an earlier export")
    handoff.export_hf(Context, "gs://bucket/run/target/hf", nnx.State({"encoder": {"w": np.zeros(1)}}), {})
    out = gcs / "bucket" / "run" / "target" / "hf"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == written


def test_checkpoint_housekeeping_on_gcs(gcs):
    """Leftovers of killed saves, best/<step> pruning and the meta read of prune_best."""
    pdir = "gs://bucket/run/target"
    for key in ("5.orbax-checkpoint-tmp-123/x", "checkpoints/4/state/x", "best/3/x", "best/6/x", "best/9/x"):
        files.write_atomic(f"{pdir}/{key}", b"1")
    files.write_atomic(f"{pdir}/checkpoints/4/meta/metadata", json.dumps({"best_step": 3, "step": 4}))
    ckpt_lib.remove_tmp_dirs(pdir)
    assert sorted(os.listdir(gcs / "bucket" / "run" / "target")) == ["best", "checkpoints"]
    assert ckpt_lib.read_meta(f"{pdir}/checkpoints", 4) == {"best_step": 3, "step": 4}
    assert ckpt_lib.read_meta(f"{pdir}/checkpoints", 7) is None

    class Ckpt:  # the retained checkpoints (step 4 refers to best/3)
        directory = f"{pdir}/checkpoints"

        def steps(self):
            return [4]
    ckpt_lib.prune_best(f"{pdir}/best", Ckpt(), {}, current=9)
    assert sorted(os.listdir(gcs / "bucket" / "run" / "target" / "best")) == ["3", "9"]
    assert ckpt_lib.orbax_path(f"{pdir}/final") == f"{pdir}/final"  # handed to orbax unchanged


def test_feature_cache_stays_local_for_a_remote_workdir(gcs, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="xtreme_jax.context")
    cfg = C.base_config()
    a = context.default_cache_dir(cfg, "gs://bucket/run")
    assert a.startswith(str(tmp_path / "home" / ".cache" / "xtreme_jax" / "features" / ""))
    assert a in caplog.text
    assert context.default_cache_dir(cfg, "gs://bucket/run/") == a  # one run, one cache
    assert context.default_cache_dir(cfg, "gs://bucket/other") != a
    assert context.default_cache_dir(cfg, "run") == os.path.join("run", "cache")  # local: as before
    cfg.data.cache_dir = "/data/features"
    assert context.default_cache_dir(cfg, "gs://bucket/run") == "/data/features"
    cfg.data.cache_dir = "gs://bucket/cache"
    with pytest.raises(ConfigError, match="cache_dir"):
        context.default_cache_dir(cfg, "gs://bucket/run")


def test_run_with_a_remote_workdir_caches_features_locally(gcs, tmp_path):
    """Run() end to end up to the features: the memory-mapped cache is written on this host."""
    from test_data_support import tokenizer_dir
    data = tmp_path / "xnli"
    data.mkdir()
    lines = [f"the cat {w}\ta dog {w}\t{lab}" for w in ("runs", "sleeps", "sees") * 4
             for lab in ("entailment", "neutral", "contradiction")]
    (data / "train-en.tsv").write_text("\n".join(lines) + "\n")
    cfg = C.base_config()
    cfg.phases = "evaluate"
    cfg.model.tokenizer = tokenizer_dir()
    cfg.evaluate.batch_size = 8
    run = context.build_context(cfg, "gs://bucket/run")
    assert run.cache_dir == files.local_dir_for("features", "gs://bucket/run")
    src = C.source("official", str(data))
    feats = run.features(get_task("xnli"), "train", "en", src)
    assert feats.num_examples == len(lines)
    assert [n for n in os.listdir(run.cache_dir) if n.startswith("xnli.train.en.")]
    assert not gcs.exists()  # nothing went to the bucket


def test_relative_local_workdir_works_as_before(tmp_path, monkeypatch):
    import jax.numpy as jnp
    monkeypatch.chdir(tmp_path)
    cfg = C.base_config()
    phases.check_workdir(cfg, "run")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["seed"] == 0
    assert context.default_cache_dir(cfg, "run") == os.path.join("run", "cache")
    for step in (1, 2):  # appended to, as before (a restarted run adds to the same file)
        log = metrics.MetricsLog("run/target/metrics")
        log.write(step, {"loss": 1.0})
        log.close()
    assert (tmp_path / "run" / "target" / "metrics" / "train.jsonl").read_text().count("\n") == 2
    assert (tmp_path / "run" / "target" / "metrics" / "tensorboard").is_dir()
    assert ckpt_lib.orbax_path("run/target/final") == str(tmp_path / "run" / "target" / "final")
    state = {"w": jnp.arange(4.0)}
    ckpt_lib.save_model("run/target/final", state)
    assert (tmp_path / "run" / "target" / "final").is_dir()
    assert ckpt_lib.restore_model("run/target/final", state)["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
    (tmp_path / "run" / "target" / "best" / "3").mkdir(parents=True)
    (tmp_path / "run" / "target" / "best" / "7").mkdir()
    (tmp_path / "run" / "target" / "2.orbax-checkpoint-tmp-9").mkdir()
    ckpt_lib.remove_tmp_dirs("run/target")
    ckpt_lib.prune_best("run/target/best", None, {}, current=7)
    assert sorted(os.listdir(tmp_path / "run" / "target")) == ["best", "final", "metrics"]
    assert os.listdir(tmp_path / "run" / "target" / "best") == ["7"]
