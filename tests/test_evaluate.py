"""Vectorized evaluator: every task kind decoded and scored, checked against independent
per-example computations; compile count; retrieval with known answers; simulated multi-host."""
import json
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xtreme_jax import scoring, sharding, train_step as train
from xtreme_jax.files import write_atomic
from xtreme_jax import evaluation as E
from xtreme_jax.data.batching import resolve_buckets
from xtreme_jax.data.features import concat
from xtreme_jax.data.input_pipeline import eval_plan
from xtreme_jax.data.sources import Source
from xtreme_jax.data.spm import train_xlmr_tokenizer
from xtreme_jax.models.encoder import preset
from xtreme_jax.models.heads import TaskModel, encode
from xtreme_jax.tasks import get_task

BATCH = 16
BUCKETS = (24,)  # + the max length 48: two static shapes per task
HEADS = {"xnli": ("classification", 3), "panx": ("tagging", 7), "xcopa": ("multiple_choice", 2),
         "xquad": ("span", 2)}
WORDS = ("alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega river stone cloud "
         "tree house music light water fire night morning garden window bread city road bird "
         "small large quick slow green blue red old new warm cold").split()


# ============================================================================ fixture data

def sent(rng, lo, hi):
    return " ".join(rng.choice(WORDS, rng.integers(lo, hi + 1)))


def write_fixtures(root, rng):
    """Small files in the official layouts; returns every text (for the tokenizer)."""
    texts = []

    def put(path, text):
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")

    # xnli: s1 \t s2 \t label
    for lang in ("en", "de", "fr"):
        lines = []
        for i in range(10):
            a, b = sent(rng, 1, 14), sent(rng, 1, 12)
            texts += [a, b]
            lines.append(f"{a}\t{b}\t{['entailment', 'neutral', 'contradiction'][i % 3]}")
        put(f"xnli/test-{lang}.tsv", "\n".join(lines) + "\n")
    # panx: token \t tag, blank line between sentences
    tags = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    for lang in ("en", "de"):
        sents = []
        for i in range(8):
            toks = (sent(rng, 60, 60) if i == 0 else sent(rng, 2, 12)).split()  # 60 words: 2 windows
            texts.append(" ".join(toks))
            sents.append("\n".join(f"{t}\t{tags[rng.integers(7)]}" for t in toks))
        put(f"panx/test-{lang}.tsv", "\n\n".join(sents) + "\n")
    # xcopa: jsonl
    for lang in ("et", "id"):
        rows = []
        for i in range(8):
            p, c1, c2 = sent(rng, 1, 12), sent(rng, 1, 8), sent(rng, 1, 8)
            texts += [p, c1, c2, "What was the cause? What was the effect?"]
            rows.append(json.dumps({"premise": p, "choice1": c1, "choice2": c2, "idx": i,
                                    "question": ["cause", "effect"][i % 2], "label": int(rng.integers(2))}))
        put(f"xcopa/test-{lang}.jsonl", "\n".join(rows) + "\n")
    # xquad: SQuAD JSON with contexts long enough for several windows
    for lang in ("en", "de"):
        paras = []
        for p in range(3):
            ctx = ". ".join(sent(rng, 4, 9) for _ in range(6)) + "."
            texts.append(ctx)
            qas = []
            for q in range(2):
                words = ctx.split(" ")
                s = int(rng.integers(0, len(words) - 3))
                ans = " ".join(words[s:s + int(rng.integers(1, 3))])
                question = sent(rng, 3, 8)
                texts.append(question)
                qas.append({"id": f"{p}-{q}", "question": question,
                            "answers": [{"text": ans, "answer_start": ctx.index(ans)}]})
            paras.append({"context": ctx, "qas": qas})
        data = {"version": "1.1", "data": [{"title": "t", "paragraphs": paras}]}
        put(f"xquad/xquad.{lang}.json", json.dumps(data))
    # tatoeba: LASER files, line i <-> line i
    for iso in ("deu", "fra"):
        src = [sent(rng, 2, 14) for _ in range(12)]
        eng = [sent(rng, 2, 14) for _ in range(12)]
        texts += src + eng
        put(f"tatoeba/tatoeba.{iso}-eng.{iso}", "\n".join(src) + "\n")
        put(f"tatoeba/tatoeba.{iso}-eng.eng", "\n".join(eng) + "\n")
    # bucc: id \t sentence, gold pairs; dev and test
    for lang in ("de", "fr"):
        for split in ("dev", "test"):
            src = [(f"{lang}-{split}-{i:03d}", sent(rng, 3, 12)) for i in range(10)]
            eng = [(f"en-{split}-{i:03d}", sent(rng, 3, 12)) for i in range(12)]
            pairs = ((0, 1), (2, 2), (3, 7), (6, 4), (8, 11))
            for i, j in pairs:  # "translations" share words with their source (a random model finds them)
                eng[j] = (eng[j][0], src[i][1] + (" river" if i == 8 else ""))
            eng[5] = (eng[5][0], eng[4][1])  # a repeated English sentence under two ids
            gold = [(src[i][0], eng[j][0]) for i, j in pairs]
            texts += [t for _, t in src + eng]
            put(f"bucc/{lang}-en.{split}.{lang}", "".join(f"{a}\t{b}\n" for a, b in src))
            put(f"bucc/{lang}-en.{split}.en", "".join(f"{a}\t{b}\n" for a, b in eng))
            put(f"bucc/{lang}-en.{split}.gold", "".join(f"{a}\t{b}\n" for a, b in gold))
    # lareqa: XQuAD-R with sentence breaks; question ids shared across languages
    for lang in ("en", "de"):
        paras = []
        for p in range(2):
            sents = [sent(rng, 3, 8) + "." for _ in range(3)]
            ctx, breaks = "", []
            for s in sents:
                start = len(ctx)
                ctx += s + " "
                breaks.append([start, start + len(s)])
            texts += sents
            qas = []
            for q in range(2):
                k = int(rng.integers(3))
                question = sent(rng, 3, 7)
                texts.append(question)
                qas.append({"id": f"q{p}{q}", "question": question,
                            "answers": [{"text": sents[k], "answer_start": breaks[k][0]}]})
            paras.append({"context": ctx, "sentence_breaks": breaks, "qas": qas})
        put(f"lareqa/xquad-r/{lang}.json", json.dumps({"data": [{"paragraphs": paras}]}))
    return texts


