"""Study 2, difficulty: How does the choice of intermediate-task difficulty (easy vs. hard) affect
zero-shot cross-lingual transfer performance on XTREME when using English-only pretrained models?

    python -m xtreme_jax.study plan|run|report --config=configs/studies/difficulty.py:scale=tiny --workdir=DIR
    python -m xtreme_jax.study plan --config=configs/studies/difficulty.py:scale=full --workdir=DIR

Design: encoder (English-only pretrained; XLM-R for contrast) x intermediate task (each alone, and
none) x seeds, on the target task(s). Difficulty is operational: for each (encoder, task, seed),
the mean over the intermediate phase's dev evaluations of the error normalized by chance's error
(1 = chance throughout, 0 = perfect from the first evaluation; an area above the learning curve at
a fixed step budget). Analysis: zero-shot gain (vs no intermediate task, same encoder and seed)
against difficulty, Spearman correlation across tasks with a bootstrap CI over seeds, stability of
the tasks' gain ranking across seeds, and the difference between the encoders' correlations.

Encoders: tiny scale: MLM on English text only (the stand-in for RoBERTa/BERT) vs MLM on every demo
language (the stand-in for XLM-R), same tokenizer and size. Full scale: RoBERTa-large and
BERT-large-cased (English-only) and XLM-R large, all through `model.pretrained=` hub ids.
Targets at full scale: PAWS-X, UD-POS, PAN-X, TyDiQA-GoldP (none of them is the training data of
any of the nine intermediate tasks; XNLI/XQuAD/MLQA would be, with MNLI/ANLI+/SQuAD), scores
averaged over the targets.

args: scale=tiny|full; data= (full: local data root, default the hub; CCG needs local files)
"""
from xtreme_jax.study import power, spec

QUESTION = ("How does the choice of intermediate-task difficulty (easy vs. hard) affect zero-shot cross-lingual "
            "transfer performance on XTREME when using English-only pretrained models?")
FULL_TASKS = ("anli+", "mnli", "qqp", "squad", "sst2", "hellaswag", "cosmosqa", "commonsenseqa")


def get_config(arg=None):
    a = spec.parse_args(arg, scale="tiny", data="")
    c = spec.study("difficulty", QUESTION, a["scale"])
    if c.scale == "tiny":
        c.recipe = "configs/demo.py"
        c.fixed = "arm=with,size=tiny"
        # a fixed intermediate budget of 200 steps, evaluated every 40: the learning curve that the
        # difficulty measure integrates (demo.py's other settings as they are)
        c.set = ("intermediate.num_steps=200", "intermediate.eval_every=40")
        c.factors.encoder = {"english-only": "mlm=en", "multilingual": "mlm=all"}
        c.factors.intermediate = ("entail", "para", "sst", "pos", "none")
    else:
        c.recipe = "configs/stilts.py"
        c.fixed = f"model=large,data={a['data']}"
        c.factors.encoder = {"roberta-large": "model.pretrained=FacebookAI/roberta-large",
                             "bert-large": "model.pretrained=google-bert/bert-large-cased",
                             "xlm-r-large": "model.pretrained=FacebookAI/xlm-roberta-large"}
        c.factors.intermediate = FULL_TASKS + ("ccg", "none")
        c.factors.target = ("pawsx", "udpos", "panx", "tydiqa")
        c.analysis.average_over = ("target",)
        # one fixed intermediate budget for every task (the difficulty measure integrates the curve
        # over it): 10k steps of B=32, validated every 1000 on up to 2000 dev examples
        c.set = ("intermediate.num_steps=10000", "intermediate.eval_every=1000", "intermediate.patience=0")
    c.analysis.encoder = "encoder"
    c.analysis.task = "intermediate"
    c.analysis.baseline = "none"
    tiny = c.scale == "tiny"
    c.analysis.english_only = ("english-only",) if tiny else ("roberta-large", "bert-large")
    c.analysis.multilingual = ("multilingual",) if tiny else ("xlm-r-large",)
    power.configure(c, "one task's zero-shot gain (with - without, same encoder and seed)", 2 ** 0.5,
                    effect=2.0, seeds=7)
    return c

