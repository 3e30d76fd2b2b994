"""Cost estimate of a plan: steps x measured step time, in accelerator-hours, with the source of
every step time.

Step times come from measurements where there are any and are derived from them otherwise, and
each estimate says which:
- **measured**: a row of MEASURED at the same model, accelerator, batch and sequence length;
- **scaled**: a measured row of the same model and accelerator at another batch / length, scaled
  by the tokens per step;
- **FLOP-scaled**: a measured row of another model (or accelerator) scaled by training FLOPs per
  step (6 N_nonembedding + 12 L S d per token) and, across accelerators, by the ratio of their
  bf16 peaks, i.e. the same MFU assumed.
An evaluation pass is costed as forward steps (1/3 of a training step) over the test examples, and
so is every validation during training (each eval_every steps and at the last step, up to
eval_examples dev examples per validated entry: 15 XNLI languages at full scale add ~15% to a
translate-train-all run). A phase with model.remat recomputes each layer's forward in the backward
pass: 4/3 of a measured step without it (the FLOP ratio; measured rows are without remat).
At tiny scale each run also pays a measured fixed cost (process start, compilation, data).
"""
from __future__ import annotations

import dataclasses

from xtreme_jax.study.validate import model_shape
from xtreme_jax.tasks import get_task

# bf16 dense peak per chip, TFLOP/s (DESIGN section 5), for FLOP scaling across accelerators.
PEAK_TFLOPS = {"h100": 989.0, "a100": 312.0, "v4": 275.0, "v5e": 197.0, "v5p": 459.0, "v6e": 918.0}


@dataclasses.dataclass(frozen=True)
class Row:
    model: str         # KNOWN_MODELS id or a size preset name
    accelerator: str
    batch: int
    seq: int
    seconds: float     # per training step
    source: str


MEASURED = (
    # remat off in both (benchmarks.bench without --remat)
    Row("FacebookAI/xlm-roberta-large", "h100", 32, 128, 0.0348,
        "docs/benchmarks.md 'H100: measured': XLM-R large, B=32, S=128, bf16, 22.0% MFU"),
    Row("FacebookAI/xlm-roberta-large", "h100", 256, 128, 0.192,
        "docs/benchmarks.md 'H100: measured': XLM-R large, B=256, S=128, bf16, 31.9% MFU"),
    # The demo presets on this 2-core CPU (Xeon 2.0 GHz), fp32, no dropout, 5 rounds x 10 steps, each
    # with the preset's own layers and 1024 vocabulary (the bench's CPU default is 2 layers x 32k):
    Row("tiny", "cpu", 32, 64, 0.043, "benchmarks.bench --what step --size tiny --layers 2 --vocab 1024 --batch 32 "
        "--seq 64 --no-torch --dropout 0 on this 2-core CPU (load ~2.1)"),
    Row("mini", "cpu", 32, 64, 0.208, "benchmarks.bench --what step --size mini --layers 4 --vocab 1024 --batch 32 "
        "--seq 64 --no-torch --dropout 0 on this 2-core CPU (load ~2.1)"),
    Row("midi", "cpu", 32, 64, 0.616, "benchmarks.bench --what step --size midi --layers 4 --vocab 1024 --batch 32 "
        "--seq 64 --no-torch --dropout 0 on this 2-core CPU (load ~2.1)"),
)
# Fixed cost of one run at tiny scale on this CPU: process start (imports ~5 s), tracing and
# compiling (~5 s with the persistent cache warm), data, checkpoints: a 200-step tiny target run
# took 20-22 s wall of which ~7.5 s were steps (docs/studies.md).
CPU_RUN_OVERHEAD_S = 13.0
# Approximate test examples per language of the benchmark tasks (XTREME / XTREME-R papers), for
# the cost of evaluation when the data are not at hand.
TEST_EXAMPLES = {"xnli": 5010, "pawsx": 2000, "udpos": 1000, "panx": 1000, "xquad": 1190, "mlqa": 5000,
                 "tydiqa": 700, "xcopa": 500, "tatoeba": 1000, "bucc2018": 10000, "mewslix": 2000,
                 "lareqa": 1190}


