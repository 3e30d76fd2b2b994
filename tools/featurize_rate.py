"""Tokenizing speed of the run's featurizers (examples per second, one process), the figure
behind compile.FEATURIZE_PER_S: XLM-R's sentencepiece (the e5-small conversion carries it) on
real kit data, no feature cache, each set featurized 3 times, the median kept.

    python tools/featurize_rate.py [--kit ../shared/data]
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools import kit_and_tokenizer  # noqa: E402
from xtreme_jax import config as C  # noqa: E402
from xtreme_jax.context import source  # noqa: E402
from xtreme_jax.data.cache import cached_features  # noqa: E402
from xtreme_jax.tasks import get_task  # noqa: E402

# (task, split, language, kit folder, max length): a pair classifier, a tagger, extractive QA
SETS = (("xnli", "dev", "en", "xnli", 256), ("panx", "dev", "en", "panx", 256), ("xquad", "test", "en", "xquad", 384))


def rate(task, split, lang, path, max_length, tok) -> tuple[int, float]:
    times = []
    for _ in range(3):
        t = time.perf_counter()
        f = cached_features(get_task(task), split, lang, tok, source=source(C.source("official", path)),
                            cache_dir=None, max_length=max_length, progress=False)
        times.append(time.perf_counter() - t)
    return f.num_examples, statistics.median(times)


def main(argv=None) -> int:
    got = kit_and_tokenizer(argv, __doc__.splitlines()[0])
    if got is None:
        return 2
    kit, tok = got
    print(f"load {os.getloadavg()[0]:.2f}")
    for task, split, lang, folder, length in SETS:
        n, s = rate(task, split, lang, os.path.join(kit, folder), length, tok)
        print(f"{task} {split}.{lang}: {n} examples (features) in {s:.2f} s (median of 3): {n / s:.0f} per s")
    return 0

if __name__ == "__main__":
    sys.exit(main())
