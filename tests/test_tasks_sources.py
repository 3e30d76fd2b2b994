"""Every task loads from every source that applies, and featurizes per the batch contract.

Fixture files in each real format are written into tmp_path. Hub-schema local files (parquet,
jsonl, save_to_disk) stand in for hub ids; the hub path itself is tested for its offline error.
"""
import json
import os

import datasets
import numpy as np
import pytest

from test_data_support import (NLI_ROWS, QA, save_to_disk, squad_json, write, write_jsonl, write_lines,
                               write_parquet)
from test_tasks_difficulty import write_mnli, write_swag
from xtreme_jax.data.errors import DataError
from xtreme_jax.data.sources import Source
from xtreme_jax.tasks import get_task

NLI = ("entailment", "neutral", "contradiction")


# --- writers per task: return [(source, split, lang, n_examples)] ---------------------------------
def w_xnli(d):
    lines = [f"{a}\t{b}\t{y}" for a, b, y in NLI_ROWS]
    for split in ("train", "dev"):
        write_lines(d / "off" / f"{split}-en.tsv", lines)
    write_lines(d / "off" / "dev-de.tsv", [l.replace("contradiction", "contradictory") for l in lines])
    write_lines(d / "off" / "test-de.tsv", [f"{a}\t{b}" for a, b, _ in NLI_ROWS])
    write_lines(d / "off" / "translate-train" / "en-de-translated.tsv",
                [f"{a}\t{b}\tDE {a}\tDE {b}\t{y}" for a, b, y in NLI_ROWS])
    # hub schema: XNLI rows (string gold_label) and MNLI rows (ClassLabel ints)
    write_parquet(d / "hub" / "dev-de.parquet", [dict(language="de", sentence1=a, sentence2=b, gold_label=y)
                                                  for a, b, y in NLI_ROWS])
    feats = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=list(NLI))})
    save_to_disk(d / "hub" / "train-en", [dict(premise=a, hypothesis=b, label=NLI.index(y))
                                          for a, b, y in NLI_ROWS], feats)
    return [(Source("official", str(d / "off")), "train", "en", 5), (Source("official", str(d / "off")), "dev", "de", 5),
            (Source("official", str(d / "off")), "test", "de", 5),
            (Source("official", str(d / "off")), "translate_train", "de", 5),
            (Source("local", str(d / "hub")), "dev", "de", 5), (Source("local", str(d / "hub")), "train", "en", 5)]


def w_pawsx(d):
    rows = [("A cat sat .", "A cat sat down .", "1"), ("The dog ran .", "The ran dog .", "0")]
    write_lines(d / "off" / "dev-fr.tsv", ["\t".join(r) for r in rows])
    write_jsonl(d / "hub" / "validation-fr.jsonl", [dict(sentence1=a, sentence2=b, label=y) for a, b, y in rows])
    write_jsonl(d / "hub" / "train-en.jsonl", [dict(sentence1=a, sentence2=b, label=int(y)) for a, b, y in rows])
    return [(Source("official", str(d / "off")), "dev", "fr", 2), (Source("local", str(d / "hub")), "dev", "fr", 2),
            (Source("local", str(d / "hub")), "train", "en", 2)]


def w_mnli(d):
    header = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t" \
             "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label"
    write_lines(d / "off" / "train.tsv", [header] + [f"{i}\tp\t{i}\tfiction\t-\t-\t-\t-\t{a}\t{b}\t{y}\t{y}"
                                                     for i, (a, b, y) in enumerate(NLI_ROWS)])
    write_lines(d / "off" / "translate-train" / "en-fr-translated.tsv",
                [f"{a}\t{b}\tFR {a}\tFR {b}\t{y}" for a, b, y in NLI_ROWS])
    write_jsonl(d / "hub" / "train.jsonl", [dict(premise=a, hypothesis=b, label=NLI.index(y), idx=i)
                                            for i, (a, b, y) in enumerate(NLI_ROWS)])
    return [(Source("official", str(d / "off")), "train", "en", 5),
            (Source("official", str(d / "off")), "translate_train", "fr", 5),
            (Source("local", str(d / "hub")), "train", "en", 5)]


