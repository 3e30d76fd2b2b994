"""X-STILTs on the bundled demo world (xtreme_jax/data/demo_files): the tiny-scale recipe the
studies build their points from, with the same arguments as configs/stilts.py where they mean the
same thing. Every run is CPU-sized: a tiny encoder pretrained by MLM on the demo languages (the
stand-in for XLM-R), English intermediate task(s), the English target task, zero-shot evaluation.

    python -m xtreme_jax.main --config=configs/studies/tiny_world.py:intermediate=para --workdir=runs/t
    python -m xtreme_jax.main --config=configs/studies/tiny_world.py:intermediate=none,target_examples=300 ...

args (comma-separated key=value):
  intermediate     `+`-separated names of INTERMEDIATE, or `none`
  target           demo_nli
  model            an encoder size preset (MODELS)
  mlm              languages of the MLM "pretraining" corpus: `all`, `en` (the stand-in for an
                   English-only encoder such as RoBERTa), or a `+`-list; `none` = no MLM phase
  translated       `+`-separated languages whose translated intermediate data is mixed in
  target_langs     `+`-separated languages of the target training data (others than en come from
                   its translate-train split), or `all`
  target_examples  subsample each target training set to this many examples (0 = all)
  mlm_steps, inter_steps, target_steps   phase lengths (target_steps 0 = from the data size)
"""
import os

import xtreme_jax
from xtreme_jax import config as C

DEMO = os.path.join(os.path.dirname(xtreme_jax.__file__), "data", "demo_files")
LANGS = ("en", "xa", "xb", "xc", "xd", "xe")
MODELS = ("tiny",)
# name -> (registry task, data dir under DEMO, source type, kind of knowledge it teaches)
INTERMEDIATE = {"para": ("qqp", "demo_para", "local", "semantic"),
                "sst": ("sst2", "demo_sst", "local", "semantic")}
TARGET_TRAIN = {"demo_nli": 2400}  # English training examples, to turn epochs into steps
DEFAULTS = dict(intermediate="para", target="demo_nli", model="tiny", mlm="all", translated="",
                target_langs="en", target_examples="0", mlm_steps="800", inter_steps="150",
                target_steps="0")


def parse(arg):
    out = dict(DEFAULTS)
    for kv in filter(None, (arg or "").split(",")):
        k, sep, v = kv.partition("=")
        if not sep or k not in out:
            raise ValueError(f"configs/studies/tiny_world.py: unknown arg {kv!r}; known: {sorted(out)}")
        out[k] = v
    for k in ("target_examples", "mlm_steps", "inter_steps", "target_steps"):
        if not out[k].isdigit():
            raise ValueError(f"configs/studies/tiny_world.py: {k}={out[k]!r} must be a non-negative integer")
    return out


def _langs(value, what):
    langs = list(LANGS) if value == "all" else [l for l in value.split("+") if l]
    bad = [l for l in langs if l not in LANGS]
    if bad:
        raise ValueError(f"configs/studies/tiny_world.py: {what}: unknown demo language(s) {bad}; "
                         f"choose from {list(LANGS)}")
    return langs


def _inter_entry(name, lang="en"):
    if name not in INTERMEDIATE:
        raise ValueError(f"configs/studies/tiny_world.py: intermediate={name!r}; choose from "
                         f"{sorted(INTERMEDIATE)} or none")
    task, folder, kind, _ = INTERMEDIATE[name]
    src = C.source(kind, os.path.join(DEMO, folder))
    if lang == "en":
        return C.task_entry(task, src=src, max_length=64)
    return C.task_entry(task, lang=lang, split="translate_train", head=task, src=src, max_length=64)


def get_config(arg=None):
    a = parse(arg)
    if a["model"] not in MODELS:
        raise ValueError(f"configs/studies/tiny_world.py: model={a['model']!r}; choose from {list(MODELS)}")
    if a["target"] not in TARGET_TRAIN:
        raise ValueError(f"configs/studies/tiny_world.py: target={a['target']!r}; choose from {sorted(TARGET_TRAIN)}")
    c = C.base_config()
    c.model.size = a["model"]
    c.model.tokenizer = os.path.join(DEMO, "tokenizer")
    c.model.dropout = 0.0  # tiny data, few steps: dropout only slows learning here
    c.mesh = (-1, 1, 1)
    c.data.buckets = (32, 64)
    phases = []

    if a["mlm"] != "none":
        c.mlm = C.train_phase(
            [C.task_entry("mlm", lang=l, src=C.source("official", os.path.join(DEMO, "mlm")), head="mlm",
                          max_length=64) for l in _langs(a["mlm"], "mlm")],
            sampler="uniform", num_steps=int(a["mlm_steps"]), batch_size=32, lr=2e-3, warmup=0.05,
            eval_every=0, save_every=200, log_every=50, mlm_probability=0.15)
        phases.append("mlm")

    inter = [] if a["intermediate"] == "none" else a["intermediate"].split("+")
    if inter:
        entries = [_inter_entry(t) for t in inter]
        entries += [_inter_entry(t, lang) for lang in _langs(a["translated"], "translated") if lang != "en"
                    for t in inter]
        n = int(a["inter_steps"]) * max(1, len(entries) // len(inter))  # English steps held constant
        c.intermediate = C.train_phase(entries, sampler="uniform" if len(entries) > len(inter) else "proportional",
                                       num_steps=n, batch_size=32, lr=1e-3, eval_every=max(25, n // 3),
                                       eval_examples=200, save_every=max(25, n // 3), log_every=25)
        phases.append("intermediate")
    elif a["translated"]:
        raise ValueError("configs/studies/tiny_world.py: translated= needs an intermediate task")

    target, n = a["target"], int(a["target_examples"])
    langs = _langs(a["target_langs"], "target_langs")
    src = C.source("official", os.path.join(DEMO, target))
    entries = [C.task_entry(target, src=src, head=target, max_examples=n, max_length=64,
                            **({} if l == "en" else dict(lang=l, split="translate_train"))) for l in langs]
    size = min(n or TARGET_TRAIN[target], TARGET_TRAIN[target]) * len(langs)
    steps = int(a["target_steps"]) or max(100, min(450, 6 * size // 32))  # ~6 epochs, 100..450 steps
    every = max(50, steps // 3)
    c.target = C.train_phase(entries, num_steps=steps, batch_size=32, lr=1e-3, eval_every=every,
                             eval_examples=300, save_every=every, log_every=25)
    c.phases = ",".join(phases + ["target", "evaluate"])
    c.evaluate.tasks = [C.eval_task(target, src)]
    c.evaluate.split = "test"
    c.evaluate.batch_size = 64
    c.evaluate.write_submission = False
    return c
