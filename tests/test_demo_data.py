"""The bundled demo data: reproducible from its generator, in the real formats, well formed, and every
translated split the same meanings as its English split."""
import collections
import csv
import json
import pathlib

import pytest

from xtreme_jax.data import demo

DEMO = pathlib.Path(demo.__file__).resolve().parent / "demo_files"
NLI_LABELS = ["entailment", "neutral", "contradiction"]
UPOS = {"ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
        "PUNCT", "SCONJ", "SYM", "VERB", "X"}
OTHERS = demo.LANGS[1:]
# (directory, text fields, label values) of the hub-schema intermediate tasks
HUB_TASKS = [("demo_para", ("question1", "question2"), (0, 1)), ("demo_sst", ("sentence",), (0, 1)),
             ("demo_entail", ("premise", "hypothesis"), (0, 1, 2))]


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def _tsv(path):
    with open(path, encoding="utf-8", newline="") as f:  # as XTREME reads it: no quoting
        return list(csv.reader(f, delimiter="\t", quotechar=None))


def _jsonl(path):
    return [json.loads(line) for line in _lines(path)]


def _tagged_sentences(path):
    """The udpos layout: `token<TAB>tag` lines, a blank line after each sentence."""
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n\n") and "\n\n\n" not in text
    return [[tuple(line.split("\t")) for line in block.split("\n")] for block in text.rstrip("\n").split("\n\n")]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    demo.generate(str(out))
    return out


@pytest.fixture(scope="module")
def lexicon():
    return demo.build_lexicon()


@pytest.fixture(scope="module")
def to_keys(lexicon):
    """sentence, lang -> Counter of meaning keys ("class:english", "fn:name", anchors, punctuation):
    the bag of meanings a sentence spells, whatever its language and word order."""
    spellings = {lang: {tuple(s.split()): k for k, s in table.items()} for lang, table in lexicon.items()}

    def parse(sentence, lang):
        words, keys, i = sentence.split(), [], 0
        while i < len(words):
            for n in (4, 3, 2, 1):
                key = spellings[lang].get(tuple(words[i:i + n]))
                if key:
                    break
            else:  # anchors, punctuation, and the bare "not" of an English do-question
                n, key = 1, {"not": "fn:not"}.get(words[i], words[i])
                assert key in demo.NAMES + demo.DIGITS + [",", "?", "fn:not"], (lang, words[i], sentence)
            keys.append(key)
            i += n
        return collections.Counter(keys)
    return parse


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_committed_files_match_the_generator_byte_for_byte(regenerated):
    committed = _files(DEMO)
    assert committed == _files(regenerated), "regenerate: python -m xtreme_jax.data.demo --out " + str(DEMO)
    for rel in committed:
        assert (DEMO / rel).read_bytes() == (regenerated / rel).read_bytes(), f"{rel} differs from the generator"


def test_total_size_is_small():
    assert sum((DEMO / rel).stat().st_size for rel in _files(DEMO)) < 10e6


def test_languages():
    langs = _lines(DEMO / "languages.txt")
    assert langs == demo.LANGS and langs[0] == "en" and len(langs) == len(set(langs)) >= 9
    for task in ("demo_nli", "demo_para", "demo_sst", "demo_entail", "demo_pos"):
        assert _lines(DEMO / task / "languages.txt") == langs
    for lang in langs:
        assert (DEMO / "mlm" / f"{lang}.txt").is_file()
        for split in ("dev", "test"):
            assert (DEMO / "demo_nli" / f"{split}-{lang}.tsv").is_file()
        for split in ("train", "dev", "test"):
            assert (DEMO / "demo_pos" / f"{split}-{lang}.tsv").is_file()
    assert sorted(p.name for p in (DEMO / "demo_nli").glob("train-*.tsv")) == ["train-en.tsv"]
    assert sorted(p.name for p in (DEMO / "demo_nli" / "translate-train").iterdir()) == sorted(
        f"en-{lang}-translated.tsv" for lang in OTHERS)
    # related (English function words) and unrelated languages, several word orders and scripts
    assert 3 <= len(demo.SHARED_FUNCTION_WORDS) <= len(OTHERS) - 3
    assert len({demo.WORD_ORDER[l] for l in OTHERS}) == 3


@pytest.mark.parametrize("name", ["train-en"] + [f"{s}-{lang}" for s in ("dev", "test") for lang in demo.LANGS])
def test_nli_tsv_format_and_balance(name):
    rows = _tsv(DEMO / "demo_nli" / f"{name}.tsv")
    assert len(rows) == demo.SIZES["nli_" + name.split("-")[0]]
    assert all(len(r) == 3 and r[0] and r[1] for r in rows)
    counts = collections.Counter(r[2] for r in rows)
    assert set(counts) == set(NLI_LABELS) and max(counts.values()) - min(counts.values()) <= 1


