"""python -m xtreme_jax.evaluate --config=configs/X.py[:args] --checkpoint=DIR --workdir=OUT

Zero-shot scoring of a checkpoint on every language of the tasks in the config's evaluate
section. DIR: a finished phase of a run (RUN/target, or its final/), or an HF checkpoint
directory / hub id. The library is xtreme_jax.evaluation (Evaluator, load_eval_sets, ...);
the phase glue is xtreme_jax.phases.evaluate_checkpoint.
"""
import sys

from absl import app, flags
from ml_collections import config_flags

from xtreme_jax.config import ConfigError
from xtreme_jax.data.errors import DataError
from xtreme_jax.phases import evaluate_checkpoint

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/X.py[:args]; its evaluate section "
                                          "lists the tasks")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "a finished phase of a run (RUN/target) or an "
                                  "HF checkpoint directory / hub id")
_WORKDIR = flags.DEFINE_string("workdir", None, "where results.json, tables and predictions go")
flags.mark_flags_as_required(["config", "checkpoint", "workdir"])


def main(argv):
    try:
        evaluate_checkpoint(_CONFIG.value, _CHECKPOINT.value, _WORKDIR.value)
    except (ConfigError, DataError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
