"""The embedded default: the X-STILTs recipe on a tiny encoder and the bundled synthetic multilingual
demo world (xtreme_jax/data/demo_files, docs/demo_data.md). No network, 2 CPU cores, minutes.

    python -m xtreme_jax.main --config=configs/demo.py --workdir=runs/demo
    python -m xtreme_jax.main --config=configs/demo.py:arm=without --workdir=runs/demo_without
    python -m xtreme_jax.main --config=configs/demo.py:quick --workdir=runs/demo_quick

By default (`arm=both`) the run is the X-STILTs comparison (config.ablate = "intermediate",
xtreme_jax/ablation.py): the MLM phase once (runs/demo/shared), then the target task with
(runs/demo/with) and without (runs/demo/without) the English intermediate phase from that same
encoder, and a per-language table of the gain. `arm=with` runs mlm -> intermediate -> target ->
evaluate alone, `arm=without` mlm -> target -> evaluate; every other field is identical.

args (comma-separated; key=value, lists joined with `+`):
  arm=both|with|without  both, compared (default), or one run with / without the English
                       intermediate phase
  intermediate=T+T     intermediate tasks from TASKS (default DEFAULT_INTERMEDIATE); `none` = arm=without
  translated=L+L       also train the intermediate tasks on their translations into these languages
  target_examples=N    English target training examples (default TARGET_EXAMPLES; 0 = all 6400)
  target_langs=L+L     target training languages: en and/or others, whose data is the target's
                       translate-train split (direct target-language fine-tuning)
  mlm=all|en|none      MLM on every language (default), on English only (the stand-in for an
                       English-only pretrained encoder such as RoBERTa/BERT), or no MLM phase
  size=tiny|mini|midi  encoder size (xtreme_jax.models.encoder.PRESETS)
  quick                a much shorter run (CI: well under a minute of training)
  no_mlm               the same as mlm=none
"""
import os

import xtreme_jax
from xtreme_jax import config as C

DEMO = os.path.join(os.path.dirname(xtreme_jax.__file__), "data", "demo_files")


