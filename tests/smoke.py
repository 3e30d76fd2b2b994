"""The tiny NLI task (official XTREME xnli layout, en train, en+de dev/test) with the suite's tiny
tokenizer (test_data_support.py) copied beside it, and a config file over it: the data of the
pipeline and reliability tests."""
import shutil

import numpy as np

from test_data_support import tokenizer_dir

WORDS = "the a cat dog sees likes big small red blue runs sleeps".split()
LABELS = ["entailment", "neutral", "contradiction"]

CONFIG_FILE = '''
from xtreme_jax import config as C
def get_config(arg=None):
    c = C.base_config()
    c.model.tokenizer = "{root}/tok"
    c.model.size = "tiny"
    c.data.buckets = (32,)
    c.data.cache_dir = "{root}/cache"  # tokenized once for every run over this data
    c.phases = "{phases}"
    src = C.source("official", "{root}/xnli")
    c.intermediate = C.train_phase([C.task_entry("xnli", src=src)], num_steps=6, batch_size=8, lr=1e-3,
                                   eval_every=3, eval_examples=16, save_every=2, log_every=2)
    c.target = C.train_phase([C.task_entry("xnli", src=src)], num_steps=4, batch_size=8, lr=1e-3,
                             eval_every=0, save_every=2, log_every=2)
    c.evaluate.tasks = [C.eval_task("xnli", src, languages="en,de")]
    c.evaluate.batch_size = 8
    c.evaluate.write_submission = False
    return c
'''


def write_smoke(root):
    rng = np.random.default_rng(0)

    def sent():
        return " ".join(rng.choice(WORDS, rng.integers(3, 9)))
    (root / "xnli").mkdir()
    for split, langs, n in [("train", ["en"], 128), ("dev", ["en", "de"], 32), ("test", ["en", "de"], 32)]:
        for lang in langs:
            lines = []
            for i in range(n):
                a, y = sent(), i % 3
                b = a if y == 0 else (sent() if y == 1 else "not " + a)
                lines.append(f"{a}\t{b}\t{LABELS[y]}")
            (root / "xnli" / f"{split}-{lang}.tsv").write_text("\n".join(lines) + "\n")
    shutil.copytree(tokenizer_dir(), root / "tok")  # copied: runs and subprocesses read root/tok
    return root


def write_config(root, path=None, phases="intermediate,target"):
    """CONFIG_FILE over the data in `root`, written to `path` (default root/cfg.py)."""
    path = path or root / "cfg.py"
    path.write_text(CONFIG_FILE.format(root=root, phases=phases))
    return str(path)


def preempt_at_first_checkpoint(cmd, env, ckpts, timeout=400):
    """Starts `cmd`, sends SIGTERM once `ckpts` holds a step, and returns (returncode, output)."""
    import signal
    import subprocess
    import time
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + timeout
    while time.time() < deadline and not (ckpts.is_dir() and any(d.name.isdigit() for d in ckpts.iterdir())):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    text, _ = p.communicate(timeout=300)
    return p.returncode, text
