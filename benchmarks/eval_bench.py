"""The evaluator's own benchmark: one compiled stream over all languages of a task against the
plain way (one language after another, each padded to the task's max length), end to end
(forward, decode, score) in one process. Run through the harness:

    python -m benchmarks.bench --what eval [--eval-task tatoeba --eval-data DIR --eval-max-pairs 0]
"""
import logging
import statistics
import time

from xtreme_jax.evaluation import Evaluator
from xtreme_jax.tasks import get_task

log = logging.getLogger(__name__)


def benchmark_vs_naive(evaluator: Evaluator, task, sets: list, *, repeats: int = 3,
                       head: str | None = None) -> dict:
    """Wall time of the vectorized evaluation against the per-language loop (each language
    padded to the task's max length), both end to end (forward, decode, score) in this process.

    Compilation is excluded: the vectorized evaluation runs once first, and the naive loop's
    shapes are compiled on each distinct max length first. The medians of `repeats` runs are
    compared (the two modes alternate). Also reports whether both give the same scores.
    """
    task = get_task(task)
    warm = evaluator.evaluate_task(task, sets, mode="vectorized", head=head)
    seen = set()
    for s in sets:  # compile the naive shapes without a full naive pass
        if s.features.max_length not in seen:
            seen.add(s.features.max_length)
            evaluator.run(task.kind, [s.features], head=head or evaluator.heads.get(task.name, task.name),
                          mode="naive")
    times = {"vectorized": [], "naive": []}
    infos, scores = {}, {}
    for r in range(repeats):
        order = ("vectorized", "naive") if r % 2 == 0 else ("naive", "vectorized")
        for mode in order:
            t0 = time.perf_counter()
            res = evaluator.evaluate_task(task, sets, mode=mode, head=head)
            times[mode].append(time.perf_counter() - t0)
            infos[mode], scores[mode] = res.info, res.scores
    if scores["vectorized"] != scores["naive"]:
        log.warning("vectorized and naive scores differ: %s vs %s", scores["vectorized"], scores["naive"])
    vec, naive = statistics.median(times["vectorized"]), statistics.median(times["naive"])
    return {
        "task": warm.task, "languages": len(warm.info["languages"]), "repeats": repeats,
        "vectorized_s": vec, "naive_s": naive, "speedup": naive / vec,
        "vectorized_times": times["vectorized"], "naive_times": times["naive"],
        "vectorized_forward_s": infos["vectorized"]["forward_s"],
        "naive_forward_s": infos["naive"]["forward_s"],
        "vectorized_batches": infos["vectorized"]["batches"], "naive_batches": infos["naive"]["batches"],
        "real_tokens": infos["vectorized"]["real_tokens"],
        "vectorized_processed_tokens": infos["vectorized"]["processed_tokens_per_host"],
        "naive_processed_tokens": infos["naive"]["processed_tokens_per_host"],
        "compiles_vectorized": warm.info["compiles"], "compiles_naive": infos["naive"]["compiles"],
        "same_scores": scores["vectorized"] == scores["naive"],
        "buckets": list(evaluator.buckets or ()), "batch_size": evaluator.batch_size,
    }
