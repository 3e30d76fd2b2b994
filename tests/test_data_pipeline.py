"""Features, cache, buckets, packing, per-host sharding, iterator state, MLM masking, decoding."""
import collections

import grain
import numpy as np
import pytest

from test_data_support import NLI_ROWS, QA, sentences, write_lines
from xtreme_jax.data import batching as B
from xtreme_jax.data.cache import cached_features
from xtreme_jax.data.features import Features, concat
from xtreme_jax.data.input_pipeline import make_eval_batches, make_train_dataset, make_train_iterator
from xtreme_jax.data.sources import Source
from xtreme_jax.tasks import decode_qa, get_task, tags_to_words


def shards(n):
    return [grain.sharding.ShardOptions(shard_index=i, shard_count=n) for i in range(n)]


@pytest.fixture(scope="module")
def cls_feats(tok):
    sents = sentences(150, seed=3)
    ex = [{"id": str(i), "text_a": a, "text_b": b, "label": ("entailment", "neutral", "contradiction")[i % 3]}
          for i, (a, b) in enumerate(zip(sents[::2], sents[1::2]))]
    ex += [{"id": f"long{i}", "text_a": " ".join(sents[i:i + 6]), "text_b": "x", "label": "neutral"} for i in range(5)]
    return get_task("xnli").featurize(ex, tok, 128)


@pytest.fixture(scope="module")
def tag_feats(tok):
    sents = [s.split() for s in sentences(90, seed=5)] + [" ".join(sentences(12, seed=9)).split()]
    tags = ["O", "B-PER", "I-PER", "B-LOC"]
    ex = [{"id": str(i), "tokens": s, "tags": [tags[(i + j) % 4] for j in range(len(s))]} for i, s in enumerate(sents)]
    return ex, get_task("panx").featurize(ex, tok, 32)


# --- featurization details ------------------------------------------------------------------
def test_pair_encoding_is_the_tokenizers(tok, cls_feats):
    a, b = NLI_ROWS[0][:2]
    f = get_task("xnli").featurize([{"id": "0", "text_a": a, "text_b": b, "label": "neutral"}], tok, 64)
    ids = list(f.row_tokens("input_ids", 0))
    assert ids == tok(a, b)["input_ids"]
    assert ids[0] == tok.cls_token_id and ids.count(tok.sep_token_id) == 3  # <s> A </s></s> B </s>
    assert "token_type_ids" not in f.tokens   # XLM-R: zeros, made by the batcher
    assert cls_feats.lengths.max() <= 128 and cls_feats.meta["position_offset"] == 2


def test_tagging_first_subtoken_and_windows(tok, tag_feats):
    ex, f = tag_feats
    assert f.meta["split_sentences"] >= 1                   # the long sentence was split, not cut
    for r in range(f.num_rows):
        lab, widx = f.row_tokens("labels", r), f.row_tokens("word_index", r)
        assert ((lab >= 0) == (widx >= 0)).all()
        assert lab[0] == -100 and lab[-1] == -100            # specials carry no label
    # every word labelled exactly once over all windows of its sentence
    seen = collections.Counter()
    for r in range(f.num_rows):
        e = int(f.rows["example_index"][r])
        for w in f.row_tokens("word_index", r)[f.row_tokens("word_index", r) >= 0]:
            seen[(e, int(w))] += 1
    assert set(seen.values()) == {1} and len(seen) == sum(len(x["tokens"]) for x in ex)


def test_tags_to_words_round_trip(tag_feats):
    ex, f = tag_feats
    labels = f.meta["labels"]
    preds = [np.where(f.row_tokens("labels", r) >= 0, f.row_tokens("labels", r), 0) for r in range(f.num_rows)]
    assert tags_to_words(f, preds, labels) == [e["tags"] for e in ex]
    logits = [np.eye(len(labels))[p] for p in preds]         # logits work too
    assert tags_to_words(f, logits, labels) == [e["tags"] for e in ex]


