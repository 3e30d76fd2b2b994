"""Deterministic generator of the bundled multilingual demo data (no network).

    python -m xtreme_jax.data.demo --out DIR        # writes the files below into DIR
    python -m xtreme_jax.data.demo --out DIR --no-tokenizer

Six "languages" share one grammar and one meaning space. English ("en") uses English words;
"xa".."xe" spell every content word with their own pseudo-words, built from their own syllables,
so no content word is shared between languages except the anchors (digits and proper names).
"xa".."xd" reuse English's function words (the, do not, in, with, ...), like related languages;
"xe" has its own function words too and shares nothing but the anchors. "xc" puts adjectives
after nouns and "xd" is verb-final with the negation after the verb. The MLM corpus mixes in
code-switched lines (K et al. 2020, "Cross-lingual ability of multilingual BERT"). Design and
measured learnability: docs/demo_data.md.

Written files (the committed copy is xtreme_jax/data/demo_files/; its README.md says more):
    languages.txt, lexicon.tsv, mlm/{lang}.txt,
    demo_nli/{train-en,dev-LANG,test-LANG}.tsv + languages.txt   (XTREME xnli layout)
    demo_para/{train,validation}.jsonl                             (GLUE/QQP hub schema)
    demo_sst/{train,validation}.jsonl                              (GLUE/SST-2 hub schema)
    tokenizer/                                                     (XLM-R tokenizer directory)
"""
import argparse
import io
import json
import os

import numpy as np

SEED = 20200513
LANGS = ["en", "xa", "xb", "xc", "xd", "xe"]
NLI_LABELS = ["entailment", "neutral", "contradiction"]
VOCAB_SIZE = 1000  # an upper bound: the unigram trainer stops near 650 pieces on this corpus
SIZES = dict(mlm_lines=2000, nli_train=2400, nli_dev=300, nli_test=300,
             para_train=1000, para_validation=200, sst_train=800, sst_validation=200)

# --- the lexicon ----------------------------------------------------------------------------------
WORDS = {  # English spellings of the content words, by class
    "subj": ("cats dogs birds horses farmers children teachers doctors students sailors bakers "
             "kings queens monkeys wolves soldiers artists workers pilots nurses").split(),
    "obj": ("apples bread fish rice books letters songs houses boats cars flowers trees stones "
            "cakes shoes coins maps boxes hats keys").split(),
    "place": "park city garden village forest market school harbor".split(),
    "verb": ("eat see carry buy sell find want draw watch need "
             "love like enjoy admire praise hate fear dislike avoid blame").split(),
    "adj": ("big small red green old young tall short happy tired new dark bright heavy quiet "
            "strange").split(),
}
POSITIVE_VERBS = "admire enjoy like love praise".split()
NEGATIVE_VERBS = "avoid blame dislike fear hate".split()
# Function words (English spelling); languages outside SHARED_FUNCTION_WORDS have a pseudo-word each.
FUNCTION = {"the": "the", "some": "some", "many": "many", "all": "all", "not": "do not",
            "in": "in", "with": "with", "and": "and",
            "q_do": "do", "q_true": "is it true that", "q_right": "right"}
QUANTS = ["the", "some", "many", "all"]
# Anchors, spelled the same in every language.
NAMES = "Anna Omar Lena Kofi Mira Ivan Sara Tomas Yuki Nadia".split()
DIGITS = [str(i) for i in range(2, 21)]

# Each synthetic language builds its words from its own consonants (disjoint between languages).
PHONOLOGY = {  # consonants, vowels, optional final consonant
    "xa": ("ktmn", "aiu", "n"),
    "xb": ("bdgr", "eo", "s"),
    "xc": ("pflv", "aeiou", ""),
    "xd": ("szhw", "aiou", "r"),
    "xe": ("jcqy", "aeo", "x"),
}
SHARED_FUNCTION_WORDS = ("xa", "xb", "xc", "xd")  # languages that spell function words as English
WORD_ORDER = {"en": "svo", "xa": "svo", "xb": "svo", "xc": "svo-postadj", "xd": "sov", "xe": "svo"}

