"""The bundled demo data: reproducible from its generator, in the real formats, and well formed."""
import collections
import csv
import json
import pathlib

import pytest

from xtreme_jax.data import demo

DEMO = pathlib.Path(demo.__file__).resolve().parent / "demo_files"
NLI_LABELS = {"entailment", "neutral", "contradiction"}


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def _tsv(path):
    with open(path, encoding="utf-8", newline="") as f:  # as XTREME reads it: no quoting
        return list(csv.reader(f, delimiter="\t", quotechar=None))


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    demo.generate(str(out))
    return out


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_committed_files_match_the_generator_byte_for_byte(regenerated):
    committed = _files(DEMO)
    assert committed == _files(regenerated), "regenerate: python -m xtreme_jax.data.demo --out " + str(DEMO)
    for rel in committed:
        assert (DEMO / rel).read_bytes() == (regenerated / rel).read_bytes(), f"{rel} differs from the generator"


def test_total_size_is_small():
    assert sum((DEMO / rel).stat().st_size for rel in _files(DEMO)) < 1.5e6


def test_languages():
    langs = _lines(DEMO / "languages.txt")
    assert langs[0] == "en" and len(langs) == len(set(langs)) >= 5
    assert _lines(DEMO / "demo_nli" / "languages.txt") == langs
    for lang in langs:
        assert (DEMO / "mlm" / f"{lang}.txt").is_file()
        for split in ("dev", "test"):
            assert (DEMO / "demo_nli" / f"{split}-{lang}.tsv").is_file()
    assert sorted(p.name for p in (DEMO / "demo_nli").glob("train-*.tsv")) == ["train-en.tsv"]


@pytest.mark.parametrize("name", ["train-en"] + [f"{s}-{lang}" for s in ("dev", "test") for lang in demo.LANGS])
def test_nli_tsv_format_and_balance(name):
    rows = _tsv(DEMO / "demo_nli" / f"{name}.tsv")
    assert rows and all(len(r) == 3 and r[0] and r[1] for r in rows)
    counts = collections.Counter(r[2] for r in rows)
    assert set(counts) == NLI_LABELS
    assert max(counts.values()) - min(counts.values()) <= 1


def test_nli_eval_sets_are_parallel():
    for split in ("dev", "test"):
        labels = [[r[2] for r in _tsv(DEMO / "demo_nli" / f"{split}-{lang}.tsv")] for lang in demo.LANGS]
        assert all(x == labels[0] for x in labels)
        en = _tsv(DEMO / "demo_nli" / f"{split}-en.tsv")
        xa = _tsv(DEMO / "demo_nli" / f"{split}-xa.tsv")
        assert all(a[0] != b[0] for a, b in zip(en, xa))


def _english_features(sentence):
    words = sentence.split()
    adjectives = set(demo.WORDS["adj"])
    mods = (sum(w in adjectives for w in words), "in" in words, "with" in words)
    return "not" in words, mods


def _rule(premise, hypothesis):
    """The label from polarity and the direction of the modifier change (monotonicity)."""
    neg_p, mods_p = _english_features(premise)
    neg_h, mods_h = _english_features(hypothesis)
    more = any(h > p for p, h in zip(mods_p, mods_h))
    less = any(h < p for p, h in zip(mods_p, mods_h))
    if (more if not neg_p else less):
        return "neutral"
    return "entailment" if neg_p == neg_h else "contradiction"


@pytest.mark.parametrize("name", ["train-en", "dev-en", "test-en"])
def test_nli_labels_follow_the_monotonicity_rule(name):
    for premise, hypothesis, label in _tsv(DEMO / "demo_nli" / f"{name}.tsv"):
        assert _rule(premise, hypothesis) == label, (premise, hypothesis, label)