def test_nli_eval_sets_are_parallel(to_keys):
    for split in ("dev", "test"):
        en = _tsv(DEMO / "demo_nli" / f"{split}-en.tsv")
        for lang in OTHERS:
            rows = _tsv(DEMO / "demo_nli" / f"{split}-{lang}.tsv")
            assert [r[2] for r in rows] == [r[2] for r in en]
            for a, b in zip(en, rows):
                assert to_keys(a[0], "en") == to_keys(b[0], lang) and to_keys(a[1], "en") == to_keys(b[1], lang)


@pytest.mark.parametrize("lang", OTHERS)
def test_translate_train_lines_up_with_english_train(lang, to_keys):
    """Official translate-train layout: original pair, translated pair, label; row i is English train
    row i rendered in `lang`."""
    rows = _tsv(DEMO / "demo_nli" / "translate-train" / f"en-{lang}-translated.tsv")
    en = _tsv(DEMO / "demo_nli" / "train-en.tsv")
    assert len(rows) == demo.SIZES["nli_translate_train"] and all(len(r) == 5 for r in rows)
    assert [[r[0], r[1], r[4]] for r in rows] == en[:len(rows)]
    for r in rows:
        assert to_keys(r[0], "en") == to_keys(r[2], lang) and to_keys(r[1], "en") == to_keys(r[3], lang)
    counts = collections.Counter(r[4] for r in rows)
    assert max(counts.values()) / len(rows) < 0.36


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


@pytest.mark.parametrize("task,fields,labels", HUB_TASKS)
def test_intermediate_tasks_hub_schema_and_translations(task, fields, labels, to_keys):
    schema = {**{f: str for f in fields}, "label": int, "idx": int}
    for split in ("train", "validation"):
        en = _jsonl(DEMO / task / f"{split}.jsonl")
        assert len(en) == demo.SIZES[f"{task[5:]}_{split}"]
        counts = collections.Counter(r["label"] for r in en)
        assert set(counts) == set(labels) and max(counts.values()) - min(counts.values()) <= 1
        for lang in demo.LANGS:
            rows = en if lang == "en" else _jsonl(DEMO / task / f"{split}-{lang}.jsonl")
            assert len(rows) == (min(len(en), demo.SIZES["translated_train"]) if split == "train" and lang != "en"
                                 else len(en))
            for i, (r, e) in enumerate(zip(rows, en)):
                assert set(r) == set(schema) and all(isinstance(r[k], t) for k, t in schema.items())
                assert r["idx"] == i and r["label"] == e["label"]
                for f in fields:
                    assert to_keys(r[f], lang) == to_keys(e[f], "en"), (task, lang, r, e)


def test_entail_labels_follow_subject_monotonicity():
    """demo_entail: "all" is downward monotone in its noun, "some" upward; see entail_example."""
    adjectives = set(demo.WORDS["adj"])
    for split in ("train", "validation"):
        for r in _jsonl(DEMO / "demo_entail" / f"{split}.jsonl"):
            p, h = r["premise"].split(), r["hypothesis"].split()
            q = p[0]
            assert q in ("all", "some") and h[0] == q
            sp, sh = p[1] if p[1] in adjectives else None, h[1] if h[1] in adjectives else None
            rel = "same" if sp == sh else "add" if sp is None else "drop" if sh is None else "swap"
            if ("not" in p) == ("not" in h):
                label = 0 if rel == "same" or rel == ("add" if q == "all" else "drop") else 1
            else:
                label = 2 if q == "all" and rel != "swap" else 1
            assert r["label"] == label, r


def test_pos_tagging_layout_tags_and_translations(lexicon, to_keys):
    """demo_pos: XTREME udpos layout; each word's tag is its class's UPOS tag (lexicon.tsv), and
    each language's sentences are the English ones, word for word in meaning and tag."""
    rows = [r.split("\t") for r in _lines(DEMO / "lexicon.tsv")]
    tag_of = {(lang, w): r[1] for r in rows[1:] for lang, w in zip(demo.LANGS, r[2:])
              if "+" not in r[1]}
    for split in ("train", "dev", "test"):
        en = _tagged_sentences(DEMO / "demo_pos" / f"{split}-en.tsv")
        assert len(en) == demo.SIZES[f"pos_{split}"]
        for lang in demo.LANGS:
            sents = _tagged_sentences(DEMO / "demo_pos" / f"{split}-{lang}.tsv")
            assert len(sents) == (min(len(en), demo.SIZES["translated_train"]) if split == "train" and lang != "en"
                                  else len(en))
            for s, e in zip(sents, en):
                assert all(len(tok) == 2 and tok[1] in UPOS for tok in s)
                for w, t in s:
                    assert tag_of.get((lang, w), t) == t, (lang, w, t)
                words = lambda x: " ".join(w for w, _ in x)  # noqa: E731
                assert to_keys(words(s), lang) == to_keys(words(e), "en")
                # "do not" is AUX PART in English spelling, one PART word in a language of its own
                aux = "" if lang == "en" or lang in demo.SHARED_FUNCTION_WORDS else "AUX"
                assert (collections.Counter(t for _, t in s if t != aux)
                        == collections.Counter(t for _, t in e if t != aux))
    tags = collections.Counter(t for s in _tagged_sentences(DEMO / "demo_pos" / "train-en.tsv") for _, t in s)
    assert {"DET", "NOUN", "VERB", "ADJ", "ADP", "PROPN", "NUM", "AUX", "PART", "CCONJ"} <= set(tags)