# Clause shape (MLM corpus); MODS are the verb-phrase modifiers the NLI task reasons about.
P_SADJ, P_OADJ, P_PLACE, P_WITH, P_NAME_OBJ, P_DIGIT = 0.3, 0.3, 0.25, 0.2, 0.1, 0.2
MODS = ("oadj", "place", "comp")
# Code-switching in the MLM corpus: share of lines, and per-word switch rate (content, function).
P_SWITCH_LINE, SWITCH_CONTENT, SWITCH_FUNCTION = 0.3, (0.2, 0.5), 0.3


def build_lexicon(seed=SEED):
    """{lang: {key: spelling}}, key "class:english" for content words, "fn:name" for function
    words. Pseudo-words are unique across all languages and never equal an English word."""
    rng = np.random.default_rng(seed)
    keys = [f"{cls}:{w}" for cls, ws in WORDS.items() for w in ws] + [f"fn:{k}" for k in FUNCTION]
    lex = {"en": {k: (FUNCTION[k[3:]] if k.startswith("fn:") else k.split(":", 1)[1]) for k in keys}}
    taken = {w for v in lex["en"].values() for w in v.split()} | set(NAMES) | set(DIGITS)
    for lang, (cons, vows, coda) in PHONOLOGY.items():
        lex[lang] = {}
        for k in keys:
            if k.startswith("fn:") and lang in SHARED_FUNCTION_WORDS:
                lex[lang][k] = lex["en"][k]
                continue
            n_syll = 1 if k.startswith("fn:") else 2 + int(rng.random() < 0.3)
            while True:
                w = "".join(rng.choice(list(cons)) + rng.choice(list(vows)) for _ in range(n_syll))
                w += coda if coda and rng.random() < 0.3 else ""
                if w not in taken:
                    break
                n_syll += int(rng.random() < 0.2)
            taken.add(w)
            lex[lang][k] = w
    return lex


# --- meanings and their rendering -----------------------------------------------------------------
def _pick(rng, items):
    return items[rng.integers(len(items))]


def sample_clause(rng, nli=False):
    """A clause meaning. NLI clauses use only "the"/"all" (so that a negated restatement is a
    contradiction), a noun object (so that the object-adjective slot exists) and no subject
    adjective (so that every adjective is a verb-phrase modifier)."""
    if nli:
        q = _pick(rng, ["the", "all"])
    else:
        q = _pick(rng, DIGITS) if rng.random() < P_DIGIT else _pick(rng, QUANTS)
    name_obj = not nli and rng.random() < P_NAME_OBJ
    return dict(
        q=q, sadj=_pick(rng, WORDS["adj"]) if not nli and rng.random() < P_SADJ else None,
        subj=_pick(rng, WORDS["subj"]), neg=bool(rng.random() < 0.5), verb=_pick(rng, WORDS["verb"]),
        oadj=_pick(rng, WORDS["adj"]) if not name_obj and rng.random() < P_OADJ else None,
        obj=_pick(rng, NAMES) if name_obj else _pick(rng, WORDS["obj"]),
        place=_pick(rng, WORDS["place"]) if rng.random() < P_PLACE else None,
        comp=_pick(rng, NAMES) if rng.random() < P_WITH else None)


def _spell(lex, lang, cls, word):
    if word is None:
        return []
    if cls == "fn":
        return lex[lang]["fn:" + word].split()
    if word in NAMES or word in DIGITS:
        return [word]
    return [lex[lang][f"{cls}:{word}"]]


def render_clause(c, lang, lex, switch=None, q_do=False):
    """Words of clause `c` in `lang`. `switch(cls)` returns the language to spell one word in
    (code-switching). `q_do`: English do-question ("do the cats not eat ...")."""
    def w(cls, word):
        return _spell(lex, switch(cls) if switch else lang, cls, word)
    quant = [c["q"]] if c["q"] in DIGITS else w("fn", c["q"])
    order = WORD_ORDER[lang]
    if order == "svo-postadj":
        subj = quant + w("subj", c["subj"]) + w("adj", c["sadj"])
        obj = w("obj", c["obj"]) + w("adj", c["oadj"])
    else:
        subj = quant + w("adj", c["sadj"]) + w("subj", c["subj"])
        obj = w("adj", c["oadj"]) + w("obj", c["obj"])
    neg = []
    if c["neg"]:
        neg = ["not"] if q_do and lang == "en" else w("fn", "not")
    place = w("fn", "in") + w("fn", "the") + w("place", c["place"]) if c["place"] else []
    comp = w("fn", "with") + [c["comp"]] if c["comp"] else []
    if order == "sov":
        return subj + obj + w("verb", c["verb"]) + neg + place + comp
    return subj + neg + w("verb", c["verb"]) + obj + place + comp


