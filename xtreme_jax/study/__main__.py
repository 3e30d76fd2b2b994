"""python -m xtreme_jax.study plan|run|status|report --config=configs/studies/NAME.py[:args] --workdir=DIR"""
from xtreme_jax.study.cli import run

if __name__ == "__main__":
    run()
