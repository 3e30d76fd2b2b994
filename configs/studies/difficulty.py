"""Study 2, difficulty: How does the choice of intermediate-task difficulty (easy vs. hard) affect
zero-shot cross-lingual transfer performance on XTREME when using English-only pretrained models?

    python -m xtreme_jax.study plan|run|report --config=configs/studies/difficulty.py:scale=tiny --workdir=DIR
    python -m xtreme_jax.study plan --config=configs/studies/difficulty.py:scale=full --workdir=DIR

Design: encoder (English-only pretrained; XLM-R for contrast) x intermediate task (each alone, and
none) x seeds, on the target task(s). At full scale the intermediate tasks are the paper's nine
(across formats) and, beside them, difficulty varied within one format (WITHIN_FORMAT): ANLI R1 /
R2 / R3, SWAG vs HellaSwag, MNLI easy vs hard (the hypothesis-only split of Gururangan et al. 2018),
so a gain that tracks difficulty can be told apart from one that tracks the format.
Difficulty is operational: for each (encoder, task, seed), the mean over the intermediate phase's
dev evaluations of the error normalized by chance's error (1 = chance throughout, 0 = perfect from
the first evaluation; an area above the learning curve at a fixed step budget). Analysis: zero-shot gain (vs no intermediate task, same encoder and seed)
against difficulty, Spearman correlation across tasks with a bootstrap CI over seeds, stability of
the tasks' gain ranking across seeds, and the difference between the encoders' correlations.
Full scale, c.analysis.across_format names the nine tasks of that correlation and
c.analysis.within_format the groups; within a group the estimands are the gain difference of each
harder member minus the group's easiest (paired by encoder, seed and target), whether the measured
difficulty rises in the a-priori order (the manipulation check), and the within-group slope of gain
on difficulty pooled over the groups (group fixed effects), English-only minus XLM-R.

Encoders: tiny scale: MLM on English text only (the stand-in for RoBERTa/BERT) vs MLM on every demo
language (the stand-in for XLM-R), same tokenizer and size. Full scale: RoBERTa-large and
BERT-large-cased (English-only) and XLM-R large, all through `model.pretrained=` hub ids.
Targets at full scale: PAWS-X, UD-POS, PAN-X, TyDiQA-GoldP (none of them is the training data of
any of the nine intermediate tasks; XNLI/XQuAD/MLQA would be, with MNLI/ANLI+/SQuAD), scores
averaged over the targets.

args: scale=tiny|full; data= (full: local data root, default the hub); ccg= (full: the CCG files'
directory, default <data>/ccg: CCGbank is LDC-licensed, so CCG needs local files)
"""
from xtreme_jax.study import power, spec

QUESTION = ("How does the choice of intermediate-task difficulty (easy vs. hard) affect zero-shot cross-lingual "
            "transfer performance on XTREME when using English-only pretrained models?")
FULL_TASKS = ("anli+", "mnli", "qqp", "squad", "sst2", "hellaswag", "cosmosqa", "commonsenseqa")
# Difficulty varied within one task format (full scale), each group ordered easy -> hard a priori:
# ANLI's rounds (each collected against a stronger model), SWAG then HellaSwag (same ending format,
# endings filtered against weaker vs BERT-era models), MNLI split by a hypothesis-only classifier
# (tasks/artifacts.py: easy = its label is given away by the hypothesis alone).
WITHIN_FORMAT = {"anli_rounds": ("anli_r1", "anli_r2", "anli_r3"), "swag_hellaswag": ("swag", "hellaswag"),
                 "mnli_artifacts": ("mnli_easy", "mnli_hard")}


def get_config(arg=None):
    a = spec.parse_args(arg, scale="tiny", data="", ccg="")
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
        c.fixed = f"model=large,data={a['data']}" + (f",ccg={a['ccg']}" if a["ccg"] else "")
        c.factors.encoder = {"roberta-large": "model.pretrained=FacebookAI/roberta-large",
                             "bert-large": "model.pretrained=google-bert/bert-large-cased",
                             "xlm-r-large": "model.pretrained=FacebookAI/xlm-roberta-large"}
        within = tuple(t for g in WITHIN_FORMAT.values() for t in g if t not in FULL_TASKS)
        c.factors.intermediate = FULL_TASKS + ("ccg",) + within + ("none",)
        # which intermediate tasks make the across-format correlation (the nine), and the
        # within-format groups (easy -> hard); see the docstring for what each estimates
        c.analysis.across_format = FULL_TASKS + ("ccg",)
        c.analysis.within_format = {k: tuple(v) for k, v in WITHIN_FORMAT.items()}
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

