"""Token lengths of the data kit under XLM-R's sentencepiece (the e5-small conversion carries it),
the figures behind the max-length choices in docs/recipe.md.

    python tools/token_lengths.py [--kit ../shared/data]

PAWS-X rows are tokenized as pairs (both sentences, as the classifier sees them), Tatoeba one
sentence per line. Prints per set: count, median, p99, max, and the share over 128 and 256 tokens.
"""
import glob
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools import kit_and_tokenizer  # noqa: E402


def summary(name, lengths) -> str:
    n = np.asarray(lengths)
    return (f"{name}: n={len(n)} median={np.median(n):.0f} p99={np.percentile(n, 99):.0f} max={n.max()} "
            f">128: {100 * (n > 128).mean():.2f}% >256: {100 * (n > 256).mean():.2f}%")


def pawsx_lengths(tok, kit):
    out = []
    for path in sorted(glob.glob(os.path.join(kit, "pawsx", "*.tsv"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                cols = line.rstrip("\n").split("\t")
                if len(cols) >= 3 and cols[0] != "sentence1":   # header of the XTREME files
                    out.append(len(tok(cols[0], cols[1])["input_ids"]))
    return out


def tatoeba_lengths(tok, kit):
    out = []
    for path in sorted(glob.glob(os.path.join(kit, "tatoeba", "tatoeba.*"))):
        with open(path, encoding="utf-8") as f:
            out += [len(tok(line.strip())["input_ids"]) for line in f]
    return out


def main(argv=None) -> int:
    got = kit_and_tokenizer(argv, __doc__.splitlines()[0])
    if got is None:
        return 2
    kit, tok = got
    print(summary("PAWS-X pairs", pawsx_lengths(tok, kit)))
    print(summary("Tatoeba sentences", tatoeba_lengths(tok, kit)))
    return 0

if __name__ == "__main__":
    sys.exit(main())
