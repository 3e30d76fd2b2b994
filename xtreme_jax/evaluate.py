"""python -m xtreme_jax.evaluate --config=configs/X.py[:args] --checkpoint=DIR --workdir=OUT

Zero-shot scoring of a checkpoint on every language of the tasks in the config's evaluate
section (default languages: those of config.evaluate.benchmark). DIR: a finished phase of a run
(RUN/target, or its final/), whose model and tokenizer settings are taken from RUN/config.json;
or an HF checkpoint directory / hub id. Results go to OUT/evaluate/results, as in a run: one
folder per checkpoint (another checkpoint's results there are refused; the same checkpoint's are
replaced whole). The library is xtreme_jax.evaluation; the phase glue is
xtreme_jax.phases.evaluate_checkpoint.
"""
import logging
import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/X.py[:args]; its evaluate section "
                                          "lists the tasks")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "a finished phase of a run (RUN/target) or an "
                                  "HF checkpoint directory / hub id")
_WORKDIR = flags.DEFINE_string("workdir", None, "results go to WORKDIR/evaluate/results (tokenized "
                               "features to WORKDIR/cache unless config.data.cache_dir is set)")
flags.mark_flags_as_required(["config", "checkpoint", "workdir"])


def main(argv):
    # The library is imported after the flags are parsed: --help and a bad flag answer at once.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "orbax", "jax._src", "grain"):  # checkpoint-restore INFO lines, not ours
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from xtreme_jax.config import ConfigError
    from xtreme_jax.data.errors import DataError
    from xtreme_jax.phases import evaluate_checkpoint
    try:
        evaluate_checkpoint(_CONFIG.value, _CHECKPOINT.value, _WORKDIR.value)
    except (ConfigError, DataError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def _parse_flags(argv):
    from xtreme_jax.config import config_file_problem, flag_error_line, last_override_wins
    sys.argv = argv = last_override_wins(argv)  # a repeated tuple override replaces, not appends
    problem = config_file_problem(argv)
    try:
        if problem:
            raise flags.Error(problem)
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(f"error: {flag_error_line(e)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
