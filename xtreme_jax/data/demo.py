"""Deterministic generator of the bundled multilingual demo data (no network).

    python -m xtreme_jax.data.demo --out DIR        # writes the files below into DIR
    python -m xtreme_jax.data.demo --out DIR --no-tokenizer

The world (languages, lexicons, grammar, task rules) lives in `xtreme_jax.data.demo_world`; this
module writes it out in the real formats. The committed copy is xtreme_jax/data/demo_files/; its
README.md lists every file, docs/demo_data.md explains the design and the measurements.
"""
import argparse
import io
import json
import os

import numpy as np

from xtreme_jax.data.demo_world import (  # noqa: F401  (re-exported: the tests and docs use demo.X)
    DIGITS, FUNCTION, LANGS, MODS, NAMES, NEGATIVE_VERBS, PHONOLOGY, POSITIVE_VERBS, SEED,
    SHARED_FUNCTION_WORDS, UPOS_OF_CLASS, UPOS_OF_FUNCTION, WORD_ORDER, WORDS, balanced_labels,
    build_lexicon, entail_example, mlm_lines, nli_example, para_example, pos_clauses, render,
    render_question, sst_example, tagged)

NLI_LABELS = ["entailment", "neutral", "contradiction"]  # XNLI strings; GLUE MNLI ids 0, 1, 2
VOCAB_SIZE = 1000  # an upper bound: the unigram trainer stops below it on this corpus
SIZES = dict(
    mlm_lines=2000,                                   # per language
    nli_train=6400, nli_dev=300, nli_test=600,        # target: English train; dev/test per language
    nli_translate_train=1600,                         # the first 1600 train pairs, per language
    para_train=2000, para_validation=200,
    sst_train=1000, sst_validation=200,
    entail_train=2000, entail_validation=200,
    pos_train=1000, pos_dev=200, pos_test=200,
    translated_train=500)                             # intermediate tasks: first 500 train rows, per language
MAX_PAIR_WORDS = 27  # demo_para / demo_entail pairs are capped so that every pair fits in 64 tokens
PART_STREAMS = ["mlm", "nli_train", "nli_eval", "para", "sst", "entail", "pos"]


def _write(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(line + "\n" for line in lines))


def _jsonl(rows):
    return [json.dumps(r, ensure_ascii=False) for r in rows]


def _capped(rng, make, label, render_pair):
    """An example whose rendered pair has at most MAX_PAIR_WORDS words in every language."""
    while True:
        ex = make(rng, label)
        if all(sum(len(s.split()) for s in render_pair(ex, lang)) <= MAX_PAIR_WORDS for lang in LANGS):
            return ex


def _translations(out, task, rows_by_lang, n_train):
    """English rows as train.jsonl / validation.jsonl (the hub's split names), every other language
    as train-{lang}.jsonl (its first `n_train` rows) and validation-{lang}.jsonl, plus languages.txt."""
    for split, by_lang in rows_by_lang.items():
        for lang, rows in by_lang.items():
            rows = rows[:n_train] if split == "train" and lang != "en" else rows
            name = f"{split}.jsonl" if lang == "en" else f"{split}-{lang}.jsonl"
            _write(os.path.join(out, task, name), _jsonl(rows))
    _write(os.path.join(out, task, "languages.txt"), LANGS)