def flops_per_token(shape: dict, seq: int) -> float:
    """Training FLOPs per token: 6 N_nonembedding + 12 L S d (DESIGN section 5)."""
    L, d, f = shape["layers"], shape["hidden"], shape["ffn"]
    return 6 * L * (4 * d * d + 2 * d * f) + 12 * L * seq * d


def step_time(shape: dict, accelerator: str, batch: int, seq: int) -> tuple[float, str]:
    """(seconds per training step, where the number comes from)."""
    name = shape["name"]
    same = [r for r in MEASURED if r.model == name and r.accelerator == accelerator]
    for r in same:
        if r.batch == batch and r.seq == seq:
            return r.seconds, f"measured ({r.source})"
    if same:
        r = min(same, key=lambda r: abs(r.batch * r.seq - batch * seq))
        return r.seconds * batch * seq / (r.batch * r.seq), f"scaled by tokens/step from {r.source}"
    on_acc = [r for r in MEASURED if r.accelerator == accelerator]
    if accelerator == "cpu" or not on_acc:
        pool = on_acc or [r for r in MEASURED if r.accelerator in PEAK_TFLOPS]
    else:
        pool = on_acc
    if not pool:
        raise ValueError(f"no step time measured on {accelerator!r}; known: {sorted({r.accelerator for r in MEASURED})}")
    r = max(pool, key=lambda r: r.batch == 32)  # fine-tuning batches: prefer the B=32 row
    ref = model_shape({"model": {"pretrained": r.model if "/" in r.model else "", "size": r.model}})
    ratio = (flops_per_token(shape, seq) * batch * seq) / (flops_per_token(ref, r.seq) * r.batch * r.seq)
    note = f"FLOP-scaled from {r.source}"
    if r.accelerator != accelerator:
        if accelerator not in PEAK_TFLOPS:
            raise ValueError(f"unknown accelerator {accelerator!r}; choose from {sorted(PEAK_TFLOPS) + ['cpu']}")
        ratio *= PEAK_TFLOPS[r.accelerator] / PEAK_TFLOPS[accelerator]
        note += f", {r.accelerator} -> {accelerator} by bf16 peak (same MFU assumed)"
    return r.seconds * ratio, note


def phase_seq(config: dict, phase: str) -> int:
    """Sequence length a phase's step is costed at: the longest bucket its tasks can fill."""
    from xtreme_jax.tasks import get_task
    longest = max((t["max_length"] or get_task(t["name"]).max_length) for t in config[phase]["tasks"])
    # the pipeline's rule (batching.resolve_buckets): a max length above every bucket is a bucket
    # itself (QA's 384 over buckets up to 256), so the step is costed at it, not at the top bucket
    return min([b for b in config["data"]["buckets"] if b >= longest] or [longest])


REMAT = 4 / 3   # forward + recomputed forward + backward (2x forward) over forward + backward


def costed_flops(row: dict, shape: dict, remat: bool, chips: int) -> tuple[float, str]:
    """(FLOPs per chip a program is costed at, where they come from): the compiled count, or the
    model's own count (6N + 12LSd per token, x 4/3 with remat, a third for a forward; a floor: it
    leaves out heads, embeddings and choices) where XLA's count is lower. XLA:TPU's cost analysis
    counts a collective matmul's looped einsums short: where the sharded layers become
    collective-permute loops (480-960 permutes: v5e at S=256, v6e at B=256 with remat) it reports
    16-34% fewer FLOPs than the compiles without them do for the same step (docs/tpu.md, round 4), and a plan costed on it would be that much low."""
    per_row = row["seq"] * flops_per_token(shape, row["seq"])
    per_row *= (REMAT if remat else 1.0) if row["train"] else 1 / 3
    floor = row["batch"] * per_row / chips
    return (row["flops"], "compiled") if row["flops"] >= floor else (floor, "model (XLA's count is lower)")