def render(clauses, lang, lex, switch=None):
    words = []
    for i, c in enumerate(clauses):
        words += (_spell(lex, lang, "fn", "and") if i else []) + render_clause(c, lang, lex, switch)
    return " ".join(words)


def render_question(c, lang, lex, template, switch=None):
    fn = lambda k: _spell(lex, lang, "fn", k)  # noqa: E731
    if template == 0:
        words = fn("q_do") + render_clause(c, lang, lex, switch, q_do=True)
    elif template == 1:
        words = fn("q_true") + render_clause(c, lang, lex, switch)
    else:
        words = render_clause(c, lang, lex, switch) + [","] + fn("q_right")
    return " ".join(words + ["?"])


# --- the tasks ------------------------------------------------------------------------------------
def _fill(rng, c, mod):
    c[mod] = _pick(rng, {"oadj": WORDS["adj"], "place": WORDS["place"], "comp": NAMES}[mod])


def modify(rng, c, relation):
    """Copy of clause `c` whose verb-phrase modifiers (object adjective, place, "with NAME") are
    the same ("same"), one fewer ("drop": more general), one more ("add": more specific), or one
    dropped and another added ("mixed")."""
    h = dict(c)
    present = [m for m in MODS if c[m] is not None]
    absent = [m for m in MODS if m not in present]
    if relation in ("drop", "mixed"):
        m = _pick(rng, present)
        h[m] = None
    if relation in ("add", "mixed"):
        m = _pick(rng, absent)
        _fill(rng, h, m)
    return h


def nli_clause(rng):
    """An NLI premise clause with one or two of the three verb-phrase modifiers, so every relation
    of `modify` is possible for every premise."""
    c = sample_clause(rng, nli=True)
    c.update(oadj=None, place=None, comp=None)
    for i in rng.permutation(len(MODS))[:1 + int(rng.random() < 0.5)]:
        _fill(rng, c, MODS[i])
    return c


def nli_example(rng, label):
    """(premise clause, hypothesis clause) for `label`, by monotonicity.

    The hypothesis restates the premise with the same or the opposite polarity and with its
    verb-phrase modifiers changed. In a positive clause the verb phrase is upward monotone
    ("eat red apples in the park" entails "eat apples"), under negation downward ("do not eat
    apples" entails "do not eat red apples"). So: a hypothesis made more general (positive premise)
    or more specific (negated premise), or left as is, is entailed with the same polarity and
    contradicted with the opposite one; made more specific (positive), more general (negated), or
    both at once, it is neutral whatever its polarity. Neither sentence alone tells the label."""
    c = nli_clause(rng)
    keep, lose = ("drop", "add") if not c["neg"] else ("add", "drop")
    if label == "neutral":
        h = modify(rng, c, _pick(rng, [lose, "mixed"]))
        h["neg"] = bool(rng.random() < 0.5)
    else:
        h = modify(rng, c, _pick(rng, ["same", keep]))
        h["neg"] = c["neg"] if label == "entailment" else not c["neg"]
    return c, h


def balanced_labels(rng, n, labels):
    out = [labels[i % len(labels)] for i in range(n)]
    return [out[i] for i in rng.permutation(n)]


def para_example(rng, label):
    """Two English questions (GLUE/QQP style); label 1 when they ask the same thing in another
    wording, 0 when the polarity or one verb-phrase modifier differs."""
    c = nli_clause(rng)
    h = dict(c)
    if label == 0:
        kind = _pick(rng, ["neg", "drop", "add", "mixed"])
        h = modify(rng, c, kind) if kind != "neg" else dict(c, neg=not c["neg"])
    return c, h, int(rng.integers(3)), int(rng.integers(3))