def test_lexicons_share_only_anchors(lexicon):
    """No content word is spelled the same in two languages; function words are either English's
    (the related languages) or the language's own; only digits and names are shared by all."""
    anchors = set(demo.NAMES) | set(demo.DIGITS)
    owner = {}
    for lang, table in lexicon.items():
        assert len(table) == len(set(table.values())), f"{lang} spells two words the same"
        for key, spelling in table.items():
            assert not set(spelling.split()) & anchors
            if key.startswith("fn:") and lang in demo.SHARED_FUNCTION_WORDS:
                assert spelling == lexicon["en"][key]
                continue
            for w in spelling.split():
                assert owner.setdefault(w, lang) == lang, f"{w!r} is in both {owner[w]} and {lang}"
    # letters: each synthetic language writes with its own consonants
    for a in OTHERS:
        for b in OTHERS:
            if a < b:
                assert not set(demo.PHONOLOGY[a][0]) & set(demo.PHONOLOGY[b][0])
    rows = [r.split("\t") for r in _lines(DEMO / "lexicon.tsv")]
    assert rows[0] == ["class", "upos"] + demo.LANGS
    assert [r[2:] for r in rows[1:len(lexicon["en"]) + 1]] == [[lexicon[x][k] for x in demo.LANGS] for k in lexicon["en"]]
    assert [r[2:] for r in rows[len(lexicon["en"]) + 1:]] == [[a] * len(demo.LANGS) for a in demo.NAMES + demo.DIGITS]


def test_monolingual_text_uses_only_its_own_lexicon(lexicon):
    anchors = set(demo.NAMES) | set(demo.DIGITS) | {",", "?"}
    for lang in demo.LANGS:
        vocab = {w for spelling in lexicon[lang].values() for w in spelling.split()} | anchors
        for premise, hypothesis, _ in _tsv(DEMO / "demo_nli" / f"dev-{lang}.tsv"):
            assert set((premise + " " + hypothesis).split()) <= vocab
        if lang != "en":
            for r in _jsonl(DEMO / "demo_para" / f"train-{lang}.jsonl"):
                assert set((r["question1"] + " " + r["question2"]).split()) <= vocab


def test_mlm_corpus_is_code_switched(lexicon):
    xa = {w for key, w in lexicon["xa"].items() if not key.startswith("fn:")}  # content words
    lines = _lines(DEMO / "mlm" / "en.txt")
    assert len(lines) == demo.SIZES["mlm_lines"]
    mixed = sum(bool(set(line.split()) & xa) for line in lines)
    assert 0.01 * len(lines) < mixed < 0.5 * len(lines)


def test_tokenizer_loads_as_xlmr_covers_every_file_and_every_pair_fits_64_tokens():
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(DEMO / "tokenizer"))
    assert (tok.cls_token_id, tok.pad_token_id, tok.sep_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == len(tok) - 1 and len(tok) <= 1024  # the demo model sizes' vocab
    premise, hypothesis, _ = _tsv(DEMO / "demo_nli" / "dev-xd.tsv")[0]
    ids = tok(premise, hypothesis)["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and ids.count(2) == 3
    assert any(a == b == 2 for a, b in zip(ids, ids[1:]))  # <s> A </s></s> B </s>
    pairs = [(r[0], r[1]) for lang in demo.LANGS for s in ("dev", "test") for r in _tsv(DEMO / "demo_nli" / f"{s}-{lang}.tsv")]
    pairs += [(r[2], r[3]) for p in (DEMO / "demo_nli" / "translate-train").iterdir() for r in _tsv(p)]
    singles = [line for lang in demo.LANGS for line in _lines(DEMO / "mlm" / f"{lang}.txt")]
    singles += [" ".join(w for w, _ in s) for p in (DEMO / "demo_pos").glob("*.tsv") for s in _tagged_sentences(p)]
    for task, fields, _ in HUB_TASKS:
        for p in (DEMO / task).glob("*.jsonl"):
            if len(fields) == 2:
                pairs += [(r[fields[0]], r[fields[1]]) for r in _jsonl(p)]
            else:
                singles += [r[fields[0]] for r in _jsonl(p)]
    encoded = tok([a for a, _ in pairs], [b for _, b in pairs])["input_ids"] + tok(singles)["input_ids"]
    assert not any(tok.unk_token_id in ids for ids in encoded)
    assert max(len(ids) for ids in encoded) <= 64