def w_snli(d):
    rows = [dict(sentence1=a, sentence2=b, gold_label=y) for a, b, y in NLI_ROWS] + \
           [dict(sentence1="No gold .", sentence2="None .", gold_label="-")]
    write_jsonl(d / "off" / "snli_1.0_train.jsonl", rows)
    write_jsonl(d / "hub" / "train.jsonl", [dict(premise=a, hypothesis=b, label=NLI.index(y))
                                            for a, b, y in NLI_ROWS] + [dict(premise="x", hypothesis="y", label=-1)])
    return [(Source("official", str(d / "off")), "train", "en", 5), (Source("local", str(d / "hub")), "train", "en", 5)]


def _anli(d):
    for r in ("R1", "R2", "R3"):
        write_jsonl(d / r / "train.jsonl", [dict(uid=f"{r}{i}", context=a, hypothesis=b, label=y[0])
                                            for i, (a, b, y) in enumerate(NLI_ROWS)])
        write_jsonl(d / r / "dev.jsonl", [dict(uid=f"{r}d", context="A .", hypothesis="B .", label="n")])


def w_anli(d):
    _anli(d / "off")
    write_jsonl(d / "hub" / "train.jsonl", [dict(premise=a, hypothesis=b, label=NLI.index(y)) for a, b, y in NLI_ROWS])
    return [(Source("official", str(d / "off")), "train", "en", 15), (Source("local", str(d / "hub")), "train", "en", 5)]


def w_anli_plus(d):
    _anli(d / "off" / "anli")
    w_mnli(d / "m")
    os.rename(d / "m" / "off", d / "off" / "mnli")
    w_snli(d / "s")
    os.rename(d / "s" / "off", d / "off" / "snli")
    write_jsonl(d / "hub" / "train.jsonl", [dict(premise=a, hypothesis=b, label=NLI.index(y)) for a, b, y in NLI_ROWS])
    return [(Source("official", str(d / "off")), "train", "en", 25), (Source("official", str(d / "off")), "dev", "en", 3),
            (Source("local", str(d / "hub")), "train", "en", 5)]


def _anli_round(r):
    def w(d):
        _anli(d / "off")
        return [(Source("official", str(d / "off")), "train", "en", 5), (Source("official", str(d / "off")), "dev", "en", 1)]
    return w


w_anli_r1, w_anli_r2, w_anli_r3 = (_anli_round(r) for r in (1, 2, 3))


def _mnli_subset(n_train, n_dev):     # the artifact fixture of test_tasks_difficulty: 24+8 train, 6+4 dev
    def w(d):
        write_mnli(d / "off")
        return [(Source("official", str(d / "off")), "train", "en", n_train),
                (Source("official", str(d / "off")), "dev", "en", n_dev),
                (Source("local", str(d / "off" / "hub")), "train", "en", n_train)]
    return w


w_mnli_easy, w_mnli_hard = _mnli_subset(24, 6), _mnli_subset(8, 4)


def w_swag(d):
    write_swag(d)
    return [(Source("official", str(d)), "train", "en", 2), (Source("official", str(d)), "test", "en", 2),
            (Source("local", str(d / "hub")), "train", "en", 2)]


def w_qqp(d):
    write_lines(d / "off" / "dev.tsv", ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
                                        "0\t1\t2\tWho is Anna ?\tWho is Anna really ?\t1",
                                        "1\t3\t4\tWhere is Paris ?\tWhat is a cat ?\t0"])
    write_jsonl(d / "hub" / "validation.jsonl", [dict(question1="Who ?", question2="Who is ?", label=1, idx=0)])
    return [(Source("official", str(d / "off")), "dev", "en", 2), (Source("local", str(d / "hub")), "dev", "en", 1)]


def w_sst2(d):
    write_lines(d / "off" / "train.tsv", ["sentence\tlabel", "a happy cat\t1", "a sad dog\t0"])
    write_jsonl(d / "hub" / "train.jsonl", [dict(sentence="a happy cat", label=1, idx=0)])
    return [(Source("official", str(d / "off")), "train", "en", 2), (Source("local", str(d / "hub")), "train", "en", 1)]