def sst_example(rng, label):
    """An English sentence (GLUE/SST-2 style): sentiment of the verb, flipped by negation."""
    c = sample_clause(rng)
    positive = bool(rng.random() < 0.5)
    c["verb"] = _pick(rng, POSITIVE_VERBS if positive else NEGATIVE_VERBS)
    c["neg"] = positive != bool(label)
    return c


def mlm_lines(rng, lang, lex, n):
    """`n` sentences of `lang`: statements of one or two clauses and 10% questions. A share of the
    lines code-switch: each of their words is spelled, at random, in another language."""
    others = [x for x in LANGS if x != lang]
    lines = []
    for _ in range(n):
        clauses = [sample_clause(rng) for _ in range(1 + int(rng.random() < 0.2))]
        switch = None
        if rng.random() < P_SWITCH_LINE:
            lo, hi = SWITCH_CONTENT
            rate = lo + (hi - lo) * rng.random()

            def switch(cls, rate=rate):
                r = SWITCH_FUNCTION if cls == "fn" else rate
                return _pick(rng, others) if rng.random() < r else lang
        if rng.random() < 0.1:
            lines.append(render_question(clauses[0], lang, lex, int(rng.integers(3)), switch))
        else:
            lines.append(render(clauses, lang, lex, switch))
    return lines


# --- writing --------------------------------------------------------------------------------------
def _write(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(line + "\n" for line in lines))


def generate(out, tokenizer=True, seed=SEED):
    """Writes every demo file into `out`. Each part draws from its own RNG stream."""
    lex = build_lexicon(seed)
    rngs = {k: np.random.default_rng([seed, i]) for i, k in
            enumerate(["mlm", "nli_train", "nli_eval", "para", "sst"])}

    _write(os.path.join(out, "languages.txt"), LANGS)
    rows = ["\t".join(["class", "en"] + LANGS[1:])]
    rows += ["\t".join([k.split(":")[0]] + [lex[x][k] for x in LANGS]) for k in lex["en"]]
    rows += ["\t".join(["anchor", a] + [a] * (len(LANGS) - 1)) for a in NAMES + DIGITS]
    _write(os.path.join(out, "lexicon.tsv"), rows)

    mlm = {lang: mlm_lines(rngs["mlm"], lang, lex, SIZES["mlm_lines"]) for lang in LANGS}
    for lang in LANGS:
        _write(os.path.join(out, "mlm", f"{lang}.txt"), mlm[lang])

    nli = os.path.join(out, "demo_nli")
    tsv = lambda exs, lang: [f"{render([p], lang, lex)}\t{render([h], lang, lex)}\t{y}"  # noqa: E731
                             for p, h, y in exs]
    rng = rngs["nli_train"]
    train = [nli_example(rng, y) + (y,) for y in balanced_labels(rng, SIZES["nli_train"], NLI_LABELS)]
    _write(os.path.join(nli, "train-en.tsv"), tsv(train, "en"))
    rng = rngs["nli_eval"]
    for split in ("dev", "test"):  # one set of meanings per split, rendered in every language
        exs = [nli_example(rng, y) + (y,) for y in balanced_labels(rng, SIZES[f"nli_{split}"], NLI_LABELS)]
        for lang in LANGS:
            _write(os.path.join(nli, f"{split}-{lang}.tsv"), tsv(exs, lang))
    _write(os.path.join(nli, "languages.txt"), LANGS)

    rng = rngs["para"]
    for split in ("train", "validation"):
        rows = []
        for i, y in enumerate(balanced_labels(rng, SIZES[f"para_{split}"], [0, 1])):
            while True:  # at most 27 words, so that every pair fits in 64 tokens
                c, h, t1, t2 = para_example(rng, y)
                q1, q2 = render_question(c, "en", lex, t1), render_question(h, "en", lex, t2)
                if len(q1.split()) + len(q2.split()) <= 27:
                    break
            rows.append(json.dumps(dict(question1=q1, question2=q2, label=y, idx=i)))
        _write(os.path.join(out, "demo_para", f"{split}.jsonl"), rows)

    rng = rngs["sst"]
    for split in ("train", "validation"):
        rows = [json.dumps(dict(sentence=render([sst_example(rng, y)], "en", lex), label=y, idx=i))
                for i, y in enumerate(balanced_labels(rng, SIZES[f"sst_{split}"], [0, 1]))]
        _write(os.path.join(out, "demo_sst", f"{split}.jsonl"), rows)

    _write(os.path.join(out, "README.md"), [README.strip()])
    if tokenizer:
        train_tokenizer([line for lang in LANGS for line in mlm[lang]], os.path.join(out, "tokenizer"))


