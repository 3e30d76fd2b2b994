"""Real benchmark data (the kit at ../shared/data): formats, counts, alignment on real scripts.

Skipped with a reason when the kit is absent (a fresh clone); CI has it beside the checkout.
"""
import json
import os
import tempfile

import numpy as np
import pytest

from xtreme_jax.data.sources import Source
from xtreme_jax.tasks import get_task, tags_to_words
from xtreme_jax.tasks.languages import TATOEBA_ISO3, XTREME_R


@pytest.fixture(scope="module")
def real_tok(shared_data):
    """A small sentencepiece model trained on real multilingual text from the kit."""
    from xtreme_jax.data import spm
    from xtreme_jax.data.tokenization import load_tokenizer
    texts = []
    for lang in ("en", "de", "zh", "th", "ar", "hi", "ru"):
        data = json.load(open(shared_data / "xquad" / f"xquad.{lang}.json", encoding="utf-8"))
        texts += [p["context"] for a in data["data"][:3] for p in a["paragraphs"]]
    for name in ("ja_gsd-ud-dev.conllu", "zh_gsd-ud-dev.conllu"):
        texts += [l[len("# text = "):] for l in open(shared_data / "ud" / name, encoding="utf-8")
                  if l.startswith("# text = ")][:100]
    out = tempfile.mkdtemp(prefix="xtj-realtok-")
    spm.train_xlmr_tokenizer(texts, out, vocab_size=4000)
    return load_tokenizer(out)


def test_ud_conllu(shared_data, real_tok):
    t, src = get_task("udpos"), Source("official", str(shared_data / "ud"))
    # counts from the kit's README (syntactic words; multi-word range lines skipped)
    train = t.load_examples("train", "en", src)
    assert len(train) == 3753 and sum(len(e["tokens"]) for e in train) == 69760
    de = t.load_examples("dev", "de", src)
    assert len(de) == 799 and sum(len(e["tokens"]) for e in de) == 12486
    en = t.load_examples("dev", "en", src)            # EWT + GUM dev merged, as XTREME does
    assert len(en) == 2002 + 784
    for lang in ("ja", "zh", "mr"):                   # no spaces (ja/zh), many MWT lines (mr)
        ex = t.load_examples("dev", lang, src)
        f = t.featurize(ex, real_tok, 128, lang=lang)
        labels = f.meta["labels"]
        gold = [e["tags"] for e in ex]
        preds = [np.where(f.row_tokens("labels", r) >= 0, f.row_tokens("labels", r), 0) for r in range(f.num_rows)]
        words = tags_to_words(f, preds, labels)
        # every word that has a sub-token gets its own gold tag back
        ok = sum(p == g for pw, gw in zip(words, gold) for p, g in zip(pw, gw))
        assert ok >= sum(len(g) for g in gold) - f.meta["words_without_tokens"], lang


def test_xquad(shared_data, real_tok):
    t, src = get_task("xquad"), Source("official", str(shared_data / "xquad"))
    for lang in XTREME_R["xquad"]:
        ex = t.load_examples("test", lang, src)       # every answer is found in its context
        assert len(ex) == 1190, lang
    for lang in ("en", "zh"):
        ex = t.load_examples("test", lang, src)[:500]
        f = t.featurize(ex, real_tok)                 # 384 / 128 / 64
        assert f.max_length == 384 and f.lengths.max() <= 384
        good = total = 0
        for r in range(f.num_rows):
            s, e = int(f.rows["start_positions"][r]), int(f.rows["end_positions"][r])
            if s == 0:
                continue
            off = f.row_tokens("offsets", r)
            gold = ex[int(f.rows["example_index"][r])]["answers"]["text"][0]
            got = ex[int(f.rows["example_index"][r])]["context"][off[s][0]:off[e][1]]
            total += 1
            good += got.strip() == gold.strip() or gold in got
        assert total >= 450 and good / total > 0.97, (lang, good, total)


def test_xcopa(shared_data, real_tok):
    t, src = get_task("xcopa"), Source("official", str(shared_data / "xcopa"))
    for lang in t.languages:
        assert len(t.load_examples("test", lang, src)) == 500
        assert len(t.load_examples("dev", lang, src)) == 100
    f = t.featurize(t.load_examples("dev", "zh", src), real_tok, 64)
    assert f.group == 2 and f.num_rows == 200


def test_tatoeba(shared_data):
    t, src = get_task("tatoeba"), Source("official", str(shared_data / "tatoeba"))
    sizes = dict(jv=205, ml=687, ta=307, te=234, ka=746, th=548, sw=390, kk=575)
    for lang in t.languages:
        assert lang in TATOEBA_ISO3
        ex = t.load_examples("test", lang, src)
        n = sizes.get(lang, 1000)
        assert len(ex) == 2 * n, lang
        assert ex[0]["keys"] == ex[1]["keys"] == ["0"]


def test_cosmosqa(shared_data):
    ex = get_task("cosmosqa").load_examples("dev", "en", Source("official", str(shared_data / "cosmosqa")))
    assert len(ex) == 2985 and all(len(e["choices"]) == 4 for e in ex)
    assert {e["label"] for e in ex} == {0, 1, 2, 3}


def test_inspect_cli_on_real_data(shared_data, real_tok, capsys):
    from xtreme_jax.data import inspect
    rc = inspect.main(["--task", "udpos", "--data_dir", str(shared_data / "ud"), "--lang", "de",
                       "--split", "dev", "--tokenizer", real_tok.name_or_path])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["examples"] == 799 and out["label_counts"]["NOUN"] > 1000
    eff = out["padding_efficiency"]
    assert 0 < eff["pad_to_max"] < eff["buckets"] < eff["packing"] <= 1
    assert set(out["token_length"]) >= {"p50", "p90", "p95", "p99", "max"}
    assert os.path.isdir(real_tok.name_or_path)
