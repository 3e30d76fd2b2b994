"""Study 1, direct: How does scaling law behavior differ between English intermediate-task training
and direct target-language fine-tuning for zero-shot cross-lingual transfer on XTREME-R?

    python -m xtreme_jax.study plan|run|report --config=configs/studies/direct.py:scale=tiny --workdir=DIR
    python -m xtreme_jax.study plan --config=configs/studies/direct.py:scale=full,target=xnli --workdir=DIR

Design: two arms x target training size n (examples per training language) x seeds.
  stilts  English intermediate task, then the English target task (n English examples)
  direct  no intermediate task; the target task's training data in English and, from its
          translate-train split, in every other language (n per language: XTREME's
          "translate-train-all")
Analysis: score vs training examples and vs compute (accelerator-hours of the whole chain, the
intermediate training included) per arm, fitted as a log-linear curve and as a power law of the
error (100 - score), bootstrap CIs on the exponents, and the crossover of the two curves with its CI.

Which XTREME-R tasks: those with translate-train data in XTREME's release and in the task
registry: XNLI (MNLI translated into the 14 XNLI languages), XQuAD and MLQA (SQuAD translated;
`target=xquad|mlqa`); and those with gold in-language training data, whose "all languages" arms
train on it instead of translations (`target=udpos|panx|tydiqa`: UD treebanks, WikiANN, and
TyDiQA-GoldP's train split in each of its nine languages). Left out: XCOPA (no translated
SIQA/COPA in the registry) and the retrieval tasks (Tatoeba, Mewsli-X, LAReQA: no training at all).

args: scale=tiny|full; target= (full: xnli|xquad|mlqa|udpos|panx|tydiqa, default xnli); intermediate= (the stilts
arm's task; tiny default entail (the demo's default), full default qqp for xnli, mnli for QA); data= (full)
"""
from xtreme_jax.study import power, spec

QUESTION = ("How does scaling law behavior differ between English intermediate-task training and direct "
            "target-language fine-tuning for zero-shot cross-lingual transfer on XTREME-R?")
# Translate-train languages (XTREME's release) of the full-scale targets.
TRANSLATE_TRAIN = {"xnli": "ar bg de el es fr hi ru sw th tr ur vi zh",
                   "xquad": "ar de el es hi ru th tr vi zh", "mlqa": "ar de es hi vi zh"}
TINY_LANGS = "xa xb xc xd xe xf xg xh"
# Targets with gold training data in other languages (UD treebanks, WikiANN, TyDiQA-GoldP's train
# split in all nine of its languages): the "all languages" arms train on it instead of translations.
GOLD = {"udpos": "ar de es fr hi ru zh", "panx": "ar de es fr hi ru zh", "tydiqa": "ar bn fi id ko ru sw te"}


def get_config(arg=None):
    a = spec.parse_args(arg, scale="tiny", target="xnli", intermediate="", data="")
    c = spec.study("direct", QUESTION, a["scale"])
    if c.scale == "tiny":
        c.recipe = "configs/demo.py"
        c.fixed = "arm=with,mlm=all,size=tiny"
        inter, langs = a["intermediate"] or "entail", TINY_LANGS
        c.factors.target_examples = (100, 200, 400, 800, 1600)   # per language; 1600 translated each
        c.analysis.full_size = 1600
    else:
        if a["target"] not in TRANSLATE_TRAIN and a["target"] not in GOLD:
            raise spec.StudyError(f"direct: target={a['target']!r}; choose from {sorted(TRANSLATE_TRAIN)} "
                                  f"or {sorted(GOLD)} (translate-train or gold in-language training data)")
        c.recipe = "configs/stilts.py"
        c.fixed = f"target={a['target']},model=large,data={a['data']}"
        inter = a["intermediate"] or ("qqp" if a["target"] == "xnli" else "mnli")
        langs = TRANSLATE_TRAIN.get(a["target"]) or GOLD[a["target"]]
        # up to all of the data: with the intermediate run's cost fixed, the stilts chain's compute
        # must still vary >= MIN_COMPUTE_SPAN (2x) for a compute exponent (to 80k it varied 1.41x)
        c.factors.target_examples = (1000, 3000, 10000, 30000, 100000, 0)
        if a["target"] == "tydiqa":  # its largest train language (ar) has 14.8k questions, English 3.7k:
            c.factors.target_examples = (1000, 3000, 10000, 0)   # 30k/100k would repeat the all-data runs
        c.analysis.full_size = 88000 if a["target"] != "xnli" else 392702
        c.floor = ("target.num_steps=1000", "target.eval_every=250", "target.save_every=250")
    every = "+".join(["en"] + langs.split())
    gold = ""
    if c.scale == "full" and a["target"] in GOLD:   # gold in-language training data, not translations
        gold = "," + ",".join(f"target.tasks[{i + 1}].split=train" for i in range(len(langs.split())))
    # the 2x2: intermediate (none / yes) x target-language data (English / every language), so the
    # two factors are not confounded; stilts vs direct is the diagonal the question names
    c.factors.arm = {"stilts": f"intermediate={inter},target_langs=en",
                     "direct": f"intermediate=none,target_langs={every}{gold}"}
    if c.scale == "full":
        c.factors.arm["english"] = "intermediate=none,target_langs=en"
        c.factors.arm["stilts_all"] = f"intermediate={inter},target_langs={every}{gold}"
        c.analysis.factorial = ("english", "stilts", "direct", "stilts_all")
    c.analysis.size = "target_examples"
    c.analysis.arm = "arm"
    c.analysis.arms = ("stilts", "direct")
    power.configure(c, "arm difference at one size (e.g. direct - stilts), two runs", 2 ** 0.5, effect=2.0, seeds=7)
    return c

