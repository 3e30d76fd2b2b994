"""Two real jax.distributed processes on localhost give the loss of one process with 8 devices."""
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from test_sharding import run_steps

WORKER = Path(__file__).with_name("mp_worker.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    port = free_port()
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(i), "2", str(port), str(tmp_path / f"{i}.json")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out[-3000:]
    results = [json.loads((tmp_path / f"{i}.json").read_text()) for i in range(2)]
    assert results[0]["devices"] == 8 and results[0]["local"] == 4
    single, _, _ = run_steps((2, 4, 1))
    for r in results:
        assert abs(r["losses"][-1] - single[-1]) < 1e-5 and len(r["losses"]) == 3
        assert max(abs(a - b) for a, b in zip(r["losses"], single)) < 1e-5
