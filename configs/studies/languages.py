"""Study 5, languages: Does increasing the number of diverse high-resource non-English languages in
multi-task intermediate training lead to diminishing returns in zero-shot cross-lingual accuracy on
XTREME-R languages, and if so, at what threshold?

    python -m xtreme_jax.study plan|run|report --config=configs/studies/languages.py:scale=tiny --workdir=DIR
    python -m xtreme_jax.study plan --config=configs/studies/languages.py:scale=full --workdir=DIR

Design: k = 0..K non-English languages added to intermediate training (the intermediate task's
translated data), in several random orders of a pool of languages (each order a seeded
permutation), x seeds. English intermediate steps are held constant: the phase runs E x (1 + k)
steps with uniform sampling over its 1 + k entries. The evaluation languages are reported
separately as seen (added so far) and unseen; a reserved set (config.unseen) is never added in
any order, and validation refuses a point that trains on one. k = 0 is the same run in every
order (collapsed). Analysis: score vs k per unit (order x seed), a segmented (two-slope) fit whose
knee is the threshold, with the bootstrap distribution of the knee over units, and a saturating
fit (k where 90% of the rise is reached).

Tiny scale: pool xa xb xc xd (related languages: English function words), reserved unseen xg
(related) and xe xf xh (unrelated: own function words, two in other scripts); intermediate task
demo_entail and its translations, 100 English steps; target demo_nli.
Full scale: MNLI with its XNLI translations (the only intermediate task XTREME ships translated) in
de fr es ru zh ar; target XCOPA (XTREME-R; not XNLI, whose training data is MNLI); reserved unseen:
the XCOPA languages outside the pool.

args: scale=tiny|full; orders= (number of random orders, default 3); data= (full)
"""
import numpy as np

from xtreme_jax.study import power, spec


QUESTION = ("Does increasing the number of diverse high-resource non-English languages in multi-task "
            "intermediate training lead to diminishing returns in zero-shot cross-lingual accuracy on "
            "XTREME-R languages, and if so, at what threshold?")


def get_config(arg=None):
    a = spec.parse_args(arg, scale="tiny", orders="", data="")
    c = spec.study("languages", QUESTION, a["scale"])
    if c.scale == "tiny":
        c.recipe = "configs/demo.py"
        c.fixed = "arm=with,mlm=all,size=tiny,intermediate=entail"
        pool, c.unseen, english_steps = ("xa", "xb", "xc", "xd"), "xe,xf,xg,xh", 100
    else:
        c.recipe = "configs/stilts.py"
        # multi-task, as the question says: MNLI and SQuAD, both shipped translated by XTREME
        c.fixed = f"model=large,intermediate=mnli+squad,data={a['data']}"
        pool = ("de", "es", "ru", "zh", "ar", "hi")   # translated in both XNLI (MNLI) and SQuAD
        # reserved unseen: the two targets' languages outside the pool
        c.unseen = "et,ht,id,it,qu,sw,ta,th,tr,vi,ja,ko"
        english_steps = 393_000 // 32 + 3 * 88_000 // 32   # configs/stilts.py's English budget of the pair
        c.set = ("intermediate.sampler=uniform",)
        c.factors.target = ("xcopa", "pawsx")      # more than one target (XNLI's training data is MNLI)
        c.analysis.average_over = ("target",)
        # beside "English steps fixed" (compute and repetition grow with k): one total budget for every k
        c.factors.budget = {"english_fixed": "", "total_fixed": f"intermediate.num_steps={english_steps}"}
        c.analysis.budget = "budget"
    rng = np.random.default_rng(20240515)   # the orders are part of the design: fixed
    orders = int(a["orders"] or (3 if c.scale == "tiny" else 5))
    c.factors.order = {f"o{i}": "+".join(rng.permutation(pool)) for i in range(orders)}
    c.factors.k = tuple(range(len(pool) + 1))
    c.prefix.arg, c.prefix.order, c.prefix.count = "translated", "order", "k"
    # English steps constant: E steps per entry (uniform sampling over the 1 + k entries)
    c.prefix.scale = f"intermediate.num_steps={english_steps},intermediate.eval_every={max(25, english_steps // 3)}"
    c.seeds = (0, 1)
    # k = 0 is one run per seed, the largest k one run per order
    power.configure(c, "rise of the reserved unseen languages from k = 0 to the largest k, per seed (mean over orders)",
                    (1 + 1 / orders) ** 0.5, effect=2.0, seeds=5)
    return c