def test_qa_windows_spans_and_decode(tok):
    long_ctx = " ".join(sentences(8, seed=1)) + " Anna went to Paris in the old red house ."
    exs = [{"id": q, "question": qq, "context": c, "answers": {"text": [a], "answer_start": [c.index(a)]}}
           for q, c, qq, a in QA + [("q4", long_ctx, "Where did Anna go ?", "Paris")]]
    f = get_task("xquad").featurize(exs, tok, 48, doc_stride=16, max_query_length=16)
    rows4 = np.nonzero(f.rows["example_index"] == 3)[0]
    assert len(rows4) > 2                                     # long context -> several windows
    # spans map back to the answer text through the offsets
    hits = 0
    for r in range(f.num_rows):
        s, e = int(f.rows["start_positions"][r]), int(f.rows["end_positions"][r])
        if s > 0:
            off = f.row_tokens("offsets", r)
            ex = exs[int(f.rows["example_index"][r])]
            assert ex["context"][off[s][0]:off[e][1]].strip() == ex["answers"]["text"][0]
            hits += 1
    assert hits >= len(exs)
    # each context token is "max context" in exactly one window
    n_ctx = len(tok(long_ctx, add_special_tokens=False)["input_ids"])
    assert sum(int(f.row_tokens("max_context", r).sum()) for r in rows4) == n_ctx
    assert sum(int((f.row_tokens("offsets", r)[:, 0] >= 0).sum()) for r in rows4) > n_ctx  # overlap
    # decoding: gold one-hot logits give the gold text back
    starts, ends = [], []
    for r in range(f.num_rows):
        n = f.lengths[r]
        sl, el = np.full(n + 5, -10.0), np.full(n + 5, -10.0)     # padded row, like a batch
        sl[int(f.rows["start_positions"][r])] = 5.0
        el[int(f.rows["end_positions"][r])] = 5.0
        starts.append(sl)
        ends.append(el)
    preds = decode_qa(exs, f, starts, ends)
    assert {k: v.strip() for k, v in preds.items()} == {e["id"]: e["answers"]["text"][0] for e in exs}


def test_qa_decode_respects_max_answer_length(tok):
    c = "Anna went to Paris in the old red house ."
    ex = [{"id": "q", "question": "Where ?", "context": c, "answers": {"text": [], "answer_start": []}}]
    f = get_task("xquad").featurize(ex, tok, 64)
    n = f.lengths[0]
    ctx = np.nonzero(f.row_tokens("offsets", 0)[:, 0] >= 0)[0]
    sl, el = np.zeros(n), np.zeros(n)
    sl[ctx[0]], el[ctx[-1]] = 9, 9                      # whole context: too long for max 2
    sl[ctx[1]], el[ctx[2]] = 5, 5
    out = decode_qa(ex, f, [sl], [el], max_answer_length=2)["q"]
    o = f.row_tokens("offsets", 0)
    assert out == c[o[ctx[1]][0]:o[ctx[2]][1]]


# --- cache ----------------------------------------------------------------------------------
def test_cache_hit_does_not_retokenize(tmp_path, tok, monkeypatch):
    write_lines(tmp_path / "d" / "dev-de.tsv", [f"{a}\t{b}\t{y}" for a, b, y in NLI_ROWS])
    src = Source("official", str(tmp_path / "d"))
    calls = collections.Counter()
    from xtreme_jax.tasks.base import Task
    real = Task.featurize

    def counting(*a, **k):
        calls["n"] += 1
        return real(*a, **k)
    monkeypatch.setattr(Task, "featurize", counting)
    f1 = cached_features("xnli", "dev", "de", tok, source=src, cache_dir=str(tmp_path / "c"))
    f2 = cached_features("xnli", "dev", "de", tok, source=src, cache_dir=str(tmp_path / "c"))
    assert calls["n"] == 1
    assert isinstance(f2.tokens["input_ids"], np.memmap)       # memory-mapped on read
    assert np.array_equal(f1.tokens["input_ids"], f2.tokens["input_ids"])
    # the key covers max length and the data: a change rebuilds
    cached_features("xnli", "dev", "de", tok, source=src, cache_dir=str(tmp_path / "c"), max_length=32)
    assert calls["n"] == 2
    write_lines(tmp_path / "d" / "dev-de.tsv", [f"{a}\t{b}\t{y}" for a, b, y in NLI_ROWS[:3]])
    f3 = cached_features("xnli", "dev", "de", tok, source=src, cache_dir=str(tmp_path / "c"))
    assert calls["n"] == 3 and f3.num_examples == 3
    assert not [p for p in (tmp_path / "c").iterdir() if p.name.startswith(".tmp")]  # atomic, no leftovers