# Share of a task's units (examples; QA: doc-stride windows) of at most L tokens under XLM-R's
# sentencepiece through the run's featurizers, measured on the English sets of the data kit:
# `python tools/featurize_rate.py` (its "share of units <= L"). Training batches hold one
# bucket's units (data/batching.py), so these are the shares of steps per bucket too.
LENGTH_CDF = {
    "xnli": {32: 0.2707, 64: 0.9502, 128: 1.0, 256: 1.0, 384: 1.0},          # dev.en
    "pawsx": {32: 0.019, 64: 0.5595, 128: 1.0, 256: 1.0, 384: 1.0},          # dev.en
    "panx": {32: 0.9691, 64: 0.9976, 128: 0.9995, 256: 1.0, 384: 1.0},       # dev.en
    "udpos": {32: 0.8062, 64: 0.9792, 128: 1.0, 256: 1.0, 384: 1.0},         # dev.en
    "xquad": {32: 0.0, 64: 0.0165, 128: 0.0898, 256: 0.7528, 384: 1.0},      # test.en
    "tydiqa": {32: 0.0022, 64: 0.0579, 128: 0.3341, 256: 0.8552, 384: 1.0},  # dev.en
    "sst2": {32: 0.9056, 64: 0.9988, 128: 1.0, 256: 1.0, 384: 1.0},          # dev
    "cosmosqa": {32: 0.0, 64: 0.0007, 128: 0.6563, 256: 1.0, 384: 1.0},      # dev (4 choices: a unit's longest)
    "siqa": {32: 0.2871, 64: 0.998, 128: 1.0, 256: 1.0, 384: 1.0},           # dev
    "copa": {32: 0.96, 64: 1.0, 128: 1.0, 256: 1.0, 384: 1.0},               # val
    "hellaswag": {32: 0.0058, 64: 0.2217, 128: 0.7531, 256: 1.0, 384: 1.0},  # val (the kit's text conversion)
}
# Sets the kit does not hold, measured by their closest kit relative: XNLI's English is MNLI's
# genres and annotation (Conneau et al. 2018), XQuAD is SQuAD v1.1 dev, MLQA's English contexts
# are Wikipedia paragraphs like SQuAD's, XCOPA is COPA translated (lengths in other languages
# differ: a test pass's cost only). Any other task is costed at its longest bucket.
LENGTH_PROXY = {"mnli": "xnli", "mnli_easy": "xnli", "mnli_hard": "xnli", "squad": "xquad", "mlqa": "xquad",
                "xcopa": "copa"}


def bucket_shares(task: str, buckets) -> dict | None:
    """{bucket: share of the task's units (and training steps)} for sorted `buckets` (the top one
    the task's max length), or None when the task's lengths were not measured at those edges."""
    cdf = LENGTH_CDF.get(LENGTH_PROXY.get(task, task))
    if cdf is None or any(b not in cdf for b in buckets[:-1]):
        return None
    below = [cdf[b] for b in buckets[:-1]] + [1.0]   # longer units are truncated into the top bucket
    return {b: hi - lo for b, lo, hi in zip(buckets, [0.0] + below[:-1], below)}


def step_ratio(shape: dict, tasks, buckets) -> float:
    """Mean training-step FLOPs over the measured bucket mix, over a step at the longest bucket
    (6N + 12LSd per token): what every step costs relative to the longest bucket's. A phase of
    several tasks takes its largest task's ratio; an unmeasured task gives 1."""
    top = max(buckets)
    flops = lambda s: s * flops_per_token(shape, s)  # noqa: E731  one row of length s
    ratios = []
    for task in tasks:
        shares = bucket_shares(task, buckets)
        ratios.append(1.0 if shares is None else sum(p * flops(b) for b, p in shares.items()) / flops(top))
    return max(ratios, default=1.0)


def phase_buckets(config: dict, phase: str) -> tuple:
    """The length buckets a phase's batches are padded to (batching.resolve_buckets' rule)."""
    top = phase_seq(config, phase)
    return tuple(sorted({b for b in config["data"]["buckets"] if b < top} | {top}))