def mewslix_sets(rng, tok):
    task = get_task("mewslix")
    cands = [{"id": f"Q{i}", "text": sent(rng, 3, 10), "side": 1, "keys": [f"Q{i}"]} for i in range(10)]
    sets = []
    for lang in ("en", "de"):
        ex = [{"id": f"{lang}-m{i}", "text": sent(rng, 2, 9), "side": 0, "keys": [f"Q{rng.integers(10)}"]}
              for i in range(6)]
        sets.append(E.EvalSet(lang, ex, task.featurize(ex, tok, 48, lang=lang, split="test", progress=False)))
    sets.append(E.EvalSet("en", cands, task.featurize(cands, tok, 48, split="candidates", progress=False),
                          split="candidates"))
    return sets, [c["text"] for c in cands]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaldata")
    rng = np.random.default_rng(0)
    texts = write_fixtures(root, rng)
    # its own tokenizer on purpose: 120 pieces split these words, so the fixture's sequences span
    # several length buckets and BUCC's margins are checked away from near-ties
    tok = train_xlmr_tokenizer(texts + WORDS, str(root / "tok"), vocab_size=120)
    src = lambda name: Source("official", str(root / name))  # noqa: E731
    sets = {
        "xnli": E.load_eval_sets("xnli", tok, src("xnli"), languages=["en", "de", "fr"], max_length=48),
        "panx": E.load_eval_sets("panx", tok, src("panx"), languages=["en", "de"], max_length=48),
        "xcopa": E.load_eval_sets("xcopa", tok, src("xcopa"), languages=["et", "id"], max_length=48),
        "xquad": E.load_eval_sets("xquad", tok, src("xquad"), languages=["en", "de"], max_length=48,
                                  doc_stride=16, max_query_length=12),
        "tatoeba": E.load_eval_sets("tatoeba", tok, src("tatoeba"), languages=["de", "fr"], max_length=48),
        "bucc2018": E.load_eval_sets("bucc2018", tok, src("bucc"), languages=["de", "fr"], max_length=48),
        "lareqa": E.load_eval_sets("lareqa", tok, src("lareqa"), languages=["en", "de"], max_length=48),
    }
    sets["mewslix"], _ = mewslix_sets(rng, tok)
    mesh = sharding.make_mesh((8, 1, 1))  # cheapest to compile; test_sharded_parameters uses fsdp x tensor
    model = sharded_model(preset("tiny", num_layers=1), mesh)
    ev = E.Evaluator(model, mesh, batch_size=BATCH, buckets=BUCKETS)
    results = {name: ev.evaluate_task(name, s) for name, s in sets.items()}
    return dict(root=root, tok=tok, sets=sets, model=model, mesh=mesh, ev=ev, results=results)


