"""Developer tools that sit beside the library (not installed with it); run from the repo root."""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kit_and_tokenizer(argv, description: str):
    """(kit root, XLM-R's sentencepiece tokenizer) for a tool reading the data kit (--kit, default
    ../shared/data beside the checkout), or None after an `error:` line when the kit is absent."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--kit", default=os.path.join(ROOT, "..", "shared", "data"))
    args = ap.parse_args(argv)
    if not os.path.isdir(args.kit):
        print(f"error: --kit={args.kit}: no such directory; pass the data kit's root", file=sys.stderr)
        return None
    from tools import convert_e5
    from xtreme_jax.data.tokenization import load_tokenizer
    return args.kit, load_tokenizer(convert_e5.convert_e5())