def validation_examples(pcfg: dict) -> int:
    """Dev examples a training phase forwards in all its validations (train_loop: every eval_every
    steps and at the last one, the first eval_examples of each validated entry's dev set)."""
    from xtreme_jax.tasks import get_task
    every = pcfg["eval_every"]
    if not every:
        return 0
    per_eval = sum(pcfg["eval_examples"] for t in pcfg["tasks"]
                   if "dev" in get_task(t["name"]).splits and get_task(t["name"]).family.validated)
    return per_eval * -(-pcfg["num_steps"] // every)


def node_cost(config: dict, phases: list[str], accelerator: str, chips: int, eval_examples: dict) -> dict:
    """{"seconds", "accelerator_hours", "steps", "sources"} of one node (its phases);
    `eval_examples`: {task: test examples} of its evaluate phase."""
    shape = model_shape(config)
    seconds, steps, sources = 0.0, 0, set()
    remat = REMAT if config["model"].get("remat") else 1.0
    if remat != 1.0:
        sources.add("x4/3 for model.remat (forward recomputed; FLOP ratio, not measured)")
    for phase in phases:
        if phase == "evaluate":
            batch = config["evaluate"]["batch_size"]
            buckets = config["evaluate"].get("buckets") or config["data"]["buckets"]
            for e in config["evaluate"]["tasks"]:
                n = (eval_examples or {}).get(e["name"], 0)
                if not n:
                    continue
                # a forward is 1/3 of a step, at the task's longest bucket x its measured bucket mix
                top = e.get("max_length") or get_task(e["name"]).max_length
                edges = tuple(sorted({b for b in buckets if b < top} | {top}))
                t, src = step_time(shape, accelerator, batch, top)
                mix = 1.0 if accelerator == "cpu" else step_ratio(shape, [e["name"]], edges)
                seconds += n / batch * t * mix / 3
                sources.add(src)
            continue
        p = config[phase]
        seq = phase_seq(config, phase)
        t, src = step_time(shape, accelerator, p["batch_size"], seq)
        # full scale: steps over the real sets' measured bucket mix (the demo data has its own)
        mix = 1.0 if accelerator == "cpu" else step_ratio(shape, [e["name"] for e in p["tasks"]],
                                                           phase_buckets(config, phase))
        if mix != 1.0:
            sources.add("steps over each task's measured length-bucket mix (study/cost.LENGTH_CDF), FLOP-scaled "
                        "from the longest bucket's step at the same MFU")
        seconds += p["num_steps"] * t * remat * mix
        steps += p["num_steps"]
        sources.add(src)
        n_dev = validation_examples(p)
        if n_dev:  # forward passes at the phase's batch (train_loop's Validator), dev sets bucketed alike
            seconds += n_dev / p["batch_size"] * t * mix / 3
    if accelerator == "cpu":
        seconds += CPU_RUN_OVERHEAD_S
        sources.add(f"+{CPU_RUN_OVERHEAD_S:.0f} s per run (process start, tracing, compiles, data; measured)")
    return {"seconds": seconds, "accelerator_hours": seconds * chips / 3600, "steps": steps,
            "sources": sorted(sources)}


def eval_examples_by_task(config: dict, data) -> dict:
    """{task: test examples a node evaluates, all its languages}: counted where the data was read,
    else TEST_EXAMPLES per language."""
    from xtreme_jax.study.validate import eval_languages
    out = {}
    for e in config["evaluate"]["tasks"]:
        for lang in eval_languages(config, e):
            key = (e["name"], config["evaluate"]["split"], lang, e["source"].get("type"),
                   e["source"].get("path"), e["source"].get("config"))
            out[e["name"]] = out.get(e["name"], 0) + (data.counts.get(key) or TEST_EXAMPLES.get(e["name"], 1000))
    return out


def eval_examples(config: dict, data) -> int:
    """Test examples a node evaluates (eval_examples_by_task, summed)."""
    return sum(eval_examples_by_task(config, data).values())


def plan_cost(graph, data, accelerator: str, chips: int) -> dict:
    """Per node cost, the total with shared work counted once, and what it would be unshared."""
    per_node = {}
    for h, node in graph.nodes.items():
        n_eval = eval_examples_by_task(node.config, data) if "evaluate" in node.phases else {}
        per_node[h] = node_cost(node.config, node.phases, accelerator, chips, n_eval)
    shared = sum(c["accelerator_hours"] for c in per_node.values())
    unshared = sum(per_node[n.hash]["accelerator_hours"] for i in range(len(graph.leaf)) for n in graph.chain(i)
                   if not any(i == j for j, _ in graph.collapsed))
    return {"nodes": per_node, "accelerator_hours": shared, "unshared_accelerator_hours": unshared,
            "accelerator": accelerator, "chips_per_run": chips,
            "sources": sorted({s for c in per_node.values() for s in c["sources"]})}