def test_save_load_and_select(tmp_path, cls_feats):
    cls_feats.save(str(tmp_path / "f"))
    g = Features.load(str(tmp_path / "f"))
    assert np.array_equal(g.row_splits, cls_feats.row_splits) and g.meta == cls_feats.meta
    sub = g.select_examples([3, 1, 7])
    assert sub.num_rows == 3 and list(sub.rows["example_index"]) == [0, 1, 2]
    assert np.array_equal(sub.row_tokens("input_ids", 1), cls_feats.row_tokens("input_ids", 3))


def test_subsample(cls_feats):
    from xtreme_jax.data.features import subsample
    a = subsample(cls_feats, count=20, seed=1)
    b = subsample(cls_feats, count=20, seed=1)
    c = subsample(cls_feats, fraction=0.5, seed=2)
    assert a.num_examples == 20 and np.array_equal(a.tokens["input_ids"], b.tokens["input_ids"])
    assert c.num_examples == round(0.5 * cls_feats.num_examples)
    with pytest.raises(ValueError):
        subsample(cls_feats, count=10, fraction=0.1)


# --- buckets --------------------------------------------------------------------------------
def test_bucket_shapes(cls_feats):
    buckets = (16, 32, 64)
    it = make_train_iterator(cls_feats, global_batch_size=8, seed=0, buckets=buckets,
                             shard_options=shards(1)[0], num_epochs=1)
    allowed = B.resolve_buckets(cls_feats, buckets)
    assert allowed == (16, 32, 64, 128)
    shapes, n_real = set(), 0
    for b in it:
        L = b["input_ids"].shape[1]
        assert b["input_ids"].shape == (8, L) and L in allowed
        real = b["attention_mask"].sum(1)
        assert real.max() <= L
        smaller = [x for x in allowed if x < L]
        assert not smaller or real.max() > smaller[-1]          # the smallest bucket that fits
        pad = b["meta_example_index"] < 0
        assert (b["labels"][pad] == -1).all() and (real[pad] == 0).all()
        assert (b["labels"][~pad] >= 0).all()
        n_real += (~pad).sum()
        shapes.add(L)
    assert n_real == cls_feats.num_units and len(shapes) >= 2


def test_pad_to_max_is_one_shape(cls_feats):
    it = make_train_iterator(cls_feats, global_batch_size=8, buckets=None, shard_options=shards(1)[0], num_epochs=1)
    assert {b["input_ids"].shape for b in it} == {(8, 128)}


def test_multiple_choice_batches(tok):
    ex = [{"id": str(i), "context": s, "choices": ["yes .", "no .", "maybe so ."], "label": i % 3}
          for i, s in enumerate(sentences(10))]
    f = get_task("siqa").featurize(ex, tok, 64)
    b = next(make_eval_batches(f, global_batch_size=4, shard_options=shards(1)[0]))
    assert b["input_ids"].shape[:2] == (4, 3) and b["labels"].shape == (4,)


# --- packing --------------------------------------------------------------------------------
def test_packing_arrays(cls_feats, tok):
    it = make_train_iterator(cls_feats, global_batch_size=4, seed=0, packing=True, pack_length=128,
                             max_segments=8, shard_options=shards(1)[0], num_epochs=1)
    seen = collections.Counter()
    for b in it:
        assert b["input_ids"].shape == (4, 128) and b["labels"].shape == (4, 8) and b["cls_index"].shape == (4, 8)
        for r in range(4):
            seg, pos = b["segment_ids"][r], b["position_ids"][r]
            assert ((seg > 0) == (b["attention_mask"][r] == 1)).all()
            for k in range(8):
                e = b["meta_example_index"][r, k]
                if e < 0:
                    assert b["labels"][r, k] == -1
                    continue
                seen[int(e)] += 1
                idx = np.nonzero(seg == k + 1)[0]
                assert idx[0] == b["cls_index"][r, k] and (np.diff(idx) == 1).all()
                assert b["input_ids"][r, idx[0]] == tok.cls_token_id
                assert (pos[idx] == 2 + np.arange(len(idx))).all()     # XLM-R positions restart at 2
                assert np.array_equal(b["input_ids"][r, idx], cls_feats.row_tokens("input_ids", e))
                assert b["labels"][r, k] == cls_feats.rows["labels"][e]
    assert sorted(seen) == list(range(cls_feats.num_units)) and set(seen.values()) == {1}


