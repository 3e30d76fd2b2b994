"""Tokenizing speed of the run's featurizers (examples per second, one process), the figure
behind study/compiled_cost.FEATURIZE_PER_S: XLM-R's sentencepiece (the e5-small conversion carries it) on
real kit data, no feature cache, each set featurized 3 times, the median kept. Also, per set,
the share of training batches in each length bucket (training batches hold one bucket's units,
data/batching.py) and what that makes the mean step's FLOPs (6N + 12LSd, XLM-R large) against
a step at the longest bucket, which the cost models charge every step: how loose that bound is.

    python tools/featurize_rate.py [--kit ../shared/data]
"""
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools import kit_and_tokenizer  # noqa: E402
from xtreme_jax import config as C  # noqa: E402
from xtreme_jax.context import source  # noqa: E402
from xtreme_jax.data.cache import cached_features  # noqa: E402
from xtreme_jax.tasks import get_task  # noqa: E402

# (task, split, language, kit folder, max length): pair and single-sentence classifiers, taggers,
# extractive QA, multiple choice
SETS = (("xnli", "dev", "en", "xnli", 256), ("pawsx", "dev", "en", "pawsx", 256), ("panx", "dev", "en", "panx", 256),
        ("udpos", "dev", "en", "ud", 256), ("xquad", "test", "en", "xquad", 384),
        ("tydiqa", "dev", "en", "tydiqa", 384), ("sst2", "dev", "en", "sst2", 128),
        ("cosmosqa", "dev", "en", "cosmosqa", 256), ("siqa", "dev", "en", "siqa", 128), ("copa", "dev", "en", "copa", 128),
        ("hellaswag", "dev", "en", "hellaswag", 256))


def hellaswag_jsonl(kit_folder: str, out_dir: str) -> str:
    """The kit holds HellaSwag val only as a text conversion (6 lines an item: "activity: ctx",
    the gold label, 4 endings; its markers such as [header] removed); written as the reader's
    val.jsonl with the whole context as ctx_a. Each (context, ending) pair then has HellaSwag's
    tokens but for the activity label (+2-4) and the removed markers (-): a length sample, not
    the set."""
    import bz2
    import json
    with bz2.open(os.path.join(kit_folder, "hellaswag_val_full.txt.bz2"), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    path = os.path.join(out_dir, "val.jsonl")
    with open(path, "w", encoding="utf-8") as out:
        for i in range(0, len(lines) - 5, 6):
            item = dict(ind=i // 6, ctx_a=lines[i], ctx_b="", endings=lines[i + 2:i + 6], label=int(lines[i + 1]))
            out.write(json.dumps(item) + "\n")
    return out_dir


def kit_set(kit: str, task: str, folder: str, tmp: str) -> str:
    """The directory the reader takes `task` from: the kit's folder, or a conversion of it."""
    return hellaswag_jsonl(os.path.join(kit, folder), tmp) if task == "hellaswag" else os.path.join(kit, folder)


def rate(task, split, lang, path, max_length, tok) -> tuple[int, float]:
    times = []
    for _ in range(3):
        t = time.perf_counter()
        f = cached_features(get_task(task), split, lang, tok, source=source(C.source("official", path)),
                            cache_dir=None, max_length=max_length, progress=False)
        times.append(time.perf_counter() - t)
    return f.num_examples, statistics.median(times), f


def unit_lengths(f):
    """Each unit's length: a multiple-choice group's by its longest row (its batch's bucket)."""
    return f.lengths.reshape(-1, f.group).max(axis=1)


def length_cdf(f) -> dict:
    """{L: share of units <= L} at the edges study/cost.LENGTH_CDF keeps (4 decimals, as kept)."""
    lengths = unit_lengths(f)
    return {b: round(float((lengths <= b).mean()), 4) for b in (32, 64, 128, 256, 384)}


def bucket_line(f, max_length: int) -> str:
    """Share of units per bucket, and the mean step's FLOPs over the longest bucket's."""
    import numpy as np

    from xtreme_jax.data.batching import DEFAULT_BUCKETS
    from xtreme_jax.study.cost import flops_per_token
    from xtreme_jax.study.validate import KNOWN_MODELS
    buckets = sorted({b for b in DEFAULT_BUCKETS if b < max_length} | {max_length})
    lengths = unit_lengths(f)
    share = np.bincount(np.searchsorted(buckets, lengths), minlength=len(buckets)) / len(lengths)
    large = KNOWN_MODELS["FacebookAI/xlm-roberta-large"]
    step = lambda s: s * flops_per_token(large, s)  # noqa: E731  FLOPs of one row of length s
    ratio = sum(p * step(b) for p, b in zip(share, buckets)) / step(buckets[-1])
    return (" ".join(f"S{b}: {100 * p:.1f}%" for b, p in zip(buckets, share))
            + f"; mean step / step at S{buckets[-1]}: {ratio:.2f}; share of units <= L: {length_cdf(f)}")


def main(argv=None) -> int:
    got = kit_and_tokenizer(argv, __doc__.splitlines()[0])
    if got is None:
        return 2
    kit, tok = got
    print(f"load {os.getloadavg()[0]:.2f}")
    tmp = tempfile.mkdtemp()
    for task, split, lang, folder, length in SETS:
        n, s, f = rate(task, split, lang, kit_set(kit, task, folder, tmp), length, tok)
        print(f"{task} {split}.{lang}: {n} examples (features) in {s:.2f} s (median of 3): {n / s:.0f} per s")
        print("  " + bucket_line(f, length))
    return 0

if __name__ == "__main__":
    sys.exit(main())