def train_tokenizer(texts, out_dir, vocab_size=VOCAB_SIZE):
    """`xtreme_jax.data.spm.train_xlmr_tokenizer` with the "identity" normalization rule: the demo
    text is plain ASCII, and the default nmt_nfkc rule stores a ~240 KB character map in the
    model and again in tokenizer.json (ten times the size of everything else in the directory)."""
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
(fixed numpy seed), no network. Do not edit by hand: change `xtreme_jax/data/demo.py` and
regenerate; `tests/test_demo_data.py` checks that these files match the generator byte for byte.
Design and measured learnability: `docs/demo_data.md`.

Languages (`languages.txt`, English first): `en xa xb xc xd xe`. One grammar (quantifier,
subject, optional negation, verb, optional adjective, object, optional "in the PLACE", optional
"with NAME"), one meaning space. `xa`..`xe` spell every content word with their own pseudo-words
(each language its own consonants); digits and names (anchors) are shared. `xa`..`xd` use the
English function words (the, all, do not, in, with, ...), `xe` has its own and shares only the
anchors. `xc` puts adjectives after nouns; `xd` is verb-final, negation after the verb.
`lexicon.tsv` lists every word in every language (class, English, xa..xe).

| path | format | content |
|---|---|---|
| `mlm/{lang}.txt` | raw text, one sentence per line | 2000 lines per language, 1-2 clauses, 10% questions; 30% of lines code-switch, spelling some words in another language |
| `demo_nli/train-en.tsv` | XTREME `xnli` layout, no header: `premise<TAB>hypothesis<TAB>label` | 2400 English pairs; labels `entailment` / `neutral` / `contradiction` (as XNLI), balanced |
| `demo_nli/dev-{lang}.tsv`, `demo_nli/test-{lang}.tsv` | same | 300 + 300 pairs per language: one set of meanings rendered in every language (parallel, like XNLI) |
| `demo_nli/languages.txt` | one code per line | the evaluation languages |
| `demo_para/{train,validation}.jsonl` | GLUE/QQP hub schema: `question1`, `question2`, `label` (0/1), `idx` | 1000 / 200 English question pairs; 1 = same question in other words (balanced) |
| `demo_sst/{train,validation}.jsonl` | GLUE/SST-2 hub schema: `sentence`, `label` (0/1), `idx` | 800 / 200 English sentences; 1 = positive (balanced) |
| `tokenizer/` | XLM-R tokenizer directory: `sentencepiece.bpe.model`, `tokenizer.json`, `tokenizer_config.json` | unigram sentencepiece (identity normalization) trained on all `mlm/*.txt`; ~610 pieces; `transformers.AutoTokenizer.from_pretrained` |

Labels.
- `demo_nli` (monotonicity): the hypothesis restates the premise with the same or the opposite
  polarity and its verb-phrase modifiers (object adjective, place, "with NAME") kept, one
  dropped, one added, or one swapped for another. A positive verb phrase is upward monotone
  ("eat red apples in the park" entails "eat apples"), a negated one downward ("do not eat
  apples" entails "do not eat red apples"). A hypothesis that stays on the entailed side is
  `entailment` with the same polarity and `contradiction` with the opposite one; otherwise it is
  `neutral`. Neither sentence alone predicts the label.
- `demo_para`: 1 when both questions ask about the same clause (templates "do ... ?", "is it true
  that ... ?", "... , right ?"), 0 when the polarity or one modifier differs.
- `demo_sst`: the sentiment of the verb (love, like, enjoy, admire, praise vs hate, fear, dislike,
  avoid, blame), flipped by negation.
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