def test_packing_tagging(tag_feats):
    _, f = tag_feats
    b = next(make_train_iterator(f, global_batch_size=2, packing=True, pack_length=64, shard_options=shards(1)[0]))
    assert b["labels"].shape == (2, 64) and "cls_index" not in b
    assert ((b["labels"] >= 0) <= (b["segment_ids"] > 0)).all()


def test_packing_efficiency_beats_buckets(cls_feats):
    eff = B.padding_efficiency(cls_feats, 8, (16, 32, 64), pack_length=128)
    assert eff["pad_to_max"] < eff["buckets"] < eff["packing"] <= 1.0


# --- hosts and resume -----------------------------------------------------------------------
def test_two_hosts_cover_the_data_exactly_once(cls_feats):
    per_host = []
    for so in shards(2):
        it = make_train_iterator(cls_feats, global_batch_size=8, seed=4, shard_options=so, num_epochs=1)
        per_host.append(list(it))
    assert len(per_host[0]) == len(per_host[1])
    for b0, b1 in zip(*per_host):                              # same padded shape on both hosts
        assert b0["input_ids"].shape == b1["input_ids"].shape == (4, b0["input_ids"].shape[1])
    ids = np.concatenate([b["meta_example_index"] for h in per_host for b in h])
    ids = ids[ids >= 0]
    assert sorted(ids) == list(range(cls_feats.num_units))


def test_two_hosts_eval_and_packing(cls_feats):
    got = []
    for so in shards(2):
        for b in make_eval_batches(cls_feats, global_batch_size=8, shard_options=so):
            got += [int(i) for i in b["meta_feature_index"] if i >= 0]
    assert sorted(got) == list(range(cls_feats.num_rows))
    got = []
    for so in shards(2):
        for b in make_train_iterator(cls_feats, global_batch_size=4, packing=True, shard_options=so, num_epochs=1):
            got += [int(i) for i in b["meta_example_index"].ravel() if i >= 0]
    assert sorted(got) == list(range(cls_feats.num_units))


def test_epochs_reshuffle_and_are_deterministic(cls_feats):
    def order(seed, epochs=2):
        it = make_train_iterator(cls_feats, global_batch_size=8, seed=seed, shard_options=shards(1)[0],
                                 num_epochs=epochs)
        return [tuple(b["meta_example_index"]) for b in it]
    a, b, c = order(1), order(1), order(2)
    assert a == b and a != c
    n = len(a) // 2
    assert a[:n] != a[n:]                                      # each epoch is shuffled anew


def test_iterator_state_resume(cls_feats):
    kw = dict(global_batch_size=8, seed=7, shard_options=shards(2)[1])
    it = make_train_iterator(cls_feats, **kw)
    for _ in range(3):
        next(it)
    state = it.get_state()
    want = [next(it) for _ in range(5)]
    it2 = make_train_iterator(cls_feats, num_threads=1, **kw)   # fresh pipeline, other threading
    it2.set_state(state)
    got = [next(it2) for _ in range(5)]
    for w, g in zip(want, got):
        assert w.keys() == g.keys() and all(np.array_equal(w[k], g[k]) for k in w)


def test_iterator_state_is_json(cls_feats):
    """Orbax/grain checkpointing stores get_state() as JSON (grain.checkpoint.CheckpointSave)."""
    import json
    it = make_train_iterator(cls_feats, global_batch_size=8, seed=2, shard_options=shards(1)[0])
    next(it)
    state = json.loads(json.dumps(it.get_state()))
    want = next(it)
    it2 = make_train_iterator(cls_feats, global_batch_size=8, seed=2, shard_options=shards(1)[0])
    it2.set_state(state)
    assert np.array_equal(next(it2)["input_ids"], want["input_ids"])
    assert grain.checkpoint.CheckpointSave(it) is not None


def test_train_dataset_exposes_plan(cls_feats):
    ds = make_train_dataset(cls_feats, global_batch_size=8, shard_options=shards(1)[0])
    assert ds.plan.batches_per_epoch == B.num_bucket_batches(cls_feats.unit_lengths, ds.plan.buckets, 8)


