"""Training metrics: the FLOPs model and accelerator peaks (MFU), and the metrics log
(train.jsonl + TensorBoard). No grain, no model code: benchmarks import it as it is."""
import functools
import json
import logging
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from xtreme_jax.files import is_remote, local_dir_for, write_atomic
from xtreme_jax.workdir import WriteError, write_error

log = logging.getLogger(__name__)

# bf16 dense peak FLOP/s per chip, matched against jax's device_kind.
PEAK_FLOPS = {"TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5p": 459e12,
              "TPU v6 lite": 918e12, "TPU v6e": 918e12, "H100": 989e12, "H200": 989e12, "A100": 312e12}


def flops_per_token(cfg, seq_len: int, kind: str | None = None, num_labels: int = 0,
                    predicted_fraction: float = 0.0) -> float:
    """Training FLOPs per token: 6 N (non-embedding) + 12 L S d attention (encoder, not causal),
    plus, with a head `kind`, the head's matmuls where they are computed: MLM dense d x d and the
    tied d x V decoder at `predicted_fraction` of the positions (the gathered count /
    tokens, `heads.max_masked`; 1.0 for logits at every position); pooled heads (classification,
    multiple choice) d x d + d x n once per sequence of seq_len; tagging d x n and span d x 2 per
    token. The embedding gather is not a matmul and is not counted."""
    d, L = cfg.hidden_size, cfg.num_layers
    n = L * (4 * d * d + 2 * d * cfg.intermediate_size)
    head = {"mlm": predicted_fraction * (d * d + d * cfg.vocab_size),
            "classification": (d * d + d * num_labels) / seq_len,
            "multiple_choice": (d * d + d) / seq_len,
            "tagging": d * num_labels, "span": 2 * d}.get(kind, 0.0)
    return 6 * (n + head) + 12 * L * seq_len * d


def table_peak(device_kind: str) -> float | None:
    """The chip's peak from PEAK_FLOPS, or None for a device not in the table (e.g. a CPU)."""
    return next((v for k, v in PEAK_FLOPS.items() if k in device_kind), None)


@functools.cache
def peak_flops_per_device() -> float:
    """The table peak of this accelerator, else a measured fp32 matmul (CPU); measured once per
    process, since every phase's MFU divides by it."""
    return table_peak(jax.devices()[0].device_kind) or measured_matmul_peak()


def peak_description() -> str:
    """What MFU is relative to, in words (the summary and the console say it)."""
    kind = jax.devices()[0].device_kind
    peak = peak_flops_per_device()
    if table_peak(kind) is not None:
        return f"the bf16 dense peak of {kind} from the table, {peak / 1e12:.0f} TFLOP/s per device"
    # XLA's CPU GEMM can be slower than PyTorch's (0.71x on the 2-core Xeon of docs/benchmarks.md),
    # so a CPU MFU reads high; benchmarks.bench quotes it against the faster of the two.
    return (f"this machine's measured fp32 matmul peak, {peak / 1e9:.1f} GFLOP/s per {kind} device "
            "(no table peak; a CPU MFU reads high, docs/benchmarks.md)")


def measured_matmul_peak(n: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of an fp32 n^3 matmul on one device (the CPU reference peak)."""
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f(a).block_until_ready()
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / float(np.median(times))


def tensorboard_dir(directory: str) -> str:
    """Where TensorBoard events go. tensorboardX uploads gs:// event files itself (through
    google-cloud-storage, which gcsfs brings); for another scheme, or without that package, the
    events stay on this host and the log says where."""
    tb = os.path.join(directory, "tensorboard")
    if not is_remote(directory):
        return tb
    from tensorboardX import record_writer  # optional at run time: MetricsLog works without it
    if tb.startswith("gs://") and record_writer.GCS_ENABLED:
        return tb
    local = local_dir_for("tensorboard", tb)
    log.warning("TensorBoard events for %s are written locally to %s (tensorboardX cannot write "
                "there: it needs google-cloud-storage for gs://); copy them over to keep them", tb, local)
    return local


class MetricsLog:
    """JSONL + TensorBoard (process 0), written as metrics are fetched.

    Locally train.jsonl is appended to. An object (gs://) cannot be appended to: the whole log is
    kept in memory (starting from what a previous run wrote) and the object is rewritten, one
    atomic upload, at most every `flush_secs` and at close (the loop closes it on preemption too).

    TensorBoard events are written synchronously with tensorboardX's event-file writer (not its
    SummaryWriter, whose background thread and exit hook fail again and again on a full disk,
    hiding the error that stopped the run). A failed write raises `WriteError` naming the file.
    """

    def __init__(self, directory, flush_secs: float = 30.0):
        self.main = jax.process_index() == 0
        self.remote = is_remote(directory)
        self.path = os.path.join(directory, "train.jsonl")
        self.flush_secs, self._flushed, self._dirty = flush_secs, time.monotonic(), False
        self.tb = self.tb_path = None
        try:
            epath.Path(directory).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error("the training metrics", directory, e) from None
        if not self.main:
            return
        if self.remote:
            p = epath.Path(self.path)
            self._text = p.read_bytes().decode("utf-8") if p.exists() else ""
        try:  # optional: without tensorboardX, train.jsonl only
            from tensorboardX import record_writer
            from tensorboardX.event_file_writer import EventsWriter
        except ImportError:
            return
        tb = tensorboard_dir(directory)
        try:
            record_writer.directory_check(tb)
            self.tb = EventsWriter(os.path.join(tb, "events"))
            self.tb_path = self.tb._file_name
        except OSError as e:
            raise write_error("TensorBoard events", tb, e) from None

    def write(self, step, record: dict):
        if not self.main:
            return
        line = json.dumps({"step": step, **record}) + "\n"
        if self.remote:
            self._text, self._dirty = self._text + line, True
        else:
            try:
                with open(self.path, "a") as f:
                    f.write(line)
            except OSError as e:
                raise write_error("the training metrics", self.path, e) from None
        if self.tb:
            from tensorboardX.proto.event_pb2 import Event
            from tensorboardX.summary import scalar
            try:
                for k, v in record.items():
                    if isinstance(v, (int, float)) and math.isfinite(v):
                        self.tb.write_event(Event(wall_time=time.time(), step=int(step), summary=scalar(k, v)))
                if not self.remote:  # an object store gets the file at flush()
                    self.tb.flush()
            except OSError as e:
                raise write_error("TensorBoard events", self.tb_path, e) from None
        if self.remote and time.monotonic() - self._flushed >= self.flush_secs:
            self.flush()

    def flush(self):
        if self.main and self.remote and self._dirty:
            try:
                write_atomic(self.path, self._text)
                if self.tb:
                    self.tb.flush()
            except OSError as e:
                raise write_error("the training metrics", self.path, e) from None
            self._flushed, self._dirty = time.monotonic(), False

    def close(self, quiet: bool = False):
        """Flushes and closes. `quiet` (the run is already failing): a failure here is a warning,
        never an error that would replace the one that stopped the run."""
        try:
            self.flush()
            if self.tb:
                tb, self.tb = self.tb, None
                tb.close()
        except OSError as e:
            if not quiet:
                raise e if isinstance(e, WriteError) else write_error("TensorBoard events", self.tb_path, e) from None
            log.warning("could not close the metrics log in %s: %s", os.path.dirname(self.path), e)