def generate(out, tokenizer=True, seed=SEED):
    """Writes every demo file into `out`. Each part draws from its own RNG stream, and every
    translated split renders the very meanings of its English split."""
    lex = build_lexicon(seed)
    rngs = {k: np.random.default_rng([seed, i]) for i, k in enumerate(PART_STREAMS)}

    _write(os.path.join(out, "languages.txt"), LANGS)
    rows = ["\t".join(["class", "upos"] + LANGS)]
    for k in lex["en"]:
        cls, name = k.split(":", 1)
        upos = "+".join(UPOS_OF_FUNCTION[name]) if cls == "fn" else UPOS_OF_CLASS[cls]
        rows.append("\t".join([cls, upos] + [lex[x][k] for x in LANGS]))
    rows += ["\t".join(["anchor", "PROPN"] + [a] * len(LANGS)) for a in NAMES]
    rows += ["\t".join(["anchor", "NUM"] + [a] * len(LANGS)) for a in DIGITS]
    _write(os.path.join(out, "lexicon.tsv"), rows)

    # MLM corpus
    mlm = {lang: mlm_lines(rngs["mlm"], lang, lex, SIZES["mlm_lines"]) for lang in LANGS}
    for lang in LANGS:
        _write(os.path.join(out, "mlm", f"{lang}.txt"), mlm[lang])

    # target: demo_nli (XNLI layout) + translate-train (XTREME translate-train layout)
    nli = os.path.join(out, "demo_nli")
    pair = lambda p, h, lang: f"{render([p], lang, lex)}\t{render([h], lang, lex)}"  # noqa: E731
    rng = rngs["nli_train"]
    train = [nli_example(rng, y) + (y,) for y in balanced_labels(rng, SIZES["nli_train"], NLI_LABELS)]
    _write(os.path.join(nli, "train-en.tsv"), [f"{pair(p, h, 'en')}\t{y}" for p, h, y in train])
    for lang in LANGS[1:]:
        _write(os.path.join(nli, "translate-train", f"en-{lang}-translated.tsv"),
               [f"{pair(p, h, 'en')}\t{pair(p, h, lang)}\t{y}"
                for p, h, y in train[:SIZES["nli_translate_train"]]])
    rng = rngs["nli_eval"]
    for split in ("dev", "test"):  # one set of meanings per split, rendered in every language
        exs = [nli_example(rng, y) + (y,) for y in balanced_labels(rng, SIZES[f"nli_{split}"], NLI_LABELS)]
        for lang in LANGS:
            _write(os.path.join(nli, f"{split}-{lang}.tsv"), [f"{pair(p, h, lang)}\t{y}" for p, h, y in exs])
    _write(os.path.join(nli, "languages.txt"), LANGS)

    # demo_para: GLUE/QQP schema
    rng = rngs["para"]
    qs = lambda ex, lang: (render_question(ex[0], lang, lex, ex[2]),  # noqa: E731
                           render_question(ex[1], lang, lex, ex[3]))
    splits = {}
    for split in ("train", "validation"):
        exs = [(_capped(rng, para_example, y, qs), y) for y in balanced_labels(rng, SIZES[f"para_{split}"], [0, 1])]
        splits[split] = {lang: [dict(zip(("question1", "question2"), qs(ex, lang)), label=y, idx=i)
                                for i, (ex, y) in enumerate(exs)] for lang in LANGS}
    _translations(out, "demo_para", splits, SIZES["translated_train"])

    # demo_sst: GLUE/SST-2 schema
    rng = rngs["sst"]
    splits = {}
    for split in ("train", "validation"):
        exs = [(sst_example(rng, y), y) for y in balanced_labels(rng, SIZES[f"sst_{split}"], [0, 1])]
        splits[split] = {lang: [dict(sentence=render([c], lang, lex), label=y, idx=i)
                                for i, (c, y) in enumerate(exs)] for lang in LANGS}
    _translations(out, "demo_sst", splits, SIZES["translated_train"])

    # demo_entail: GLUE/MNLI schema (label ids in MNLI's order)
    rng = rngs["entail"]
    ph = lambda ex, lang: (render([ex[0]], lang, lex), render([ex[1]], lang, lex))  # noqa: E731
    splits = {}
    for split in ("train", "validation"):
        exs = [(_capped(rng, entail_example, y, ph), y)
               for y in balanced_labels(rng, SIZES[f"entail_{split}"], NLI_LABELS)]
        splits[split] = {lang: [dict(zip(("premise", "hypothesis"), ph(ex, lang)), label=NLI_LABELS.index(y), idx=i)
                                for i, (ex, y) in enumerate(exs)] for lang in LANGS}
    _translations(out, "demo_entail", splits, SIZES["translated_train"])

    # demo_pos: XTREME udpos layout, token<TAB>UPOS, a blank line after each sentence
    rng = rngs["pos"]
    for split in ("train", "dev", "test"):
        sents = [pos_clauses(rng) for _ in range(SIZES[f"pos_{split}"])]
        for lang in LANGS:
            keep = sents[:SIZES["translated_train"]] if split == "train" and lang != "en" else sents
            lines = [line for s in keep for line in [f"{w}\t{t}" for w, t in tagged(s, lang, lex)] + [""]]
            _write(os.path.join(out, "demo_pos", f"{split}-{lang}.tsv"), lines)
    _write(os.path.join(out, "demo_pos", "languages.txt"), LANGS)

    _write(os.path.join(out, "README.md"), [README.strip()])
    if tokenizer:
        train_tokenizer([line for lang in LANGS for line in mlm[lang]], os.path.join(out, "tokenizer"))


