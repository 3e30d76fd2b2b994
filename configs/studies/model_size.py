"""Study 4, model_size: Does scaling the size of the pretrained model amplify or diminish the
relative performance difference between syntactic and semantic intermediate-task training for
zero-shot cross-lingual transfer on the PAWS-X dataset?

    python -m xtreme_jax.study plan|run|report --config=configs/studies/model_size.py:scale=tiny --workdir=DIR
    python -m xtreme_jax.study plan --config=configs/studies/model_size.py:scale=full --workdir=DIR

Design: model size (3 tiny, 4 full) x intermediate task (syntactic, semantic, none) x seeds. Gain = zero-shot
score with the task minus without it (same size and seed); each group averages its tasks.
Analysis: per size the syntactic and semantic gains and their difference (semantic - syntactic),
the difference in differences (that difference at the largest size minus at the smallest) with a
bootstrap CI over seeds, and its slope per decade of non-embedding parameters.

Tiny scale: encoders tiny / mini / midi (xtreme_jax.models.encoder presets: 0.1M / 0.8M / 3.2M
non-embedding parameters; midi's step is ~6x tiny's), each pretrained by MLM on the demo
languages; syntactic = demo_pos (UPOS tagging), semantic = demo_entail (NLI); the target is the demo
world's only target, demo_nli (the tiny world has no PAWS-X stand-in). Shorter phases than
demo.py's (MLM 300, intermediate 100, target 150 steps), 2 seeds and evaluation on English and
the five related languages keep it within 20 CPU minutes (`--config.seeds='(0,1,2)'`: ~25).
Full scale: one family, XLM-R base (85M non-embedding parameters), large (302M), XL (2.8B) and
XXL (9.7B; XL and XXL are pre-LayerNorm, configs/stilts.py model=xl / xxl); syntactic = UD-POS
English and CCG supertagging (CCGbank is LDC-licensed: local files), semantic = MNLI, ANLI+, QQP;
target PAWS-X.

args: scale=tiny|full; data= (full: local data root, default the hub); ccg= (full: the CCG files'
directory, default <data>/ccg: CCGbank is LDC-licensed, so CCG needs local files)
"""
from xtreme_jax.study import power, spec

QUESTION = ("Does scaling the size of the pretrained model amplify or diminish the relative performance "
            "difference between syntactic and semantic intermediate-task training for zero-shot "
            "cross-lingual transfer on the PAWS-X dataset?")


def get_config(arg=None):
    a = spec.parse_args(arg, scale="tiny", data="", ccg="")
    c = spec.study("model_size", QUESTION, a["scale"])
    if c.scale == "tiny":
        c.recipe = "configs/demo.py"
        c.fixed = "arm=with,mlm=all"
        # midi's step is 6x tiny's: shorter phases than demo.py's, two seeds and the languages that
        # transfer at this scale (the unrelated xe xf xh stay at chance) keep 3 sizes in 20 CPU minutes
        c.set = ("mlm.num_steps=300", "intermediate.num_steps=100", "intermediate.eval_every=50",
                 "target.num_steps=150", "target.eval_every=50", "target.save_every=150",
                 "evaluate.languages=en,xa,xb,xc,xd,xg")
        c.seeds = (0, 1)
        c.factors.size = ("tiny", "mini", "midi")
        syntactic, semantic = ("pos",), ("entail",)
    else:
        c.recipe = "configs/stilts.py"
        c.fixed = f"target=pawsx,data={a['data']}" + (f",ccg={a['ccg']}" if a["ccg"] else "")
        # one family (XLM-R base / large / XL / XXL); learning rate falling with size (XTREME's
        # 2e-5 base, 1e-5 large; XL and XXL lower, not yet swept); one intermediate budget for every
        # task, syntactic and semantic alike (10k steps of B=32)
        c.factors.size = {
            "base": "model=base,intermediate.lr=2e-5,target.lr=2e-5",
            "large": "model=large,intermediate.lr=1e-5,target.lr=1e-5",
            # the pre-LN XL / XXL (configs/stilts.py's presets: hub ids, remat, fsdp)
            "xl": "model=xl,intermediate.lr=7e-6,target.lr=7e-6",
            "xxl": "model=xxl,intermediate.lr=5e-6,target.lr=5e-6"}
        c.set = ("intermediate.num_steps=10000", "intermediate.eval_every=2500")
        syntactic, semantic = ("udpos", "ccg"), ("mnli", "anli+", "qqp")
    c.factors.intermediate = syntactic + semantic + ("none",)
    c.analysis.size = "size"
    c.analysis.task = "intermediate"
    c.analysis.baseline = "none"
    c.analysis.syntactic = syntactic
    c.analysis.semantic = semantic
    # per seed: mean of 3 semantic minus 2 syntactic runs, at two sizes
    power.configure(c, "difference in differences (semantic - syntactic gain, largest minus smallest size)",
                    (2 * (1 / len(semantic) + 1 / len(syntactic))) ** 0.5, effect=2.0, seeds=6)
    return c