def _langs():
    with open(os.path.join(DEMO, "languages.txt"), encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


LANGS = _langs()
# Intermediate tasks: name -> (registered task whose reader loads the files, source type, directory).
TASKS = {
    "entail": ("mnli", "local", "demo_entail"),   # GLUE/MNLI schema: subject-monotonicity NLI
    "para": ("qqp", "local", "demo_para"),        # GLUE/QQP schema: paraphrase questions
    "sst": ("sst2", "local", "demo_sst"),         # GLUE/SST-2 schema: sentiment x negation
    "pos": ("udpos", "official", "demo_pos"),     # XTREME udpos layout: UPOS tagging (syntactic)
}
# entail alone: in a mix with para and sst (uniform sampling, same steps) para and sst stayed near
# chance. Target 800 examples x 300 steps, seed 8: measured over 10 seeds the related-language gain
# is +15.1 (95% CI [+8.1, +22.0]), positive on 9 of 10 seeds; seed 8 (+10.6) is a middle seed, not
# the best. With 3200 examples the target alone reached the with-arm's level on some seeds and the
# gain vanished there (+0.5), the README's "zero-shot -0.0" (docs/demo_data.md, "How the default
# was chosen").
DEFAULT_INTERMEDIATE = "entail"
TARGET_EXAMPLES = 800
TARGET_STEPS = 300
DEFAULT_SEED = 8  # the median-gain seed of the 10 measured, not the luckiest
SIZES = ("tiny", "mini", "midi")
ARGS = dict(arm="both", intermediate="", translated="", target_examples=str(TARGET_EXAMPLES),
            target_langs="en", mlm="all", size="tiny", quick=False)


def parse(arg):
    a = dict(ARGS)
    for kv in filter(None, (arg or "").split(",")):
        k, eq, v = kv.partition("=")
        if k == "no_mlm" and not eq:
            k, v = "mlm", "none"
        elif k == "quick" and not eq:
            v = True
        if k not in ARGS:
            raise ValueError(f"configs/demo.py: unknown arg {k!r}; known: {sorted(ARGS) + ['no_mlm']}")
        a[k] = v
    checks = [("arm", ("both", "with", "without")), ("mlm", ("all", "en", "none")), ("size", SIZES)]
    for k, allowed in checks:
        if a[k] not in allowed:
            raise ValueError(f"configs/demo.py: {k}={a[k]!r}; choose from {list(allowed)}")
    if not str(a["target_examples"]).isdigit():
        raise ValueError(f"configs/demo.py: target_examples={a['target_examples']!r} must be a "
                         "non-negative integer")
    a["intermediate"] = [t for t in (a["intermediate"] or DEFAULT_INTERMEDIATE).split("+") if t]
    if a["intermediate"] == ["none"]:
        a["arm"], a["intermediate"] = "without", []
    for t in a["intermediate"]:
        if t not in TASKS:
            raise ValueError(f"configs/demo.py: intermediate task {t!r}; choose from {sorted(TASKS)} or none")
    for k in ("translated", "target_langs"):
        a[k] = [l for l in a[k].split("+") if l]
        for l in a[k]:
            if l not in LANGS:
                raise ValueError(f"configs/demo.py: {k} language {l!r}; choose from {LANGS}")
    if not a["target_langs"]:
        raise ValueError("configs/demo.py: target_langs is empty; use en and/or other demo languages")
    return a


def intermediate_entries(names, translated=()):
    """Task entries of the intermediate phase: each task in English, then in every translated language
    (same head, so a task shares one classifier across its languages)."""
    out = []
    for name in names:
        task, kind, directory = TASKS[name]
        for lang in ["en", *translated]:
            out.append(C.task_entry(task, lang=lang, src=C.source(kind, os.path.join(DEMO, directory))))
    return out


def get_config(arg=None):
    a = parse(arg)
    quick = a["quick"]
    c = C.base_config()
    c.seed = DEFAULT_SEED
    phases = (["mlm"] if a["mlm"] != "none" else []) + (["intermediate"] if a["arm"] != "without" else [])
    c.phases = ",".join(phases + ["target", "evaluate"])
    c.ablate = "intermediate" if a["arm"] == "both" else ""
    c.model.size = a["size"]
    c.model.tokenizer = os.path.join(DEMO, "tokenizer")
    c.model.dropout = 0.0  # tiny data, few steps: dropout only slows learning here
    c.mesh = (-1, 1, 1)
    c.data.buckets = (32, 64)
    mlm_langs = ["en"] if a["mlm"] == "en" else LANGS
    c.mlm = C.train_phase(
        [C.task_entry("mlm", lang=l, src=C.source("official", os.path.join(DEMO, "mlm")), head="mlm",
                      max_length=64) for l in mlm_langs],
        sampler="uniform", num_steps=100 if quick else 1000, batch_size=32, lr=2e-3, warmup=0.05,
        eval_every=0, save_every=250, log_every=50, mlm_probability=0.15)
    c.intermediate = C.train_phase(
        intermediate_entries(a["intermediate"], a["translated"]),
        sampler="uniform", num_steps=30 if quick else 600, batch_size=32, lr=1e-3,
        eval_every=30 if quick else 100, eval_examples=200, save_every=100, log_every=25)
    nli = C.source("official", os.path.join(DEMO, "demo_nli"))
    n = int(a["target_examples"])
    c.target = C.train_phase(
        [C.task_entry("demo_nli", lang=l, split="train" if l == "en" else "translate_train", src=nli,
                      max_examples=n) for l in a["target_langs"]],
        num_steps=30 if quick else TARGET_STEPS, batch_size=32, lr=1e-3, eval_every=30 if quick else 100,
        eval_examples=300, save_every=100, log_every=25)
    c.evaluate.tasks = [C.eval_task("demo_nli", nli)]
    c.evaluate.split = "test"
    c.evaluate.batch_size = 64
    c.evaluate.write_submission = False
    return c
