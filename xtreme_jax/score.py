"""Score a leaderboard submission folder: same JSON keys and numbers as XTREME's evaluate.py.

  python -m xtreme_jax.score --prediction_folder P --label_folder L [--xtreme_version xtreme-r]

Prints the JSON to stdout (and to --output_file if given); notes and errors go to stderr.
"""

import argparse
import json
import os
import sys

from xtreme_jax.files import write_atomic
from xtreme_jax.scoring import ScoringError, evaluate_folders


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m xtreme_jax.score", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prediction_folder", required=True,
                        help="folder with one sub-folder per task holding test-{lang}.{ext}")
    parser.add_argument("--label_folder", required=True, help="gold files in the same layout")
    parser.add_argument("--xtreme_version", default="xtreme", choices=["xtreme", "xtreme-r"])
    parser.add_argument("--output_file", default=None, help="also write the JSON here")
    parser.add_argument("--extras", action="store_true",
                        help="add non-official metrics (udpos token_accuracy)")
    args = parser.parse_args(argv)
    if args.output_file and os.path.isdir(args.output_file):
        print(f"error: --output_file={args.output_file} is a directory; pass a file path such as "
              f"{os.path.join(args.output_file, 'scores.json')}", file=sys.stderr)
        return 2
    try:
        scores = evaluate_folders(args.prediction_folder, args.label_folder, args.xtreme_version,
                                  extras=args.extras)
    except ScoringError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(scores, indent=2)
    if args.output_file:
        write_atomic(args.output_file, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
