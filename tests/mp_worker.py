"""One process of a multi-process run on localhost (launched by tests; not a test module itself).

usage: python mp_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_JSON
"""
import json
import os
import sys

pid, nprocs, port, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.environ["XLA_FLAGS"] = ""  # the parent's 8 fake devices would be wrong here
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8 // nprocs)
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=nprocs,
                           process_id=pid, initialization_timeout=120)

sys.path.insert(0, os.path.dirname(__file__))
from test_sharding import make_batch  # noqa: E402

from xtreme_jax import optim, sharding, train_step as train  # noqa: E402
from xtreme_jax.models.encoder import preset  # noqa: E402

mesh = sharding.make_mesh((2, 4, 1))
tx, sched = optim.make_optimizer(lr=1e-3, total_steps=10, warmup=2)
graphdef, state, shardings = train.create_state(preset("tiny", num_layers=1), {"cls": ("classification", 3)},
                                                tx, mesh)
step = train.make_train_step(graphdef, shardings, "cls", sched)
losses = []
for i in range(3):
    full = make_batch(seed=i)
    rows = len(full["labels"]) // nprocs
    local = {k: v[pid * rows:(pid + 1) * rows] for k, v in full.items()}
    state, metrics = step(state, sharding.device_batch(local, mesh), jax.random.key(i))
    losses.append(float(metrics["loss"]))
with open(out, "w") as f:
    json.dump({"losses": losses, "devices": jax.device_count(), "local": jax.local_device_count()}, f)
jax.distributed.shutdown()
