"""Shared test helpers: THE tiny tokenizer of the test suite and fixture files in every format.

Imported by the tests (no tests of its own); the `tok` fixture (conftest.py) is this tokenizer,
trained once per process with xtreme_jax.data.spm, and tests/smoke.py copies it. Three tests train
their own on purpose: test_data_real.py (4000 pieces of the real kit, for subword alignment on
real scripts), test_run_reliability.py (a tokenizer larger than the tiny model's vocabulary) and
test_evaluate.py (120 pieces that split its words, so its fixtures span several length buckets).
"""
import functools
import json
import os
import tempfile


WORDS = ("the a cat dog sat on mat ran to park big small red green house tree man woman child "
         "book reads writes old new sees bird fish city river blue yellow happy sad eats apple "
         "Paris London Anna Omar went was is are in of and not no yes who what where when why "
         "how cause effect result because so then premise hypothesis question answer").split()
EXTRA = ["Der Hund läuft schnell über die Straße .", "Die Katze schläft im Haus .",
         "El perro corre rápido .", "東京は日本の首都です。", "我喜欢猫。", "ข้อความภาษาไทย",
         "Привет мир .", "Questo è un libro .", "Hello , world ! ( test ) \"quoted\" 123 456 7890"]


# Words of tests/smoke.py and test_packing_model.py, kept whole pieces by this one tokenizer.
OTHER_TESTS_WORDS = "likes runs sleeps entailment neutral contradiction".split()


def sentences(n=200, seed=0):
    import random
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))).capitalize() + " ."
            for _ in range(n)]


@functools.lru_cache(maxsize=None)
def tokenizer_dir() -> str:
    from xtreme_jax.data import spm
    out = tempfile.mkdtemp(prefix="xtj-tok-")
    texts = sentences(400) + EXTRA * 5 + [" ".join(WORDS)] * 3 + [" ".join(OTHER_TESTS_WORDS)] * 5
    spm.train_xlmr_tokenizer(texts, out, vocab_size=300)
    return out


@functools.lru_cache(maxsize=None)
def tokenizer():
    from xtreme_jax.data.tokenization import load_tokenizer
    return load_tokenizer(tokenizer_dir())


# --- writers -----------------------------------------------------------------------------------
def write(path, text):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    return str(path)


def write_lines(path, lines):
    return write(path, "".join(l + "\n" for l in lines))


def write_jsonl(path, rows):
    return write_lines(path, [json.dumps(r, ensure_ascii=False) for r in rows])


def write_parquet(path, rows, features=None):
    import datasets
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    ds = datasets.Dataset.from_list(rows, features=features)
    ds.to_parquet(str(path))
    return str(path)


def save_to_disk(path, rows, features=None):
    import datasets
    datasets.Dataset.from_list(rows, features=features).save_to_disk(str(path))
    return str(path)


NLI_ROWS = [("The cat sat on the mat .", "A cat sat .", "entailment"),
            ("The dog ran to the park .", "The dog is sad .", "neutral"),
            ("Anna reads a book .", "Anna writes a book .", "contradiction"),
            ("The man eats an apple .", "A man eats .", "entailment"),
            ("The bird sees a fish in the river .", "The bird is blue .", "neutral")]


def squad_json(questions, version="1.1"):
    """questions: list of (qid, context, question, answer_text or None)."""
    data = []
    for qid, ctx, q, ans in questions:
        answers = [] if ans is None else [{"text": ans, "answer_start": ctx.index(ans)}]
        data.append({"title": "t", "paragraphs": [{"context": ctx, "qas": [
            {"id": qid, "question": q, "answers": answers}]}]})
    return {"version": version, "data": data}


QA = [("q1", "Anna went to Paris in the old red house .", "Where did Anna go ?", "Paris"),
      ("q2", "The small cat sat on the green mat because it was happy .", "Why did the cat sit ?",
       "because it was happy"),
      ("q3", "Omar reads a new book in London .", "Who reads ?", "Omar")]