def test_nli_hypothesis_alone_does_not_give_the_label():
    """No single word of the hypothesis (or premise) predicts the label much above chance."""
    rows = _tsv(DEMO / "demo_nli" / "train-en.tsv")
    for side in (0, 1):
        by_word = collections.defaultdict(collections.Counter)
        for r in rows:
            for w in set(r[side].split()):
                by_word[w][r[2]] += 1
        for w, c in by_word.items():
            n = sum(c.values())
            if n >= 100:
                assert max(c.values()) / n < 0.5, (side, w, c)


@pytest.mark.parametrize("task,fields", [
    ("demo_para", {"question1": str, "question2": str, "label": int, "idx": int}),
    ("demo_sst", {"sentence": str, "label": int, "idx": int}),
])
def test_intermediate_tasks_hub_schema(task, fields):
    for split in ("train", "validation"):
        rows = [json.loads(line) for line in _lines(DEMO / task / f"{split}.jsonl")]
        assert rows
        for i, r in enumerate(rows):
            assert set(r) == set(fields) and all(isinstance(r[k], t) for k, t in fields.items())
            assert r["idx"] == i and r["label"] in (0, 1)
        counts = collections.Counter(r["label"] for r in rows)
        assert abs(counts[0] - counts[1]) <= 1


def test_lexicons_share_only_anchors():
    """No content word is spelled the same in two languages; function words are either English's
    (the related languages) or the language's own; only digits and names are shared by all."""
    lex = demo.build_lexicon()
    anchors = set(demo.NAMES) | set(demo.DIGITS)
    owner = {}
    for lang, table in lex.items():
        assert len(table) == len(set(table.values())), f"{lang} spells two words the same"
        for key, spelling in table.items():
            assert not set(spelling.split()) & anchors
            if key.startswith("fn:") and lang in demo.SHARED_FUNCTION_WORDS:
                assert spelling == lex["en"][key]
                continue
            for w in spelling.split():
                assert owner.setdefault(w, lang) == lang, f"{w!r} is in both {owner[w]} and {lang}"
    assert set(demo.SHARED_FUNCTION_WORDS) < set(demo.LANGS[1:])  # at least one shares no word
    rows = [r.split("\t") for r in _lines(DEMO / "lexicon.tsv")]
    assert rows[0] == ["class"] + demo.LANGS
    expected = [[k.split(":")[0]] + [lex[x][k] for x in demo.LANGS] for k in lex["en"]]
    expected += [["anchor"] + [a] * len(demo.LANGS) for a in demo.NAMES + demo.DIGITS]
    assert rows[1:] == expected


def test_monolingual_eval_text_uses_only_its_own_lexicon():
    lex = demo.build_lexicon()
    anchors = set(demo.NAMES) | set(demo.DIGITS)
    for lang in demo.LANGS:
        vocab = {w for spelling in lex[lang].values() for w in spelling.split()} | anchors
        for premise, hypothesis, _ in _tsv(DEMO / "demo_nli" / f"dev-{lang}.tsv"):
            assert set((premise + " " + hypothesis).split()) <= vocab


def test_mlm_corpus_is_code_switched():
    lex = demo.build_lexicon()
    xa = {w for key, w in lex["xa"].items() if not key.startswith("fn:")}  # content words
    lines = _lines(DEMO / "mlm" / "en.txt")
    mixed = sum(bool(set(line.split()) & xa) for line in lines)
    assert 0.02 * len(lines) < mixed < 0.5 * len(lines)


def test_tokenizer_loads_as_xlmr():
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(DEMO / "tokenizer"))
    assert (tok.cls_token_id, tok.pad_token_id, tok.sep_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == len(tok) - 1
    premise, hypothesis, _ = _tsv(DEMO / "demo_nli" / "dev-xd.tsv")[0]
    ids = tok(premise, hypothesis)["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and ids.count(2) == 3
    assert any(a == b == 2 for a, b in zip(ids, ids[1:]))  # <s> A </s></s> B </s>
    lines = [line for lang in demo.LANGS for line in _lines(DEMO / "mlm" / f"{lang}.txt")[:300]]
    assert not any(tok.unk_token_id in ids for ids in tok(lines)["input_ids"])
