"""study/cost.LENGTH_CDF, the measured length-bucket mix every cost model charges steps by, is what
tools/featurize_rate.py measures on the kit now: a featurizer or tokenizer change that moves the
lengths fails here instead of silently mis-costing every plan."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from real_model import e5_dir, e5_tok  # noqa: E402,F401  (fixtures)
from tools import featurize_rate  # noqa: E402
from xtreme_jax import config as C  # noqa: E402
from xtreme_jax.context import source  # noqa: E402
from xtreme_jax.data.cache import cached_features  # noqa: E402
from xtreme_jax.study.cost import LENGTH_CDF  # noqa: E402
from xtreme_jax.tasks import get_task  # noqa: E402


def test_length_cdf_is_the_kit_measured_through_the_run_featurizers(shared_data, e5_tok, tmp_path):
    assert sorted(t for t, *_ in featurize_rate.SETS) == sorted(LENGTH_CDF)
    for task, split, lang, folder, length in featurize_rate.SETS:
        f = cached_features(get_task(task), split, lang, e5_tok, cache_dir=None, max_length=length,
                            source=source(C.source("official", featurize_rate.kit_set(str(shared_data), task, folder,
                                                                                   str(tmp_path)))), progress=False)
        assert featurize_rate.length_cdf(f) == LENGTH_CDF[task], task
