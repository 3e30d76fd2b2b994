"""What every benchmark JSON records about the machine: CPU model and SIMD flags, cores,
XLA_FLAGS, versions and the load (`uptime`) when the run started and ended."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "fma")


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_model_and_flags() -> tuple:
    model, flags = platform.processor(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", "x86_64"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, [f for f in CPU_FLAGS if f in flags]


def torch_threads_passive() -> str:
    """PyTorch's OpenMP threads spin at barriers by default; on a machine shared with other
    work (this one: 2 cores, several agents) a descheduled thread stalls the others, and a
    2-layer forward of 256 tokens measured 0.3-1.2 s instead of ~0.05 s (0.15-0.2 s passive).
    So the benchmarks ask for passive waiting unless the caller set a policy: PyTorch's best
    here. Must run before torch is imported; returns the policy in force."""
    return os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def machine_info() -> dict:
    import jax
    model, flags = cpu_model_and_flags()
    out = {"cpu_model": model, "cpu_flags": flags, "cpu_count": os.cpu_count(),
           "xla_flags": os.environ.get("XLA_FLAGS", ""), "backend": jax.default_backend(),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
           "device_kind": jax.devices()[0].device_kind, "num_devices": jax.device_count(),
           "jax": jax.__version__, "python": platform.python_version(),
           "uptime_start": uptime(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        import torch
        out["torch"] = torch.__version__
    except ImportError:
        pass
    return out


def write_json(path: str, result: dict):
    """Atomically (a partial result survives an interrupted run)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1, default=str)
    os.replace(tmp, path)
