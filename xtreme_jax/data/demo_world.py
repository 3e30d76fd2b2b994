"""The synthetic multilingual world behind the bundled demo data: lexicons, grammar, rendering, and
the example generators of every demo task. `xtreme_jax.data.demo` writes the files.

Nine "languages" share one grammar and one meaning space. English ("en") uses English words;
"xa".."xh" spell every content word with their own pseudo-words (each language its own letters),
so no content word is shared except the anchors (digits and proper names). Five of them ("xa",
"xb", "xc", "xd", "xg") reuse English's function words (the, do not, in, with, ...), like related
languages; "xe", "xf" and "xh" have their own and share nothing but the anchors ("xf" is written
in Greek letters, "xh" in Cyrillic). Word orders: English's, adjectives after nouns ("xc", "xh"),
verb-final with the negation after the verb ("xd", "xf"). Design: docs/demo_data.md.

A clause meaning is a dict (quantifier, subject adjective, subject, negation, verb, object
adjective, object, place, companion); every task renders the same meanings in any language, so
translated splits line up meaning for meaning with English.
"""
import numpy as np

SEED = 20200513
LANGS = ["en", "xa", "xb", "xc", "xd", "xe", "xf", "xg", "xh"]

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

# Each synthetic language builds its words from its own letters (disjoint between languages):
# consonants, vowels, optional final letter. The order of this table fixes the lexicon draws, so
# new languages go at the end (the older ones keep their words).
PHONOLOGY = {
    "xa": ("ktmn", "aiu", "n"),
    "xb": ("bdgr", "eo", "s"),
    "xc": ("pflv", "aeiou", ""),
    "xd": ("szhw", "aiou", "r"),
    "xe": ("jcqy", "aeo", "x"),
    "xf": ("κλμπ", "αεο", "ς"),     # Greek letters
    "xg": ("čšžř", "aeiu", ""),     # Latin letters with a háček
    "xh": ("бдгж", "аиу", "й"),     # Cyrillic letters
}
SHARED_FUNCTION_WORDS = ("xa", "xb", "xc", "xd", "xg")  # spell function words as English does
WORD_ORDER = {"en": "svo", "xa": "svo", "xb": "svo", "xc": "svo-postadj", "xd": "sov", "xe": "svo",
              "xf": "sov", "xg": "svo", "xh": "svo-postadj"}

# UPOS tag of each word class (the demo_pos task). Multi-word function words tag each word;
# a language that spells one with a single pseudo-word tags it with the last (head) tag.
UPOS_OF_CLASS = {"subj": "NOUN", "obj": "NOUN", "place": "NOUN", "verb": "VERB", "adj": "ADJ"}
UPOS_OF_FUNCTION = {"the": ("DET",), "some": ("DET",), "many": ("DET",), "all": ("DET",),
                    "not": ("AUX", "PART"), "in": ("ADP",), "with": ("ADP",), "and": ("CCONJ",),
                    "q_do": ("AUX",), "q_true": ("AUX", "PRON", "ADJ", "SCONJ"), "q_right": ("INTJ",)}

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
    return {lang: lex[lang] for lang in LANGS}


# --- meanings and their rendering -----------------------------------------------------------------
def pick(rng, items):
    return items[rng.integers(len(items))]


def sample_clause(rng, nli=False):
    """A clause meaning. NLI clauses use only "the"/"all" (so that a negated restatement is a
    contradiction), a noun object (so that the object-adjective slot exists) and no subject
    adjective (so that every adjective is a verb-phrase modifier)."""
    if nli:
        q = pick(rng, ["the", "all"])
    else:
        q = pick(rng, DIGITS) if rng.random() < P_DIGIT else pick(rng, QUANTS)
    name_obj = not nli and rng.random() < P_NAME_OBJ
    return dict(
        q=q, sadj=pick(rng, WORDS["adj"]) if not nli and rng.random() < P_SADJ else None,
        subj=pick(rng, WORDS["subj"]), neg=bool(rng.random() < 0.5), verb=pick(rng, WORDS["verb"]),
        oadj=pick(rng, WORDS["adj"]) if not name_obj and rng.random() < P_OADJ else None,
        obj=pick(rng, NAMES) if name_obj else pick(rng, WORDS["obj"]),
        place=pick(rng, WORDS["place"]) if rng.random() < P_PLACE else None,
        comp=pick(rng, NAMES) if rng.random() < P_WITH else None)