def w_demo_nli(d):
    write_lines(d / "off" / "languages.txt", ["en", "xa"])
    lines = [f"{a}\t{b}\t{y}" for a, b, y in NLI_ROWS]
    write_lines(d / "off" / "train-en.tsv", lines)
    write_lines(d / "off" / "dev-xa.tsv", lines[:3])
    return [(Source("official", str(d / "off")), "train", "en", 5), (Source("official", str(d / "off")), "dev", "xa", 3)]


COPA = [dict(premise="The man ran .", choice1="He was late .", choice2="He was happy .", question="cause",
             label=0, idx=1),
        dict(premise="The cat sat .", choice1="It slept .", choice2="It ran .", question="effect", label=0, idx=2)]


def w_xcopa(d):
    write_jsonl(d / "off" / "test-et.jsonl", COPA)                     # XTREME layout
    write_jsonl(d / "repo" / "et" / "val.et.jsonl", COPA[:1])         # cambridgeltl/xcopa layout
    write_parquet(d / "hub" / "validation-et.parquet", COPA)
    return [(Source("official", str(d / "off")), "test", "et", 2), (Source("official", str(d / "repo")), "dev", "et", 1),
            (Source("local", str(d / "hub")), "dev", "et", 2)]


def w_copa(d):
    write_jsonl(d / "off" / "train.jsonl", COPA)
    write_jsonl(d / "hub" / "train.jsonl", COPA)
    return [(Source("official", str(d / "off")), "train", "en", 2), (Source("local", str(d / "hub")), "train", "en", 2)]


SIQA = dict(context="Anna went to Paris .", question="Why ?", answerA="to see", answerB="to eat", answerC="no")


def w_siqa(d):
    write_jsonl(d / "off" / "socialIQa_v1.4_trn.jsonl", [dict(SIQA, correct="B")])
    write_jsonl(d / "orig" / "dev.jsonl", [SIQA, SIQA])
    write_lines(d / "orig" / "dev-labels.lst", ["1", "3"])
    write_jsonl(d / "hub" / "train.jsonl", [dict(SIQA, label="2")])
    return [(Source("official", str(d / "off")), "train", "en", 1), (Source("official", str(d / "orig")), "dev", "en", 2),
            (Source("local", str(d / "hub")), "train", "en", 1)]


HS = dict(ind=4, ctx_a="A man sits .", ctx_b="he", endings=["reads .", "eats .", "runs .", "sees ."], label=2)


def w_hellaswag(d):
    write_jsonl(d / "off" / "hellaswag_val.jsonl", [HS])
    write_jsonl(d / "hub" / "validation.jsonl", [dict(HS, label="2")])
    return [(Source("official", str(d / "off")), "dev", "en", 1), (Source("local", str(d / "hub")), "dev", "en", 1)]


COSMOS = dict(id="c1", context="Anna went home , because it rained .", question="Why ?",
              answer0="rain", answer1="sun", answer2="snow", answer3="none", label=0)


def w_cosmosqa(d):
    write_lines(d / "off" / "valid.csv", ["id,context,question,answer0,answer1,answer2,answer3,label",
                                          'c1,"Anna went home , because it rained .",Why ?,rain,sun,snow,none,0'])
    write_jsonl(d / "hub" / "validation.jsonl", [COSMOS])
    return [(Source("official", str(d / "off")), "dev", "en", 1), (Source("local", str(d / "hub")), "dev", "en", 1)]


def w_commonsenseqa(d):
    labels = list("ABCDE")
    texts = ["park", "house", "tree", "city", "river"]
    write_jsonl(d / "off" / "train_rand_split.jsonl", [dict(answerKey="C", id="x", question=dict(
        stem="Where is a tree ?", choices=[dict(label=l, text=t) for l, t in zip(labels, texts)]))])
    write_jsonl(d / "hub" / "train.jsonl", [dict(id="x", question="Where is a tree ?", question_concept="tree",
                                                 choices=dict(label=labels, text=texts), answerKey="C")])
    return [(Source("official", str(d / "off")), "train", "en", 1), (Source("local", str(d / "hub")), "train", "en", 1)]


PANX = [(["Anna", "went", "to", "Paris", "."], ["B-PER", "O", "O", "B-LOC", "O"]),
        (["Omar", "reads", "in", "London"], ["B-PER", "O", "O", "B-LOC"])]