def sharded_model(cfg, mesh):
    """A TaskModel with random parameters placed on the mesh by their logical axes, as
    train.create_state places them (numpy values: no init program to compile)."""
    make = lambda: TaskModel(cfg, HEADS, rngs=nnx.Rngs(0))  # noqa: E731
    with jax.set_mesh(mesh), nnx.logical_axis_rules(sharding.DEFAULT_RULES):
        graphdef, abstract = nnx.split(nnx.eval_shape(make))
        shardings = train.state_shardings(abstract, mesh)
    rng = np.random.default_rng(0)
    values = jax.tree.map(lambda a: rng.normal(0, 0.3, a.shape).astype(a.dtype), abstract)
    return nnx.merge(graphdef, jax.device_put(values, shardings))


# ============================================================================ independent reference

def padded(f, r, length):
    """One row of features as a batch of one, padded to `length` (no evaluator code involved)."""
    ids = np.full((1, length), f.meta["pad_id"], np.int32)
    mask = np.zeros((1, length), np.int32)
    row = f.row_tokens("input_ids", r)
    ids[0, :len(row)] = row
    mask[0, :len(row)] = 1
    return ids, mask


@pytest.fixture(scope="module")
def reference(env):
    """Per-example forward passes (one example per call, padded to the task's max length)."""
    gd, state = nnx.split(env["model"])
    logits_fn = jax.jit(lambda st, b, task: nnx.merge(gd, st).logits(task, b), static_argnums=2)

    def embed(st, b, layer, pooling):
        h = encode(nnx.merge(gd, st).encoder, b, None, output_hidden_states=True).hidden_states[layer]
        if pooling == "cls":
            return h[:, 0]
        m = b["attention_mask"][..., None].astype(jnp.float32)
        return (h * m).sum(1) / m.sum(1)
    embed_fn = jax.jit(embed, static_argnums=(2, 3))

    def logits(task, f, r):
        ids, mask = padded(f, r, f.max_length)
        b = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return np.asarray(logits_fn(state, b, task))[0]

    def mc_logits(task, f, unit):
        rows = [padded(f, unit * f.group + c, f.max_length) for c in range(f.group)]
        ids = np.stack([r[0][0] for r in rows])[None]
        mask = np.stack([r[1][0] for r in rows])[None]
        b = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return np.asarray(logits_fn(state, b, task))[0]

    def embedding(f, r, layer, pooling="mean"):
        ids, mask = padded(f, r, f.max_length)
        return np.asarray(embed_fn(state, {"input_ids": ids, "attention_mask": mask}, layer, pooling))[0]

    return dict(logits=logits, mc_logits=mc_logits, embedding=embedding)


def ref_qa(ex, f, starts, ends, n_best=20, max_len=30):
    """Brute force over the n-best starts x ends of every window of each example."""
    out = {}
    for e, example in enumerate(ex):
        best, text = -np.inf, ""
        for r in np.nonzero(np.asarray(f.rows["example_index"]) == e)[0]:
            offs, maxc = f.row_tokens("offsets", r), f.row_tokens("max_context", r)
            sl, el = starts[r], ends[r]
            top_s, top_e = set(np.argsort(-sl)[:n_best]), set(np.argsort(-el)[:n_best])
            for s in range(len(sl)):
                for t in range(s, min(len(el), s + max_len)):
                    if s in top_s and t in top_e and offs[s, 0] >= 0 and maxc[s] and offs[t, 0] >= 0:
                        if sl[s] + el[t] > best:
                            best, text = sl[s] + el[t], example["context"][offs[s, 0]:offs[t, 1]]
        out[example["id"]] = text
    return out


# ============================================================================ task kinds

def test_classification_matches_per_example(env, reference):
    res, task = env["results"]["xnli"], get_task("xnli")
    assert sorted(res.scores) == ["de", "en", "fr"]
    for s in env["sets"]["xnli"]:
        f = s.features
        preds = [task.labels[int(np.argmax(reference["logits"]("xnli", f, r)))] for r in range(f.num_rows)]
        assert res.predictions[s.lang] == preds
        gold = [e["label"] for e in s.examples]
        want = float(sum(p == g for p, g in zip(preds, gold))) / len(gold) * 100
        assert res.scores[s.lang] == {"accuracy": want}


def test_multiple_choice_matches_per_example(env, reference):
    res = env["results"]["xcopa"]
    for s in env["sets"]["xcopa"]:
        preds = [int(np.argmax(reference["mc_logits"]("xcopa", s.features, u)))
                 for u in range(len(s.examples))]
        assert res.predictions[s.lang] == preds
        assert res.scores[s.lang] == scoring.accuracy([e["label"] for e in s.examples], preds)