def train_tokenizer(texts, out_dir, vocab_size=VOCAB_SIZE):
    """`xtreme_jax.data.spm.train_xlmr_tokenizer` with the "identity" normalization rule: the demo
    text needs no normalization, and the default nmt_nfkc rule stores a ~240 KB character map in
    the model and again in tokenizer.json (ten times the size of everything else in the directory)."""
    import sentencepiece as spm
    from transformers import XLMRobertaTokenizer

    os.makedirs(out_dir, exist_ok=True)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)), model_writer=buf, vocab_size=vocab_size,
        model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
        normalization_rule_name="identity", num_threads=1, minloglevel=2)
    with open(os.path.join(out_dir, "sentencepiece.bpe.model"), "wb") as f:
        f.write(buf.getvalue())
    XLMRobertaTokenizer.from_pretrained(out_dir, local_files_only=True).save_pretrained(out_dir)
    # transformers also saves how the tokenizer was loaded ("is_local", "local_files_only", which
    # follow HF_HUB_OFFLINE); drop them so the file does not depend on the environment.
    path = os.path.join(out_dir, "tokenizer_config.json")
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    for key in ("is_local", "local_files_only"):
        config.pop(key, None)
    _write(path, [json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False)])


README = """
# Bundled demo data

Generated by `python -m xtreme_jax.data.demo --out xtreme_jax/data/demo_files`: deterministic
(fixed numpy seed), no network. Do not edit by hand: change `xtreme_jax/data/demo_world.py` /
`demo.py` and regenerate; `tests/test_demo_data.py` checks that these files match the generator
byte for byte. Design, what each part stands in for, and measurements: `docs/demo_data.md`.

Languages (`languages.txt`, English first): `en xa xb xc xd xe xf xg xh`. One grammar
(quantifier, subject, optional negation, verb, optional adjective, object, optional "in the PLACE",
optional "with NAME"), one meaning space. The eight synthetic languages spell every content word
with their own pseudo-words, each from its own letters; digits and names (anchors) are shared.

| language | function words | word order | letters |
|---|---|---|---|
| `xa`, `xb`, `xg` | English's (the, all, do not, in, with, ...) | English | Latin (`xg`: with háček) |
| `xc` | English's | adjectives after nouns | Latin |
| `xd` | English's | verb-final, negation after the verb | Latin |
| `xe` | its own | English | Latin |
| `xf` | its own | verb-final, negation after the verb | Greek |
| `xh` | its own | adjectives after nouns | Cyrillic |

`lexicon.tsv` lists every word in every language (class, UPOS tag, `en`, `xa`..`xh`).

| path | format | content |
|---|---|---|
| `mlm/{lang}.txt` | raw text, one sentence per line | 2000 lines per language, 1-2 clauses, 10% questions; 30% of lines code-switch, spelling some words in another language |
| `demo_nli/train-en.tsv` | XTREME `xnli` layout, no header: `premise<TAB>hypothesis<TAB>label` | target task: 6400 English pairs; labels `entailment` / `neutral` / `contradiction` (as XNLI), balanced |
| `demo_nli/dev-{lang}.tsv`, `demo_nli/test-{lang}.tsv` | same | 300 + 600 pairs per language: one set of meanings rendered in every language (parallel, like XNLI) |
| `demo_nli/translate-train/en-{lang}-translated.tsv` | XTREME translate-train layout: `en premise<TAB>en hypothesis<TAB>premise<TAB>hypothesis<TAB>label` | the first 1600 pairs of `train-en.tsv`, rendered in each non-English language |
| `demo_entail/{train,validation}.jsonl` | GLUE/MNLI hub schema: `premise`, `hypothesis`, `label` (0 entailment, 1 neutral, 2 contradiction), `idx` | intermediate, semantic: 2000 / 200 English pairs, subject monotonicity (balanced) |
| `demo_para/{train,validation}.jsonl` | GLUE/QQP hub schema: `question1`, `question2`, `label` (0/1), `idx` | intermediate, semantic: 2000 / 200 English question pairs; 1 = same question in other words (balanced) |
| `demo_sst/{train,validation}.jsonl` | GLUE/SST-2 hub schema: `sentence`, `label` (0/1), `idx` | intermediate, semantic: 1000 / 200 English sentences; 1 = positive (balanced) |
| `demo_{entail,para,sst}/{train,validation}-{lang}.jsonl` | same schema, same `idx` and label as the English row | translations into each non-English language: the first 500 train rows and all validation rows |
| `demo_pos/{train,dev,test}-{lang}.tsv` | XTREME `udpos` layout: `token<TAB>UPOS`, a blank line after each sentence | intermediate, syntactic: 1000 / 200 / 200 English sentences tagged with UPOS; every other language: the same sentences (train: the first 500) |
| `{demo_nli,demo_entail,demo_para,demo_sst,demo_pos}/languages.txt` | one code per line | the languages of that task's files |
| `tokenizer/` | XLM-R tokenizer directory: `sentencepiece.bpe.model`, `tokenizer.json`, `tokenizer_config.json` | unigram sentencepiece (identity normalization) trained on all `mlm/*.txt`; ~900 pieces; `transformers.AutoTokenizer.from_pretrained` |

Every translated split renders the very meanings of its English split (same `idx`, same label;
row `i` of a translate-train file is row `i` of `train-en.tsv`); the test checks it word by word
through the lexicon. Every pair and sentence fits in 64 tokens.

Labels.
- `demo_nli` (monotonicity of the verb phrase): the hypothesis restates the premise with the same
  or the opposite polarity and its verb-phrase modifiers (object adjective, place, "with NAME")
  kept, one dropped, one added, or one swapped for another. A positive verb phrase is upward
  monotone ("eat red apples in the park" entails "eat apples"), a negated one downward ("do not
  eat apples" entails "do not eat red apples"). A hypothesis that stays on the entailed side is
  `entailment` with the same polarity and `contradiction` with the opposite one; otherwise it is
  `neutral`. Neither sentence alone predicts the label.
- `demo_entail` (monotonicity of the subject): "all" is downward monotone in its noun ("all cats
  eat apples" entails "all small cats eat apples"), "some" upward ("some small cats eat apples"
  entails "some cats eat apples"). Same polarity: entailment when the subject adjective moved the
  monotone way (or stayed), else neutral; opposite polarity: contradiction with "all" unless the
  adjective was swapped, neutral with "some".
- `demo_para`: 1 when both questions ask about the same clause (templates "do ... ?", "is it true
  that ... ?", "... , right ?"), 0 when the polarity or one modifier differs.
- `demo_sst`: the sentiment of the verb (love, like, enjoy, admire, praise vs hate, fear, dislike,
  avoid, blame), flipped by negation.
- `demo_pos`: each word's UPOS tag from its class (DET, NOUN, ADJ, VERB, ADP, PROPN, NUM, CCONJ;
  English "do not" is AUX PART, a language's own negation word PART).
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write the bundled multilingual demo data.")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--no-tokenizer", action="store_true", help="skip training the tokenizer")
    args = ap.parse_args(argv)
    generate(args.out, tokenizer=not args.no_tokenizer)
    print(f"wrote demo data to {args.out}")


if __name__ == "__main__":
    main()