def _token_tag(sents):
    return "".join("".join(f"{w}\t{t}\n" for w, t in zip(ws, ts)) + "\n" for ws, ts in sents)


def w_panx(d):
    write(d / "off" / "dev-de.tsv", _token_tag(PANX))
    write(d / "off" / "test-de.tsv", "".join("".join(f"{w}\n" for w in ws) + "\n" for ws, _ in PANX))
    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    feats = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                               "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names)),
                               "langs": datasets.Sequence(datasets.Value("string"))})
    save_to_disk(d / "hub" / "validation-de", [dict(tokens=w, ner_tags=[names.index(x) for x in t], langs=["de"] * len(w))
                                               for w, t in PANX], feats)
    return [(Source("official", str(d / "off")), "dev", "de", 2), (Source("official", str(d / "off")), "test", "de", 2),
            (Source("local", str(d / "hub")), "dev", "de", 2)]


CONLLU = """# sent_id = 1
# text = Ich gehe zum Haus.
1\tIch\tich\tPRON\t_\t_\t2\tnsubj\t_\t_
2\tgehe\tgehen\tVERB\t_\t_\t0\troot\t_\t_
3-4\tzum\t_\t_\t_\t_\t_\t_\t_\t_
3\tzu\tzu\tADP\t_\t_\t5\tcase\t_\t_
4\tdem\tder\tDET\t_\t_\t5\tdet\t_\t_
5\tHaus\tHaus\tNOUN\t_\t_\t2\tobl\t_\tSpaceAfter=No
6\t.\t.\tPUNCT\t_\t_\t2\tpunct\t_\t_

1\tJa\tja\tINTJ\t_\t_\t0\troot\t_\t_

"""


def w_udpos(d):
    write(d / "ud" / "de_gsd-ud-dev.conllu", CONLLU)
    write(d / "off" / "dev-de.tsv", _token_tag([(["Ich", "gehe"], ["PRON", "VERB"])]))
    write_jsonl(d / "hub" / "validation-de.jsonl", [dict(tokens=["Ich", "gehe"], pos_tags=[10, 15])])
    return [(Source("official", str(d / "ud")), "dev", "de", 2), (Source("official", str(d / "off")), "dev", "de", 1),
            (Source("local", str(d / "hub")), "dev", "de", 1)]


def w_ccg(d):
    write_lines(d / "off" / "ccg.train", ["The cat sat\tNP[nb]/N N S[dcl]\\NP", "Anna ran\tN S[dcl]\\NP"])
    return [(Source("official", str(d / "off")), "train", "en", 2)]


def w_squad(d):
    write(d / "off" / "train-v1.1.json", json.dumps(squad_json(QA)))
    write(d / "off" / "translate-train" / "squad.translate.train.en-de.json", json.dumps(squad_json(QA[:2])))
    write_parquet(d / "hub" / "train.parquet", [dict(id=q, title="t", context=c, question=qq,
                                                     answers=dict(text=[a], answer_start=[c.index(a)]))
                                                for q, c, qq, a in QA])
    return [(Source("official", str(d / "off")), "train", "en", 3),
            (Source("official", str(d / "off")), "translate_train", "de", 2),
            (Source("local", str(d / "hub")), "train", "en", 3)]


def w_squad2(d):
    data = squad_json(QA + [("q4", "Anna sat .", "Who ran ?", None)], "v2.0")
    data["data"][-1]["paragraphs"][0]["qas"][0]["is_impossible"] = True
    write(d / "off" / "dev-v2.0.json", json.dumps(data))
    return [(Source("official", str(d / "off")), "dev", "en", 4)]


def w_xquad(d):
    write(d / "off" / "xquad.de.json", json.dumps(squad_json(QA)))
    write_jsonl(d / "hub" / "validation-de.jsonl", [dict(id=q, context=c, question=qq, answers=dict(
        text=[a], answer_start=[c.index(a)])) for q, c, qq, a in QA])
    return [(Source("official", str(d / "off")), "test", "de", 3), (Source("local", str(d / "hub")), "dev", "de", 3)]


def w_mlqa(d):
    write(d / "off" / "dev" / "dev-context-de-question-de.json", json.dumps(squad_json(QA)))
    return [(Source("official", str(d / "off")), "dev", "de", 3)]