def test_tagging_words_match_per_example(env, reference):
    res = env["results"]["panx"]
    labels = get_task("panx").labels
    assert any(s.features.meta["split_sentences"] for s in env["sets"]["panx"]), "want a split sentence"
    for s in env["sets"]["panx"]:
        f = s.features
        words = [["O"] * len(e["tokens"]) for e in s.examples]
        for r in range(f.num_rows):
            tags = reference["logits"]("panx", f, r).argmax(-1)
            wid = f.row_tokens("word_index", r)
            for t in np.nonzero(wid >= 0)[0]:
                words[f.rows["example_index"][r]][wid[t]] = labels[int(tags[t])]
        assert res.predictions[s.lang] == words
        gold = [e["tags"] for e in s.examples]
        assert res.scores[s.lang] == scoring.seqeval_f1(gold, words)


def test_qa_spans_match_per_example(env, reference):
    res = env["results"]["xquad"]
    assert any(s.features.num_rows > len(s.examples) for s in env["sets"]["xquad"]), "want several windows"
    for s in env["sets"]["xquad"]:
        f = s.features
        lg = [reference["logits"]("xquad", f, r) for r in range(f.num_rows)]
        n = f.lengths
        starts = [x[:n[r], 0] for r, x in enumerate(lg)]
        ends = [x[:n[r], 1] for r, x in enumerate(lg)]
        preds = ref_qa(s.examples, f, starts, ends)
        assert res.predictions[s.lang] == preds
        assert all(preds.values())
        assert res.scores[s.lang] == scoring.squad_em_f1(E.squad_gold(s.examples), preds)


def test_naive_loop_gives_identical_results(env):
    ev = env["ev"]
    for name in ("xnli", "panx", "xquad", "tatoeba", "lareqa"):
        naive = ev.evaluate_task(name, env["sets"][name], mode="naive")
        assert naive.scores == env["results"][name].scores, name
        assert naive.predictions == env["results"][name].predictions, name
        assert naive.info["compiles"] <= 1, "naive pads to one length: at most one new shape"


def test_compiles_stay_at_number_of_buckets(env):
    ev = env["ev"]
    for name in ("xnli", "panx", "xcopa"):
        feats = [s.features for s in env["sets"][name]]
        lengths = {length for length, _ in eval_plan(concat(feats), BATCH, BUCKETS)}
        assert len(lengths) >= 2, "fixture should use several buckets"
        assert lengths <= set(resolve_buckets(concat(feats), BUCKETS))
        assert ev.compiles[(get_task(name).kind, name)] == len(lengths), name
    before = ev.compile_count
    again = ev.evaluate_task("xnli", env["sets"]["xnli"][:2])  # other languages: no new shapes
    assert again.info["compiles"] == 0 and ev.compile_count == before
    fwd = ev._forward("classification", "xnli")
    assert fwd._cache_size() == ev.compiles[("classification", "xnli")]


# ============================================================================ retrieval

@pytest.fixture(scope="module")
def ref_embeddings(env, reference):
    out = {}
    for name in ("tatoeba", "bucc2018", "lareqa", "mewslix"):
        # each task's official layer and pooling (BUCC: first token, as run_bucc2018.sh)
        setting = env["ev"].retrieval_setting(name)
        layer, pooling = setting["retrieval_layer"], setting["retrieval_pooling"]
        out[name] = [np.stack([reference["embedding"](s.features, r, layer, pooling)
                               for r in range(s.features.num_rows)]) for s in env["sets"][name]]
    return out


