"""The embedded default: every phase (mlm -> intermediate -> target -> evaluate) on a tiny encoder
with the bundled synthetic multilingual demo data (xtreme_jax/data/demo_files). No network,
2 CPU cores, a few minutes.

    python -m xtreme_jax.main --config=configs/demo.py --workdir=runs/demo
    python -m xtreme_jax.main --config=configs/demo.py:no_mlm --workdir=runs/demo_no_mlm
"""
import os

import xtreme_jax
from xtreme_jax import config as C

DEMO = os.path.join(os.path.dirname(xtreme_jax.__file__), "data", "demo_files")
LANGS = ["en", "xa", "xb", "xc", "xd", "xe"]


def get_config(arg=None):
    c = C.base_config()
    c.seed = 0
    c.phases = "intermediate,target,evaluate" if arg == "no_mlm" else "mlm,intermediate,target,evaluate"
    c.model.size = "tiny"
    c.model.tokenizer = os.path.join(DEMO, "tokenizer")
    c.model.dropout = 0.0  # tiny data, few steps: dropout only slows learning here
    c.mesh = (-1, 1, 1)
    c.data.buckets = (32, 64)
    c.mlm = C.train_phase(
        [C.task_entry("mlm", lang=l, src=C.source("official", os.path.join(DEMO, "mlm")), head="mlm",
                      max_length=64) for l in LANGS],
        sampler="uniform", num_steps=800, batch_size=32, lr=2e-3, warmup=0.05, eval_every=0,
        save_every=200, log_every=50, mlm_probability=0.15)
    c.intermediate = C.train_phase(
        [C.task_entry("qqp", src=C.source("local", os.path.join(DEMO, "demo_para"))),
         C.task_entry("sst2", src=C.source("local", os.path.join(DEMO, "demo_sst")))],
        sampler="proportional", num_steps=100, batch_size=32, lr=1e-3, eval_every=50,
        eval_examples=200, save_every=50, log_every=25)
    c.target = C.train_phase(
        [C.task_entry("demo_nli", src=C.source("official", os.path.join(DEMO, "demo_nli")))],
        num_steps=500, batch_size=32, lr=1e-3, eval_every=250, eval_examples=300, save_every=250,
        log_every=25)
    c.evaluate.tasks = [C.eval_task("demo_nli", C.source("official", os.path.join(DEMO, "demo_nli")))]
    c.evaluate.split = "test"
    c.evaluate.batch_size = 64
    c.evaluate.write_submission = False
    return c