def w_tydiqa(d):
    write(d / "off" / "tydiqa-goldp-v1.1-dev" / "tydiqa.goldp.fi.dev.json", json.dumps(squad_json(QA)))
    write(d / "off" / "tydiqa-goldp-v1.1-train" / "tydiqa.goldp.en.train.json", json.dumps(squad_json(QA[:1])))
    return [(Source("official", str(d / "off")), "test", "fi", 3), (Source("official", str(d / "off")), "train", "en", 1)]


def w_tatoeba(d):
    src, eng = ["Der Hund läuft .", "Die Katze schläft ."], ["The dog runs .", "The cat sleeps ."]
    write_lines(d / "laser" / "tatoeba.deu-eng.deu", src)
    write_lines(d / "laser" / "tatoeba.deu-eng.eng", eng)
    write_lines(d / "xt" / "de-en.de", src)
    write_lines(d / "xt" / "de-en.en", sorted(eng))          # XTREME sorts the English side
    write_lines(d / "xt" / "test-de.tsv", [str(sorted(eng).index(e)) for e in eng])
    write_parquet(d / "hub" / "test-de.parquet", [dict(source_sentence=s, target_sentence=e, source_lang="deu",
                                                       target_lang="eng") for s, e in zip(src, eng)])
    return [(Source("official", str(d / "laser")), "test", "de", 4), (Source("official", str(d / "xt")), "test", "de", 4),
            (Source("local", str(d / "hub")), "test", "de", 4)]


def w_bucc2018(d):
    write_lines(d / "off" / "de-en.dev.de", ["de-1\tDer Hund läuft .", "de-2\tDie Katze ."])
    write_lines(d / "off" / "de-en.dev.en", ["en-1\tThe cat .", "en-2\tThe dog runs .", "en-3\tA tree ."])
    write_lines(d / "off" / "de-en.dev.gold", ["de-1\ten-2", "de-2\ten-1"])
    write_jsonl(d / "hub" / "validation-de.jsonl", [dict(source_sentence="Der Hund .", target_sentence="The dog .",
                                                         source_lang="de", target_lang="en")])
    return [(Source("official", str(d / "off")), "dev", "de", 5), (Source("local", str(d / "hub")), "dev", "de", 2)]


def w_lareqa(d):
    ctx = "Anna went to Paris . Omar reads a book ."
    data = {"data": [{"paragraphs": [{"context": ctx, "sentence_breaks": [[0, 20], [21, len(ctx)]], "qas": [
        {"id": "q1", "question": "Where did Anna go ?", "answers": [{"text": "Paris", "answer_start": 13}]},
        {"id": "q2", "question": "What does Omar read ?", "answers": [{"text": "a book", "answer_start": 32}]}]}]}]}
    write(d / "off" / "xquad-r" / "de.json", json.dumps(data))
    return [(Source("official", str(d / "off")), "test", "de", 4)]


def w_mewslix(d):
    ctx = {"document_title": "t", "document_url": "u", "document_id": "d", "language": "de",
           "text": "Anna traf Omar in Paris. Es regnete.",
           "sentence_spans": [{"start": 0, "end": 24}, {"start": 25, "end": 36}]}
    write_jsonl(d / "off" / "wikinews_mentions" / "dev-de.jsonl", [dict(context=ctx, mentions=[
        dict(example_id="e1", mention_span=dict(start=18, end=23, text="Paris"), entity_id="Q90")])])
    write_jsonl(d / "off" / "candidate_set_entities.jsonl", [
        dict(entity_id="Q90", title="Paris", description="Paris is a city. It is old.",
             sentence_spans=[{"start": 0, "end": 16}], description_language="en", description_url="x"),
        dict(entity_id="Q84", title="London", description="London is a city.", sentence_spans=[],
             description_language="en", description_url="y")])
    return [(Source("official", str(d / "off")), "dev", "de", 1), (Source("official", str(d / "off")), "candidates", "de", 2)]


def w_mlm(d):
    write_lines(d / "off" / "en.txt", ["The cat sat .", "", "A dog ran to the park ."])
    write_lines(d / "off" / "de.txt", ["Der Hund läuft ."])
    return [(Source("official", str(d / "off")), "train", "en", 2), (Source("official", str(d / "off")), "train", "de", 1)]