def cosine(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def test_pooled_embeddings_match_per_example(env, ref_embeddings):
    ev = env["ev"]
    assert ev.retrieval_layer == 1  # 1-layer model: layer 14/24 scaled
    for name in ("tatoeba", "lareqa"):
        got = ev.run("retrieval", [s.features for s in env["sets"][name]])
        for g, want in zip(got, ref_embeddings[name]):
            np.testing.assert_allclose(g, want, atol=1e-5)


def test_tatoeba_top1(env, ref_embeddings):
    res = env["results"]["tatoeba"]
    for s, emb in zip(env["sets"]["tatoeba"], ref_embeddings["tatoeba"]):
        side = np.asarray([e["side"] for e in s.examples])
        sim = cosine(emb[side == 0], emb[side == 1])
        pred = sim.argmax(1).tolist()
        assert res.predictions[s.lang] == pred
        acc = float(sum(p == i for i, p in enumerate(pred))) / len(pred) * 100
        back = float(sum(p == i for i, p in enumerate(sim.argmax(0)))) / sim.shape[1] * 100
        assert res.scores[s.lang] == {"accuracy": acc, "accuracy_en_to_xx": back}


def brute_bucc(x, y, k=4):
    """Ratio margin over full similarity matrices (no kNN code), greedy 'max' extraction."""
    sim = cosine(x, y)
    kx, ky = min(k, sim.shape[1]), min(k, sim.shape[0])
    mx = np.sort(sim, axis=1)[:, ::-1][:, :kx].mean(1)
    my = np.sort(sim, axis=0)[::-1][:ky].mean(0)
    margin = sim / ((mx[:, None] + my[None, :]) / 2)
    top_x = np.argsort(-sim, axis=1)[:, :kx]
    top_y = np.argsort(-sim, axis=0)[:ky].T
    cands = [(margin[i, top_x[i]].max(), i, top_x[i][margin[i, top_x[i]].argmax()]) for i in range(len(x))]
    cands += [(margin[top_y[j], j].max(), top_y[j][margin[top_y[j], j].argmax()], j) for j in range(len(y))]
    cands.sort(key=lambda c: -c[0])
    used_x, used_y, out = set(), set(), []
    for sc, i, j in cands:
        if i not in used_x and j not in used_y:
            used_x.add(i)
            used_y.add(j)
            out.append((i, j, sc))
    return out


def test_bucc_margin_mining_and_dev_threshold(env, ref_embeddings):
    res = env["results"]["bucc2018"]
    assert res.info["scored_split"] == {"de": "test", "fr": "test"}
    mined = {}
    for s, emb in zip(env["sets"]["bucc2018"], ref_embeddings["bucc2018"]):
        ex = s.examples
        src = [i for i, e in enumerate(ex) if e["side"] == 0]
        trg = [i for i, e in enumerate(ex) if e["side"] == 1]
        # unique English texts: sentence 5 repeats sentence 4 under another id -> dropped
        texts = [ex[i]["text"] for i in trg]
        uniq = [k for k, t in enumerate(texts) if t not in texts[:k]]
        ids = {t: [ex[trg[k]]["id"] for k, u in enumerate(texts) if u == t] for t in texts}
        pairs = {}
        for i, j, sc in brute_bucc(emb[src], emb[[trg[u] for u in uniq]]):
            t = texts[uniq[j]]
            if len(ids[t]) == 1 and sc > 0:
                pairs[(ex[src[i]]["id"], ids[t][0])] = sc
        gold = {(k, ex[i]["id"]) for i in trg for k in ex[i]["keys"]}
        mined[(s.lang, s.split)] = (pairs, gold)
    for lang in ("de", "fr"):
        pairs, gold = mined[(lang, "dev")]
        ranked = sorted(pairs.items(), key=lambda kv: -kv[1])
        best, th = 0, 0.0
        for n in range(1, len(ranked) + 1):
            hits = sum(p in gold for p, _ in ranked[:n])
            f1 = 2 * hits / (n + len(gold)) if hits else 0
            if f1 > best:
                best = f1
                th = (ranked[n - 1][1] + ranked[min(n, len(ranked) - 1)][1]) / 2
        assert best > 0 and res.info["thresholds"][lang] == pytest.approx(th, rel=1e-5)
        test_pairs, test_gold = mined[(lang, "test")]
        pred = {p for p, sc in test_pairs.items() if sc >= th}
        assert set(res.predictions[lang]) == pred
        assert res.scores[lang] == scoring.bucc_f1(sorted(test_gold), sorted(pred))


def test_map20_lareqa_and_mewslix(env, ref_embeddings):
    # lareqa: every language's questions against the answer sentences of all languages
    sets, embs = env["sets"]["lareqa"], ref_embeddings["lareqa"]
    cands = [(e, emb[i]) for s, emb in zip(sets, embs) for i, e in enumerate(s.examples) if e["side"] == 1]
    cvec = np.stack([c[1] for c in cands])
    res = env["results"]["lareqa"]
    for s, emb in zip(sets, embs):
        qs = [(e, emb[i]) for i, e in enumerate(s.examples) if e["side"] == 0]
        order = np.argsort(-cosine(np.stack([q[1] for q in qs]), cvec), axis=1, kind="stable")[:, :20]
        preds = {q["id"]: [cands[j][0]["id"] for j in o] for (q, _), o in zip(qs, order)}
        assert res.predictions[s.lang] == preds
        gold = {q["id"]: sorted(c["id"] for c, _ in cands if set(c["keys"]) & set(q["keys"])) for q, _ in qs}
        assert all(len(g) == 2 for g in gold.values())  # the answer sentence in both languages
        assert res.scores[s.lang] == scoring.lareqa_map20(gold, preds)
    # mewslix: mentions against the candidate entity set
    sets, embs = env["sets"]["mewslix"], ref_embeddings["mewslix"]
    cvec, cids = embs[-1], [c["id"] for c in sets[-1].examples]
    res = env["results"]["mewslix"]
    assert sorted(res.scores) == ["de", "en"]
    for s, emb in zip(sets[:-1], embs[:-1]):
        order = np.argsort(-cosine(emb, cvec), axis=1, kind="stable")[:, :20]
        preds = {e["id"]: [cids[j] for j in o] for e, o in zip(s.examples, order)}
        assert res.predictions[s.lang] == preds
        assert res.scores[s.lang] == scoring.mewslix_map20({e["id"]: e["keys"] for e in s.examples}, preds)


def test_retrieval_with_known_answers():
    rng = np.random.default_rng(1)
    # kNN over several chunks equals brute force
    q, db = rng.normal(size=(300, 8)).astype(np.float32), rng.normal(size=(700, 8)).astype(np.float32)
    sims, idx = E.knn(q, db, 5, chunk=256)
    want = np.argsort(-(q @ db.T), axis=1)[:, :5]
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_allclose(sims, np.take_along_axis(q @ db.T, want, 1), rtol=1e-5)
    assert E.knn(q[:3], db[:2], 4)[1].shape == (3, 2)  # k capped at the database size
    # tatoeba: targets are a permutation of noisy copies of the sources
    x = rng.normal(size=(50, 16))
    perm = rng.permutation(50)
    y = x[perm] + 0.05 * rng.normal(size=(50, 16))
    _, top = E.knn(E.l2_normalize(x), E.l2_normalize(y), 1)
    np.testing.assert_array_equal(top[:, 0], np.argsort(perm))
    # BUCC: 20 planted pairs among 30 + 40 sentences; dev threshold recovers them on test
    def planted(seed):
        r = np.random.default_rng(seed)
        src = r.normal(size=(30, 32))
        trg = r.normal(size=(40, 32))
        pairs = [(i, int(j)) for i, j in zip(range(20), r.permutation(40)[:20])]
        for i, j in pairs:
            trg[j] = src[i] + 0.1 * r.normal(size=32)
        texts = lambda n, p: [f"{p}{i}" for i in range(n)]  # noqa: E731
        cands = E.bucc_candidates(src, trg, texts(30, "s"), texts(40, "t"), texts(30, "s"), texts(40, "t"))
        return cands, {(f"s{i}", f"t{j}") for i, j in pairs}
    dev, dev_gold = planted(2)
    th = E.bucc_threshold(dev, dev_gold)
    test, test_gold = planted(3)
    assert {p for p, sc in test.items() if sc >= th} == test_gold
    # mAP@20: relevant candidates at ranks 1 and 3 -> AP = (1/1 + 2/3) / 2
    qv = np.eye(4)[:1]
    cv = np.array([[1, 0, 0, 0], [0.9, 0.1, 0, 0], [0.8, 0.2, 0, 0], [0, 1, 0, 0]], float)
    _, top = E.knn(E.l2_normalize(qv), E.l2_normalize(cv), 20)
    ranked = [f"c{j}" for j in top[0]]
    assert ranked == ["c0", "c1", "c2", "c3"]
    ap = scoring.lareqa_map20({"q": ["c0", "c2"]}, {"q": ranked})["map@20"]
    assert ap == pytest.approx((1 + 2 / 3) / 2 * 100)


def test_retrieval_layer_choice():
    # The official scripts' --specific_layer 7 (12 layers) / 13 (24 layers) counts layer outputs
    # without the embeddings: hidden_states[8] / [14] here (index 0 = embeddings, as in HF).
    assert E.resolve_layer(None, 24) == 14 and E.resolve_layer(None, 12) == 8
    assert E.resolve_layer(None, 6) == 4  # other depths: large's relative depth, 14/24
    assert E.resolve_layer(-1, 24) == 24 and E.resolve_layer(0, 24) == 0
    with pytest.raises(ValueError, match="retrieval_layer=25 is outside"):
        E.resolve_layer(25, 24)


def test_batch_size_must_split_over_devices(env):
    with pytest.raises(ValueError, match="must split evenly over the 8 data-parallel devices"):
        E.Evaluator(env["model"], env["mesh"], batch_size=12)


def test_sharded_parameters_give_the_same_results(env):
    """Parameters split over fsdp x tensor (and batches over data x fsdp): same answers."""
    mesh = sharding.make_mesh((2, 2, 2))
    model = sharded_model(preset("tiny", num_layers=1), mesh)
    kernel = model.encoder.layers[0].qkv_kernel[...]
    assert kernel.sharding.shard_shape(kernel.shape) == (32, 3, 32)
    ev = E.Evaluator(model, mesh, batch_size=BATCH, buckets=BUCKETS)
    res = ev.evaluate_task("xquad", env["sets"]["xquad"])
    assert res.predictions == env["results"]["xquad"].predictions
    assert res.scores == env["results"]["xquad"].scores


# ============================================================================ hosts, submission

class ThreadAllgather:
    """process_allgather for N 'hosts' that are threads of this process."""

    def __init__(self, n):
        self.slots, self.barrier = [None] * n, threading.Barrier(n)

    def for_host(self, i):
        def gather(x):
            self.slots[i] = np.asarray(x)
            self.barrier.wait()
            out = np.stack(self.slots)
            self.barrier.wait()
            return out
        return gather


def test_two_simulated_hosts_gather_to_the_same_results(env):
    gather = ThreadAllgather(2)
    # global batch 32 = 16 rows per host: the shapes already compiled for one host of 16
    evs = [E.Evaluator(env["model"], env["mesh"], batch_size=2 * BATCH, buckets=BUCKETS, shard_index=i,
                       shard_count=2, allgather=gather.for_host(i)) for i in range(2)]
    out = [None, None]

    def host(i):
        out[i] = (evs[i].evaluate_task("xnli", env["sets"]["xnli"]),
                  evs[i].evaluate_task("xquad", env["sets"]["xquad"]))

    threads = [threading.Thread(target=host, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for i in range(2):
        for res in out[i]:
            single = env["results"][res.task]
            assert res.scores == single.scores and res.predictions == single.predictions


def test_allgather_concat_handles_uneven_hosts():
    gather = ThreadAllgather(3)
    parts = [np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 100 * n for n in (3, 0, 5)]
    out = [None] * 3
    def host(i):
        out[i] = E.allgather_concat(parts[i], gather.for_host(i))

    threads = [threading.Thread(target=host, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for o in out:
        np.testing.assert_array_equal(o, np.concatenate(parts))


def test_submission_round_trips_through_scoring(env, tmp_path):
    results = E.EvalResults(env["results"])
    written = results.write_submission(str(tmp_path / "pred"))
    assert len(written) == 2 * 7 + 1  # xnli 3, panx 2, xcopa 2, xquad 2, tatoeba 2, bucc 2, mewslix 2
    labels = tmp_path / "labels"
    for name in ("xnli", "panx", "xcopa", "tatoeba", "xquad"):
        for s in env["sets"][name]:
            if name == "xquad":
                gold = {"data": E.squad_gold(s.examples)}
                path = scoring.submission_path(str(labels), name, s.lang)
                write_atomic(path, json.dumps(gold))
            else:
                gold = {"xnli": lambda: [e["label"] for e in s.examples],
                        "panx": lambda: [e["tags"] for e in s.examples],
                        "xcopa": lambda: [e["label"] for e in s.examples],
                        "tatoeba": lambda: list(range(len(s.examples) // 2))}[name]()
                path = scoring.write_submission(str(labels), name, s.lang, gold)
            pred = scoring.submission_path(str(tmp_path / "pred"), name, s.lang)
            got = scoring.score_file(name, pred, path, s.lang)
            want = {k: v for k, v in results.scores[name][s.lang].items() if k != "accuracy_en_to_xx"}
            assert got == want, (name, s.lang)
    agg = results.aggregate("xtreme")
    accs = [v["accuracy"] for v in results.scores["xnli"].values()]
    assert agg["xnli"]["avg_accuracy"] == pytest.approx(np.mean(accs))


# ============================================================================ no labels, notes

def test_sets_without_labels_are_predicted_not_scored(env, tmp_path):
    """Test labels the official download strips: predictions, no score, the reason in info."""
    root, ev, tok = env["root"], env["ev"], env["tok"]
    src = lambda name: Source("official", str(tmp_path / name))  # noqa: E731
    (tmp_path / "xnli").mkdir()
    for lang in ("en", "de"):  # de as XTREME's download writes test files: no label column
        rows = (root / "xnli" / f"test-{lang}.tsv").read_text().splitlines()
        (tmp_path / "xnli" / f"test-{lang}.tsv").write_text(
            "".join(("\t".join(r.split("\t")[:2]) if lang == "de" else r) + "\n" for r in rows))
    res = ev.evaluate_task("xnli", E.load_eval_sets("xnli", tok, src("xnli"), languages=["en", "de"], max_length=48))
    assert sorted(res.scores) == ["en"] and sorted(res.predictions) == ["de", "en"]
    assert res.predictions["de"] == env["results"]["xnli"].predictions["de"]
    assert res.unscored == {"de": "xnli/de: the test data has no gold labels (the official XTREME download "
                                  "strips test labels, e.g. PAWS-X test and the BUCC test gold, for the leaderboard)"}
    # BUCC without its test gold file: test pairs are mined (threshold from dev) but not scored,
    # where a dev F1 used to stand in for the test score.
    (tmp_path / "bucc").mkdir()
    for f in (root / "bucc").iterdir():
        if not f.name.endswith(".test.gold"):
            (tmp_path / "bucc" / f.name).write_bytes(f.read_bytes())
    sets = E.load_eval_sets("bucc2018", tok, src("bucc"), languages=["de", "fr"], max_length=48)
    res = ev.evaluate_task("bucc2018", sets)
    full = env["results"]["bucc2018"]
    assert res.scores == {} and sorted(res.unscored) == ["de", "fr"] and res.info["scored_split"] == {}
    assert res.predictions == full.predictions and res.info["thresholds"] == full.info["thresholds"]
    # Asked for dev (labelled): dev only, scored on dev.
    dev = E.load_eval_sets("bucc2018", tok, src("bucc"), split="dev", languages=["de"], max_length=48)
    assert [s.split for s in dev] == ["dev"]
    res = ev.evaluate_task("bucc2018", dev)
    assert res.info["scored_split"] == {"de": "dev"} and res.info["split"] == "dev" and res.scores["de"]["f1"] > 0
    # Tatoeba in XTREME's copy (English side sorted) without its test-xx.tsv gold: not a 0 score.
    (tmp_path / "tatoeba").mkdir()
    src_lines = (root / "tatoeba" / "tatoeba.deu-eng.deu").read_text()
    (tmp_path / "tatoeba" / "de-en.de").write_text(src_lines)
    (tmp_path / "tatoeba" / "de-en.en").write_text((root / "tatoeba" / "tatoeba.deu-eng.eng").read_text())
    res = ev.evaluate_task("tatoeba", E.load_eval_sets("tatoeba", tok, src("tatoeba"), languages=["de"],
                                                       max_length=48))
    assert res.scores == {} and list(res.unscored) == ["de"] and len(res.predictions["de"]) == 12


def test_frozen_encoder_retrieval_scores_say_they_are_not_comparable(env, tmp_path, capsys):
    from xtreme_jax.evaluation import output
    done = {t: env["results"][t] for t in ("xnli", "mewslix", "lareqa")}
    out = output.write_results(str(tmp_path / "r"), output.record("ckpt"), done, {}, benchmark="xtreme-r",
                               write_submission=False)
    doc = json.loads((tmp_path / "r" / "results.json").read_text())
    assert sorted(doc["notes"]) == ["lareqa", "mewslix"] and "note" not in doc["summary"]["xnli"]
    for task, script in (("mewslix", "scripts/train_mewslix.sh"), ("lareqa", "scripts/train_lareqa.sh")):
        note = doc["notes"][task]
        assert note.startswith("zero-shot score of the frozen encoder (no retrieval fine-tuning): NOT "
                               "comparable to the XTREME-R baselines") and script in note
        assert doc["summary"][task]["note"] == note
        assert f"- **{task}** *: {note}" in (tmp_path / "r" / "results.md").read_text()
    output.say(out, "test")
    said = capsys.readouterr().out.splitlines()
    assert said == [f"note: mewslix: {doc['notes']['mewslix']}", f"note: lareqa: {doc['notes']['lareqa']}"]


def test_a_short_bucket_processes_fewer_tokens_for_the_same_results(env):
    """config.evaluate.buckets starts at 16 for short retrieval sentences: the same embeddings and
    predictions from fewer padded tokens (the kit's Tatoeba: 2.49M -> 1.76M, docs/benchmarks.md)."""
    short = E.Evaluator(env["model"], env["mesh"], batch_size=BATCH, buckets=(12,) + BUCKETS)
    res = short.evaluate_task("tatoeba", env["sets"]["tatoeba"])
    ref = env["results"]["tatoeba"]
    assert res.predictions == ref.predictions and res.scores == ref.scores
    assert res.info["buckets"] == [12, 24] and ref.info["buckets"] == [24]
    assert res.info["processed_tokens_per_host"] < ref.info["processed_tokens_per_host"]
