"""Part `eval`, the evaluator's own benchmark: one compiled stream over all languages of a task
against the plain way (one language after another, each padded to the task's max length), end
to end (forward, decode, score) in one process. Run through the harness:

    python -m benchmarks.bench --what eval [--eval-task tatoeba --eval-data DIR --eval-max-pairs 0]
"""
import logging
import os
import statistics
import sys
import tempfile
import time

from benchmarks.common import REPO, cfg_dict, model_config
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


def bench_eval(args) -> dict:
    """The evaluator (one stream over all languages) against the per-language loop
    (benchmark_vs_naive above), end to end, on --eval-task's data: by default the real Tatoeba
    kit, each language cut to its first --eval-max-pairs lines."""
    data_dir = args.eval_data or (_kit("tatoeba") if args.eval_task == "tatoeba" else None)
    if not data_dir or not os.path.isdir(data_dir):
        return {"todo": f"no {args.eval_task} data (the shared data kit was not found); pass --eval-data DIR"}
    from xtreme_jax import sharding
    from xtreme_jax.data.sources import Source
    from xtreme_jax.data.spm import train_xlmr_tokenizer
    from xtreme_jax.evaluation import Evaluator, load_eval_sets
    from xtreme_jax.tasks import get_task
    from xtreme_jax.train_step import create_model

    if args.eval_max_pairs:   # the first N lines of every file, in a temp dir
        cut = tempfile.mkdtemp(prefix="xtj-bench-eval-")
        for name in os.listdir(data_dir):
            src = os.path.join(data_dir, name)
            if os.path.isfile(src):
                with open(src, encoding="utf-8") as fi, open(os.path.join(cut, name), "w", encoding="utf-8") as fo:
                    for i, line in enumerate(fi):
                        if i >= args.eval_max_pairs:
                            break
                        fo.write(line)
        data_dir_used = cut
    else:
        data_dir_used = data_dir
    task = get_task(args.eval_task)
    source = Source("official", data_dir_used)
    langs = [l for l in args.eval_languages.split(",") if l] or list(task.language_list(source))
    found, texts = [], []
    for lang in langs:
        try:
            exs = task.load_examples(args.eval_split, lang, source)
        except Exception as err:  # noqa: BLE001 -- missing languages are skipped and listed
            print(f"[bench eval] skipping {lang}: {str(err).splitlines()[0]}", file=sys.stderr)
            continue
        found.append(lang)
        for e in exs:
            texts += [e[k] for k in ("text", "text_a", "text_b", "context", "question") if isinstance(e.get(k), str)]
            texts += [" ".join(e["tokens"])] if "tokens" in e else []
            texts += list(e.get("choices") or [])
    tok = train_xlmr_tokenizer(texts, tempfile.mkdtemp(prefix="xtj-bench-tok-"), vocab_size=args.eval_vocab)
    sets = load_eval_sets(task, tok, source, split=args.eval_split, languages=found)
    cfg = model_config(args, size=args.eval_size, layers=args.eval_layers, vocab=len(tok), dropout=0.0)
    mesh = sharding.make_mesh((-1, 1, 1))
    heads = {task.name: (task.kind, task.num_labels(source))} if task.has_head else {}
    evaluator = Evaluator(create_model(cfg, heads, mesh), mesh, batch_size=args.eval_batch)
    result = benchmark_vs_naive(evaluator, task, sets, repeats=args.eval_repeats)
    result.update(config=cfg_dict(cfg), data_dir=data_dir, max_pairs_per_language=args.eval_max_pairs,
                  vocab_size=len(tok), retrieval_layer=evaluator.retrieval_layer,
                  sentences=int(sum(s.features.num_rows for s in sets)))
    return result


def _kit(name: str) -> str | None:
    for root in (os.path.join(REPO, "..", "shared", "data"), os.path.join(REPO, "shared", "data")):
        p = os.path.normpath(os.path.join(root, name))
        if os.path.isdir(p):
            return p
    return None