WRITERS = {n[2:].replace("anli_plus", "anli+"): f for n, f in dict(globals()).items() if n.startswith("w_")}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_load_and_featurize(name, tmp_path, tok):
    """Each source of the task (official layout(s), hub-schema local files) loads and featurizes."""
    task = get_task(name)
    for source, split, lang, n in WRITERS[name](tmp_path):
        where = (name, source.describe(), split, lang)
        labels = task.label_list(source) if (task.labels is not None or task.label_source) else None
        ex = task.load_examples(split, lang, source)
        assert len(ex) == n, where
        opts = dict(doc_stride=16, max_query_length=16) if task.kind == "span" else {}
        f = task.featurize(ex, tok, 48 if task.kind == "span" else 64, labels=labels, lang=lang,
                           split=split, **opts)
        assert f.num_rows >= f.group * len(ex) or task.kind == "mlm", where
        assert (f.lengths <= f.max_length).all() and (f.lengths > 0).all(), where
        ids = np.asarray(f.tokens["input_ids"])
        assert ids.dtype == np.int32 and ids.min() >= 0 and ids.max() < len(tok), where
        if task.kind in ("classification", "multiple_choice") and split != "test":
            assert (np.asarray(f.rows["labels"]) >= 0).all(), where
        if task.kind == "tagging" and ex[0]["tags"] is not None:
            lab = np.asarray(f.tokens["labels"])
            assert (lab >= 0).sum() == sum(len(e["tokens"]) for e in ex), where  # one label per word


def test_every_task_has_a_fixture():
    from xtreme_jax.tasks import list_tasks
    assert set(list_tasks()) == set(WRITERS)


def test_example_contents(tmp_path):
    w_xnli(tmp_path / "x")
    off = Source("official", str(tmp_path / "x" / "off"))
    ex = get_task("xnli").load_examples("dev", "de", off)
    assert ex[2]["label"] == "contradiction"      # XNLI's "contradictory" is normalised
    assert [e["label"] for e in get_task("xnli").load_examples("test", "de", off)] == [None] * 5
    tt = get_task("xnli").load_examples("translate_train", "de", off)
    assert tt[0]["text_a"].startswith("DE ") and tt[0]["label"] == "entailment"  # columns 3-5
    loc = get_task("xnli").load_examples("train", "en", Source("local", str(tmp_path / "x" / "hub")))
    assert [e["label"] for e in loc] == [y for _, _, y in NLI_ROWS]   # ClassLabel ids -> names

    w_udpos(tmp_path / "u")
    ud = get_task("udpos").load_examples("dev", "de", Source("official", str(tmp_path / "u" / "ud")))
    assert ud[0]["tokens"] == ["Ich", "gehe", "zu", "dem", "Haus", "."]   # range line 3-4 skipped
    assert ud[0]["tags"] == ["PRON", "VERB", "ADP", "DET", "NOUN", "PUNCT"]

    w_tatoeba(tmp_path / "t")
    for sub in ("laser", "xt"):
        ex = get_task("tatoeba").load_examples("test", "de", Source("official", str(tmp_path / "t" / sub)))
        src = {e["text"]: e["keys"] for e in ex if e["side"] == 0}
        tgt = {e["text"]: e["keys"] for e in ex if e["side"] == 1}
        assert src["Der Hund läuft ."] == tgt["The dog runs ."]       # gold pairs share a key

    w_bucc2018(tmp_path / "b")
    ex = get_task("bucc2018").load_examples("dev", "de", Source("official", str(tmp_path / "b" / "off")))
    by = {e["id"]: e["keys"] for e in ex}
    assert by["en-2"] == ["de-1"] and by["en-3"] == []

    w_mewslix(tmp_path / "m")
    q = get_task("mewslix").load_examples("dev", "de", Source("official", str(tmp_path / "m" / "off")))
    assert q[0]["text"] == "Paris: Anna traf Omar in { Paris } ." and q[0]["keys"] == ["Q90"]

    w_lareqa(tmp_path / "l")
    ex = get_task("lareqa").load_examples("test", "de", Source("official", str(tmp_path / "l" / "off")))
    cand = [e for e in ex if e["side"] == 1]
    assert [c["keys"] for c in cand] == [["q1"], ["q2"]]

    w_ccg(tmp_path / "c")
    assert "NP[nb]/N" in get_task("ccg").label_list(Source("official", str(tmp_path / "c" / "off")))

    w_xcopa(tmp_path / "xc")
    ex = get_task("xcopa").load_examples("test", "et", Source("official", str(tmp_path / "xc" / "off")))
    assert ex[0]["context"] == "The man ran . What was the cause?" and ex[0]["choices"][0] == "He was late ."


