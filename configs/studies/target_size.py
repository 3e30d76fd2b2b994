"""Study 3, target_size: What is the impact of scaling the target-task fine-tuning dataset size on
the effectiveness of English intermediate-task training for zero-shot cross-lingual transfer in
natural language inference, measured by accuracy on XTREME benchmark languages?

    python -m xtreme_jax.study plan|run|report --config=configs/studies/target_size.py:scale=tiny --workdir=DIR
    python -m xtreme_jax.study plan --config=configs/studies/target_size.py:scale=full --workdir=DIR

Design: target training size n (6 log-spaced sizes up to all) x with / without the English
intermediate task x seeds. The intermediate task is never the target's own training data (XNLI
trains on MNLI, and ANLI+ contains MNLI: validation refuses both). Analysis: zero-shot gain(n) per
language and averaged, a fitted gain(n) = a + b ln n with bootstrap CIs, the size at which the
gain's CI first includes 0.

args: scale=tiny|full; intermediate= (tiny: demo tasks joined by +, default entail, the demo's own
default: in a uniform mix with para and sst, those two stayed near chance at the demo's budget;
full: a configs/stilts.py intermediate, default qqp); data= (full: local data root, default hub)
"""
from xtreme_jax.study import power, spec


QUESTION = ("What is the impact of scaling the target-task fine-tuning dataset size on the effectiveness "
            "of English intermediate-task training for zero-shot cross-lingual transfer in natural language "
            "inference, measured by accuracy on XTREME benchmark languages?")


def get_config(arg=None):
    a = spec.parse_args(arg, scale="tiny", intermediate="", data="")
    c = spec.study("target_size", QUESTION, a["scale"])
    if c.scale == "tiny":
        # The demo world (configs/demo.py): 6400 English NLI training pairs, 8 zero-shot languages.
        c.recipe = "configs/demo.py"
        c.fixed = "arm=with,mlm=all,size=tiny"
        inter = a["intermediate"] or "entail"
        c.factors.target_examples = (100, 200, 400, 800, 1600, 0)   # 0 = all 6400
        c.analysis.full_size = 6400
    else:
        # XNLI: English MNLI training (392,702 pairs), zero-shot on the 14 other XNLI languages.
        c.recipe = "configs/stilts.py"
        c.fixed = f"target=xnli,model=large,data={a['data']}"
        inter = a["intermediate"] or "qqp"
        c.factors.target_examples = (1000, 3000, 10000, 30000, 100000, 0)
        c.analysis.full_size = 392702
        # two epochs give n=1k 62 steps, too few to learn the task at all: at least 1000 steps (and
        # validation on the English dev set every 250, the best checkpoint evaluated) at small n
        c.floor = ("target.num_steps=1000", "target.eval_every=250", "target.save_every=250")
    # more than one intermediate task at full scale (a pair task and QA); one at tiny scale
    c.factors.intermediate = ((inter,) if c.scale == "tiny" or a["intermediate"] else (inter, "squad")) + ("none",)
    c.analysis.size = "target_examples"
    c.analysis.arm = "intermediate"
    c.analysis.baseline = "none"
    c.analysis.equivalence_margin = 1.0
    power.configure(c, "zero-shot gain at one size (with - without intermediate, same seed)", 2 ** 0.5,
                    effect=1.0, seeds=18)   # 1 point: the equivalence margin
    return c