def test_global_batch_must_split_over_hosts(cls_feats):
    with pytest.raises(ValueError, match="not divisible"):
        make_train_iterator(cls_feats, global_batch_size=7, shard_options=shards(2)[0])


# --- eval -----------------------------------------------------------------------------------
def test_eval_batches_mixed_languages(tok):
    t = get_task("xnli")
    feats = []
    for lang_seed in (1, 2, 3):
        ex = [{"id": str(i), "text_a": s, "text_b": "x", "label": "neutral"}
              for i, s in enumerate(sentences(11 + lang_seed, seed=lang_seed))]
        feats.append(t.featurize(ex, tok, 64, lang=str(lang_seed)))
    seen = set()
    outs = []
    for b in make_eval_batches(feats, global_batch_size=8, shard_options=shards(1)[0]):
        real = b["meta_feature_index"] >= 0
        for l, r in zip(b["meta_set_index"][real], b["meta_feature_index"][real]):
            seen.add((int(l), int(r)))
        outs.append((b, {"x": b["input_ids"][:, 0]}))
    assert seen == {(l, r) for l, f in enumerate(feats) for r in range(f.num_rows)}
    merged = concat(feats)
    assert merged.num_rows == sum(f.num_rows for f in feats)


# --- MLM ------------------------------------------------------------------------------------
def test_mlm_blocks_and_masking(tok, tmp_path):
    write_lines(tmp_path / "en.txt", sentences(120, seed=11))
    t = get_task("mlm")
    f = t.featurize(t.load_examples("train", "en", Source("official", str(tmp_path))), tok, 32)
    assert (f.lengths == 32).sum() >= f.num_rows - 1
    it = make_train_iterator(f, global_batch_size=16, seed=0, shard_options=shards(1)[0])
    b = next(it)
    lab, ids = b["labels"], b["input_ids"]
    m = lab >= 0
    assert 0.05 < m.sum() / b["attention_mask"].sum() < 0.3
    assert (ids[m] == tok.mask_token_id).mean() > 0.5
    assert not np.isin(lab[m], [tok.cls_token_id, tok.sep_token_id, tok.pad_token_id]).any()
    it2 = make_train_iterator(f, global_batch_size=16, seed=0, shard_options=shards(1)[0])
    assert np.array_equal(next(it2)["input_ids"], ids)        # masks are deterministic per step
    # Two hosts' halves of a global batch are the one-host batch: same rows, same masks.
    halves = [next(make_train_iterator(f, global_batch_size=16, seed=0, shard_options=so)) for so in shards(2)]
    for key in ("input_ids", "labels", "attention_mask"):
        assert np.array_equal(np.concatenate([h[key] for h in halves]), b[key])


def test_packing_only_for_classification_and_tagging(tok):
    ex = [{"id": "0", "context": "a", "choices": ["b", "c"], "label": 0}]
    f = get_task("copa").featurize(ex, tok, 32)
    with pytest.raises(ValueError, match="packing supports"):
        make_train_iterator(f, global_batch_size=2, packing=True, shard_options=shards(1)[0])


def test_data_defined_labels_must_be_passed(tok):
    from xtreme_jax.data.errors import DataError
    with pytest.raises(DataError, match="builds its label set from the data.*label_list"):
        get_task("ccg").featurize([{"id": "0", "tokens": ["a"], "tags": ["N"]}], tok, 32)


def test_inspect_cli(tmp_path, tok, capsys):
    import json
    from test_data_support import tokenizer_dir
    from xtreme_jax.data import inspect
    write_lines(tmp_path / "dev-de.tsv", [f"{w}\t{t}" for w, t in [("Anna", "B-PER"), ("ging", "O"), ("", "")]]
                + ["Omar\tB-PER", "liest\tO", "viel\tO", ""])
    rc = inspect.main(["--task", "panx", "--data_dir", str(tmp_path), "--lang", "de", "--split", "dev",
                       "--tokenizer", tokenizer_dir(), "--batch_size", "2"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["examples"] == 2 and out["label_counts"] == {"O": 3, "B-PER": 2}
    assert set(out["padding_efficiency"]) >= {"pad_to_max", "buckets", "packing"}
    assert inspect.main(["--task", "panx", "--data_dir", str(tmp_path), "--lang", "xx",
                         "--tokenizer", tokenizer_dir()]) == 2
    assert "unknown language code 'xx'" in capsys.readouterr().err