def test_snli_drops_unlabeled(tmp_path):
    w_snli(tmp_path)
    for src in (Source("official", str(tmp_path / "off")), Source("local", str(tmp_path / "hub"))):
        assert all(e["label"] is not None for e in get_task("snli").load_examples("train", "en", src))


def test_round_trip_hub_schema_equals_official_layout(tmp_path, tok):
    """The same examples through the hub schema and the official layout give identical inputs."""
    cases = {
        "xnli": ("dev", "de", w_xnli),
        "panx": ("dev", "de", w_panx),
        "xquad": ("test", "de", w_xquad),
        "xcopa": ("dev", "et", w_xcopa),
        "squad": ("train", "en", w_squad),
        "tatoeba": ("test", "de", w_tatoeba),
    }
    for name, (split, lang, writer) in cases.items():
        d = tmp_path / name
        writer(d)
        task = get_task(name)
        off_dir = {"xcopa": "off", "tatoeba": "laser"}.get(name, "off")
        hub_split = "dev" if name == "xquad" else split
        if name == "xcopa":  # same rows in both layouts
            write_jsonl(d / "off" / "val-et.jsonl", COPA)
        a = task.load_examples(split, lang, Source("official", str(d / off_dir)))
        b = task.load_examples(hub_split, lang, Source("local", str(d / "hub")))
        fa, fb = task.featurize(a, tok, 64), task.featurize(b, tok, 64)
        assert np.array_equal(fa.row_splits, fb.row_splits), name
        for k in fa.tokens:
            assert np.array_equal(fa.tokens[k], fb.tokens[k]), (name, k)
        for k in fa.rows:
            assert np.array_equal(fa.rows[k], fb.rows[k]), (name, k)


def test_hub_offline_gives_one_clear_error(tmp_path):
    assert os.environ.get("HF_DATASETS_OFFLINE") == "1"
    for name, split, lang in (("xnli", "dev", "de"), ("mnli", "train", "en"), ("udpos", "dev", "de")):
        with pytest.raises(DataError) as e:
            get_task(name).load_examples(split, lang, Source("hub", cache_dir=str(tmp_path)))
        msg = str(e.value)
        assert "could not load" in msg and "source.type='official'" in msg and "source.type='local'" in msg
        assert e.value.reason == "offline"


def test_hub_not_available_for_some_tasks():
    with pytest.raises(DataError, match="not on the Hugging Face hub"):
        get_task("lareqa").load_examples("test", "de", Source("hub"))


def test_tfds_needs_tensorflow_datasets():
    try:
        import tensorflow_datasets  # noqa: F401
        pytest.skip("tensorflow_datasets is installed")
    except ImportError:
        pass
    with pytest.raises(DataError, match="needs tensorflow_datasets.*pip install"):
        get_task("mnli").load_examples("train", "en", Source("tfds"))


def test_source_parsing():
    from xtreme_jax.data.sources import as_source
    assert as_source("/data/xnli") == Source("official", "/data/xnli")
    assert as_source("local:/x") == Source("local", "/x")
    assert as_source({"type": "hub", "path": "google/xtreme", "config": "XNLI"}).config == "XNLI"
    with pytest.raises(DataError, match="unknown source type"):
        Source("ftp", "/x")
    with pytest.raises(DataError, match="needs a data directory"):
        Source("official")


def test_local_file_with_all_languages_is_filtered(tmp_path):
    rows = [dict(language=l, sentence1=a, sentence2=b, gold_label=y) for l in ("de", "fr") for a, b, y in NLI_ROWS]
    write_parquet(tmp_path / "validation.parquet", rows)
    ex = get_task("xnli").load_examples("dev", "fr", Source("local", str(tmp_path)))
    assert len(ex) == len(NLI_ROWS)