def spell(lex, lang, cls, word):
    """[(word, UPOS tag), ...] of one lexical item in `lang`."""
    if word is None:
        return []
    if cls == "fn":
        words, tags = lex[lang]["fn:" + word].split(), UPOS_OF_FUNCTION[word]
        return list(zip(words, tags if len(words) == len(tags) else tags[-1:]))
    if word in NAMES:
        return [(word, "PROPN")]
    if word in DIGITS:
        return [(word, "NUM")]
    return [(lex[lang][f"{cls}:{word}"], UPOS_OF_CLASS[cls])]


def tagged_clause(c, lang, lex, switch=None, q_do=False):
    """[(word, UPOS tag)] of clause `c` in `lang`. `switch(cls)` returns the language to spell one
    word in (code-switching). `q_do`: English do-question ("do the cats not eat ...")."""
    def w(cls, word):
        return spell(lex, switch(cls) if switch else lang, cls, word)
    quant = [(c["q"], "NUM")] if c["q"] in DIGITS else w("fn", c["q"])
    order = WORD_ORDER[lang]
    if order == "svo-postadj":
        subj = quant + w("subj", c["subj"]) + w("adj", c["sadj"])
        obj = w("obj", c["obj"]) + w("adj", c["oadj"])
    else:
        subj = quant + w("adj", c["sadj"]) + w("subj", c["subj"])
        obj = w("adj", c["oadj"]) + w("obj", c["obj"])
    neg = []
    if c["neg"]:
        neg = [("not", "PART")] if q_do and lang == "en" else w("fn", "not")
    place = w("fn", "in") + w("fn", "the") + w("place", c["place"]) if c["place"] else []
    comp = w("fn", "with") + [(c["comp"], "PROPN")] if c["comp"] else []
    if order == "sov":
        return subj + obj + w("verb", c["verb"]) + neg + place + comp
    return subj + neg + w("verb", c["verb"]) + obj + place + comp


def tagged(clauses, lang, lex, switch=None):
    """[(word, tag)] of one or more clauses joined by "and"."""
    out = []
    for i, c in enumerate(clauses):
        out += (spell(lex, lang, "fn", "and") if i else []) + tagged_clause(c, lang, lex, switch)
    return out


def render(clauses, lang, lex, switch=None):
    return " ".join(w for w, _ in tagged(clauses, lang, lex, switch))


def render_question(c, lang, lex, template, switch=None):
    fn = lambda k: [w for w, _ in spell(lex, lang, "fn", k)]  # noqa: E731
    clause = lambda **kw: [w for w, _ in tagged_clause(c, lang, lex, switch, **kw)]  # noqa: E731
    if template == 0:
        words = fn("q_do") + clause(q_do=True)
    elif template == 1:
        words = fn("q_true") + clause()
    else:
        words = clause() + [","] + fn("q_right")
    return " ".join(words + ["?"])


def balanced_labels(rng, n, labels):
    out = [labels[i % len(labels)] for i in range(n)]
    return [out[i] for i in rng.permutation(n)]


# --- the target task: monotonicity NLI ------------------------------------------------------------
def fill(rng, c, mod):
    c[mod] = pick(rng, {"oadj": WORDS["adj"], "place": WORDS["place"], "comp": NAMES}[mod])


def modify(rng, c, relation):
    """Copy of clause `c` whose verb-phrase modifiers (object adjective, place, "with NAME") are
    the same ("same"), one fewer ("drop": more general), one more ("add": more specific), or one
    dropped and another added ("mixed")."""
    h = dict(c)
    present = [m for m in MODS if c[m] is not None]
    absent = [m for m in MODS if m not in present]
    if relation in ("drop", "mixed"):
        h[pick(rng, present)] = None
    if relation in ("add", "mixed"):
        fill(rng, h, pick(rng, absent))
    return h


def nli_clause(rng):
    """An NLI premise clause with one or two of the three verb-phrase modifiers, so every relation
    of `modify` is possible for every premise."""
    c = sample_clause(rng, nli=True)
    c.update(oadj=None, place=None, comp=None)
    for i in rng.permutation(len(MODS))[:1 + int(rng.random() < 0.5)]:
        fill(rng, c, MODS[i])
    return c


