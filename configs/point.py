"""One resolved run config from a JSON file: how the study layer runs each point.

    python -m xtreme_jax.main --config=configs/point.py:DIR/runs/HASH/point.json --workdir=DIR/runs/HASH

The JSON is a full config as written by `python -m xtreme_jax.study` (or by a run's config.json);
it is applied on top of config.base_config(), so a misspelled or unknown key fails here. The path
may be local or gs://.
"""
import json

from etils import epath

from xtreme_jax.study.expand import run_config


def get_config(path=None):
    if not path:
        raise ValueError("configs/point.py needs the JSON file: --config=configs/point.py:PATH/point.json")
    try:
        plain = json.loads(epath.Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"configs/point.py: no such file {path}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"configs/point.py: {path} is not JSON ({e})") from None
    return run_config(plain, where=path)
