import os

# Eight fake CPU devices for sharding tests; must be set before jax is imported anywhere.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests compile the same small programs many times (and in subprocesses): share one cache.
import tempfile  # noqa: E402

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="xtreme_jax_jit_cache_"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# Nothing may download during tests.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pathlib  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def tok():
    """The tiny XLM-R-format tokenizer of the data tests (trained once per process)."""
    from test_data_support import tokenizer
    return tokenizer()


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """The tiny NLI task + its tokenizer (tests/smoke.py): the data of the pipeline tests."""
    from smoke import write_smoke
    return write_smoke(tmp_path_factory.mktemp("smoke"))


@pytest.fixture(scope="session")
def shared_data():
    """The real benchmark data kit beside the checkout; tests needing it skip with a reason."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real-data kit not found at {SHARED_DATA} (it sits beside the checkout in CI)")
    return SHARED_DATA