def nli_example(rng, label):
    """(premise clause, hypothesis clause) for `label`, by monotonicity of the verb phrase.

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
        h = modify(rng, c, pick(rng, [lose, "mixed"]))
        h["neg"] = bool(rng.random() < 0.5)
    else:
        h = modify(rng, c, pick(rng, ["same", keep]))
        h["neg"] = c["neg"] if label == "entailment" else not c["neg"]
    return c, h


# --- intermediate tasks ---------------------------------------------------------------------------
def para_example(rng, label):
    """Two questions (GLUE/QQP style): the meaning pair and the two question templates. Label 1
    when they ask the same thing in another wording, 0 when the polarity or one verb-phrase
    modifier differs."""
    c = nli_clause(rng)
    h = dict(c)
    if label == 0:
        kind = pick(rng, ["neg", "drop", "add", "mixed"])
        h = modify(rng, c, kind) if kind != "neg" else dict(c, neg=not c["neg"])
    return c, h, int(rng.integers(3)), int(rng.integers(3))


def sst_example(rng, label):
    """A sentence meaning (GLUE/SST-2 style): sentiment of the verb, flipped by negation."""
    c = sample_clause(rng)
    positive = bool(rng.random() < 0.5)
    c["verb"] = pick(rng, POSITIVE_VERBS if positive else NEGATIVE_VERBS)
    c["neg"] = positive != bool(label)
    return c


def entail_example(rng, label):
    """(premise, hypothesis) for an MNLI-style 3-way task about the *subject*: monotonicity of the
    quantifier's restrictor, a different phenomenon from the target's verb phrase.

    "all" is downward monotone in its noun ("all cats eat apples" entails "all small cats eat
    apples"), "some" upward ("some small cats eat apples" entails "some cats eat apples"). The
    hypothesis keeps the quantifier, the verb phrase and (same polarity) or flips (opposite) the
    negation, and adds, drops or swaps the subject adjective, or leaves it. Same polarity: entailed
    when the subject moved the monotone way (or stayed), else neutral. Opposite polarity: with
    "all", a contradiction when one subject contains the other (same, added, dropped adjective),
    neutral for a swapped one; with "some" never a contradiction ("some cats eat apples" and "some
    cats do not eat apples" can both be true), so neutral."""
    while True:
        q = pick(rng, ["all", "some"])
        rel = pick(rng, ["same", "add", "drop", "swap"])
        same_polarity = bool(rng.random() < 0.5)
        if same_polarity:
            ok = rel == "same" or rel == ("add" if q == "all" else "drop")
            y = "entailment" if ok else "neutral"
        else:
            y = "contradiction" if q == "all" and rel != "swap" else "neutral"
        if y == label:
            break
    c = sample_clause(rng)
    c.update(q=q, sadj=None if rel == "add" else pick(rng, WORDS["adj"]))
    h = dict(c, neg=c["neg"] if same_polarity else not c["neg"])
    if rel == "add":
        h["sadj"] = pick(rng, WORDS["adj"])
    elif rel == "drop":
        h["sadj"] = None
    elif rel == "swap":
        h["sadj"] = pick(rng, [a for a in WORDS["adj"] if a != c["sadj"]])
    return c, h


def pos_clauses(rng):
    """A statement of one or two clauses, as in the MLM corpus, for the tagging task."""
    return [sample_clause(rng) for _ in range(1 + int(rng.random() < 0.2))]


def mlm_lines(rng, lang, lex, n, langs=LANGS):
    """`n` sentences of `lang`: statements of one or two clauses and 10% questions. A share of the
    lines code-switch: each of their words is spelled, at random, in another language."""
    others = [x for x in langs if x != lang]
    lines = []
    for _ in range(n):
        clauses = [sample_clause(rng) for _ in range(1 + int(rng.random() < 0.2))]
        switch = None
        if rng.random() < P_SWITCH_LINE:
            lo, hi = SWITCH_CONTENT
            rate = lo + (hi - lo) * rng.random()

            def switch(cls, rate=rate):
                r = SWITCH_FUNCTION if cls == "fn" else rate
                return pick(rng, others) if rng.random() < r else lang
        if rng.random() < 0.1:
            lines.append(render_question(clauses[0], lang, lex, int(rng.integers(3)), switch))
        else:
            lines.append(render(clauses, lang, lex, switch))
    return lines
