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
`target=xquad|mlqa`). Left out: UD-POS and PAN-X (tags cannot be machine-translated, XTREME ships
no translate-train for them), XCOPA (no translated SIQA/COPA in the registry), and the retrieval
tasks (Tatoeba, Mewsli-X, LAReQA: no training at all). TyDiQA-GoldP has translate-train data
upstream but not in the registry yet.

args: scale=tiny|full; target= (full: xnli|xquad|mlqa, default xnli); intermediate= (the stilts
arm's task; tiny default entail (the demo's default), full default qqp for xnli, mnli for QA); data= (full)
"""
from xtreme_jax.study import spec

QUESTION = ("How does scaling law behavior differ between English intermediate-task training and direct "
            "target-language fine-tuning for zero-shot cross-lingual transfer on XTREME-R?")
# Translate-train languages (XTREME's release) of the full-scale targets.
TRANSLATE_TRAIN = {"xnli": "ar bg de el es fr hi ru sw th tr ur vi zh",
                   "xquad": "ar de el es hi ru th tr vi zh", "mlqa": "ar de es hi vi zh"}
TINY_LANGS = "xa xb xc xd xe xf xg xh"


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
        if a["target"] not in TRANSLATE_TRAIN:
            raise spec.StudyError(f"direct: target={a['target']!r}; choose from {sorted(TRANSLATE_TRAIN)} "
                                  "(the XTREME-R tasks with translate-train data)")
        c.recipe = "configs/stilts.py"
        c.fixed = f"target={a['target']},model=large,data={a['data']}"
        inter = a["intermediate"] or ("qqp" if a["target"] == "xnli" else "mnli")
        langs = TRANSLATE_TRAIN[a["target"]]
        c.factors.target_examples = (1000, 3000, 10000, 30000, 80000)
        c.analysis.full_size = 88000 if a["target"] != "xnli" else 392702
    c.factors.arm = {"stilts": f"intermediate={inter},target_langs=en",
                     "direct": "intermediate=none,target_langs=" + "+".join(["en"] + langs.split())}
    c.analysis.size = "target_examples"
    c.analysis.arm = "arm"
    c.analysis.arms = ("stilts", "direct")
    return c
