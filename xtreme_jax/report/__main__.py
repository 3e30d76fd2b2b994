"""python -m xtreme_jax.report: a bad or missing input file is one `error:` line, exit 2."""
import sys

from xtreme_jax.report.cli import main

try:
    code = main()
except (ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    code = 2
raise SystemExit(code)
