"""The command line:

  python -m xtreme_jax.report RESULTS.json --out DIR          tables + heatmap
  python -m xtreme_jax.report --compare A.json B.json --out DIR [--names X-STILTs XLM-R]
"""
from __future__ import annotations

import argparse
import os

from xtreme_jax.report.comparison import write_comparison
from xtreme_jax.report.plots import plot_heatmap
from xtreme_jax.report.results import read_results
from xtreme_jax.report.tables import write_tables


def main(argv=None) -> int:
    """Writes the report and prints its files. A bad results file raises ValueError naming it
    (`python -m xtreme_jax.report` turns that into one `error:` line and exit status 2)."""
    p = argparse.ArgumentParser(prog="python -m xtreme_jax.report",
                                description="Run reports: results.json, Markdown/CSV tables, a heatmap, "
                                            "and two-run comparisons.")
    p.add_argument("results", nargs="?", help="results.json of one run: write tables and a heatmap")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="two results.json files: A - B")
    p.add_argument("--names", nargs=2, default=None, metavar=("NAME_A", "NAME_B"),
                   help="labels of A and B (default: X-STILTs XLM-R)")
    p.add_argument("--metric", default=None, help="metric for every task instead of the defaults")
    p.add_argument("--out", required=True, help="output folder")
    args = p.parse_args(argv)
    if bool(args.results) == bool(args.compare):
        p.error("give either RESULTS.json or --compare A.json B.json")
    if args.compare:
        (ra, _), (rb, _) = read_results(args.compare[0]), read_results(args.compare[1])
        paths = write_comparison(args.out, ra, rb, tuple(args.names or ("X-STILTs", "XLM-R")), args.metric)
    else:
        results, _ = read_results(args.results)
        paths = write_tables(args.out, results, args.metric)
        paths["heatmap"] = plot_heatmap(os.path.join(args.out, "heatmap.png"), results, args.metric)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0
