"""The real e5 checkpoint through the run's own paths (issue 17, stage 2): evaluating an HF
directory with only retrieval tasks, the input prefix and retrieval layer / pooling from the
config (and recorded in results.json), packed position ids from the model's convention, the
tokenizer / model pad-id check, and configs/real.py.

Tests needing the real weights or the data kit skip with a reason when they are absent.
"""
import importlib.util
import json

import jax.numpy as jnp
import numpy as np
import pytest

from real_model import ROOT, e5_dir, e5_jax, e5_tok, minilm_dir, tatoeba_lines  # noqa: F401
from xtreme_jax import config as C
from xtreme_jax.config import ConfigError
from xtreme_jax.data import batching as B
from xtreme_jax.data.tokenization import PrefixedTokenizer
from xtreme_jax.evaluation import Evaluator
from xtreme_jax.evaluation.retrieval import official_setting
from xtreme_jax.models.encoder import preset
from xtreme_jax.models.heads import ENCODER_KEYS, encode
from xtreme_jax.tasks import get_task

PAIRS = {"de": "deu", "ru": "rus"}
N_PAIRS = 24


def eval_config(**evaluate):
    c = C.base_config()
    c.phases = "evaluate"
    c.mesh = (-1, 1, 1)
    c.data.buckets = (32,)
    c.evaluate.batch_size = 32
    for k, v in evaluate.items():
        c.evaluate[k] = v
    return c


# ---------------------------------------------------------------- official settings (no weights)

def test_official_retrieval_settings_per_task():
    # run_tatoeba.sh: mean pooling, --specific_layer 7 (12 layers) / 13 (24) = hidden_states 8 / 14;
    # run_bucc2018.sh: cls pooling, --specific_layer 7 for every depth = hidden_states 8.
    assert official_setting("tatoeba", 12) == (8, "mean") and official_setting("tatoeba", 24) == (14, "mean")
    assert official_setting("bucc2018", 12) == (8, "cls") and official_setting("bucc2018", 24) == (8, "cls")
    assert official_setting("bucc2018", 6) == (4, "cls")      # shallower: base's relative depth
    assert official_setting("lareqa", 12) == (8, "mean")      # frozen encoder: Tatoeba's setting


def test_evaluator_layer_and_pooling_precedence():
    from xtreme_jax import sharding
    from xtreme_jax.train_step import create_model
    mesh = sharding.make_mesh((-1, 1, 1))
    model = create_model(preset("tiny", num_layers=2), {}, mesh)
    ev = Evaluator(model, mesh, batch_size=8)
    assert ev.retrieval_setting("bucc2018")["retrieval_layer"] == 1          # official: cls at 8/12 scaled
    assert ev.retrieval_setting("bucc2018")["retrieval_pooling"] == "cls"
    assert ev.retrieval_setting("tatoeba")["retrieval_pooling"] == "mean"
    got = ev.retrieval_setting("bucc2018", layer=-1, pooling="mean")        # a task entry's own
    assert (got["retrieval_layer"], got["retrieval_pooling"], got["retrieval_official"]) == (2, "mean", [1, "cls"])
    ev = Evaluator(model, mesh, batch_size=8, retrieval_layer=0, retrieval_pooling="cls")  # evaluate's
    assert (ev.retrieval_setting("tatoeba")["retrieval_layer"], ev.retrieval_setting("tatoeba")["retrieval_pooling"]) == (0, "cls")
    assert ev.retrieval_setting("tatoeba", layer=2)["retrieval_layer"] == 2
    with pytest.raises(ValueError, match="outside the encoder"):
        ev.retrieval_setting("tatoeba", layer=3)


def test_retrieval_config_fields_are_validated():
    c = eval_config(retrieval_pooling="max")
    c.evaluate.tasks = [C.eval_task("tatoeba")]
    with pytest.raises(ConfigError, match=r"config.evaluate.retrieval_pooling='max'; choose mean"):
        C.validate(c, 1)
    c = eval_config()
    c.evaluate.tasks = [C.eval_task("tatoeba"), C.eval_task("xnli", retrieval_layer=-1)]
    with pytest.raises(ConfigError, match=r"config.evaluate.tasks\[1\]: retrieval_layer / retrieval_pooling "
                                          "apply to retrieval tasks only"):
        C.validate(c, 1)
    c = eval_config(retrieval_layer=-3)
    c.evaluate.tasks = [C.eval_task("tatoeba", retrieval_layer=2)]
    tiny = preset("tiny")                                                    # 2 layers: -3 .. 2
    C.validate_retrieval_layers(c, tiny)
    c.evaluate.tasks[0].retrieval_layer = 5
    with pytest.raises(ConfigError, match=r"config.evaluate.tasks\[0\].retrieval_layer=5: the model has 2 layers"):
        C.validate_retrieval_layers(c, tiny)


# ---------------------------------------------------------------- the real checkpoint

def tatoeba_dir(shared_data, root):
    """The first N_PAIRS pairs of de and ru, in the official layout."""
    for iso3 in PAIRS.values():
        for side in (iso3, "eng"):
            lines = tatoeba_lines(shared_data, iso3, N_PAIRS, side=side)
            (root / f"tatoeba.{iso3}-eng.{side}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_evaluate_hf_checkpoint_with_retrieval_only(shared_data, e5_dir, e5_tok, e5_jax, tmp_path):
    """XTREME's encoder-only baseline as a new user runs it (`python -m xtreme_jax.evaluate
    --checkpoint=<HF dir>` with only Tatoeba): once a KeyError 'heads'. Layer, pooling and prefix
    come from the config; results.json records them; the scores are those of a plain forward."""
    from xtreme_jax.phases import evaluate_checkpoint
    (tmp_path / "tatoeba").mkdir()
    data = tatoeba_dir(shared_data, tmp_path / "tatoeba")
    c = eval_config(retrieval_pooling="cls")                     # the entry inherits cls ...
    c.evaluate.tasks = [C.eval_task("tatoeba", C.source("official", str(data)), languages="de,ru",
                                    input_prefix="query: ", retrieval_layer=-1)]  # ... and sets its layer
    out = evaluate_checkpoint(c, e5_dir, str(tmp_path / "out"))
    results = json.loads((tmp_path / "out" / "evaluate" / "results" / "results.json").read_text())
    info = results["metadata"]["evaluator"]["tatoeba"]
    assert (info["retrieval_layer"], info["retrieval_pooling"], info["input_prefix"]) == (12, "cls", "query: ")
    assert info["retrieval_official"] == [8, "mean"] and info["num_layers"] == 12

    # Reference: one plain forward of every sentence with "query: ", first token of the last layer.
    for lang, iso3 in PAIRS.items():
        texts = [tatoeba_lines(shared_data, iso3, N_PAIRS, side=s) for s in (iso3, "eng")]
        enc = e5_tok(["query: " + t for t in texts[0] + texts[1]], padding=True, return_tensors="np")
        h = e5_jax(jnp.asarray(enc["input_ids"]), jnp.asarray(enc["attention_mask"]),
                   output_hidden_states=True).hidden_states[12][:, 0]
        h = np.asarray(h) / np.linalg.norm(np.asarray(h), axis=-1, keepdims=True)
        pred = (h[:N_PAIRS] @ h[N_PAIRS:].T).argmax(1)
        want = 100.0 * float(np.mean(pred == np.arange(N_PAIRS)))
        assert out["results"]["tatoeba"][lang]["accuracy"] == pytest.approx(want, abs=1e-9), lang
        assert want >= 50, (lang, want)  # real translations, found far above chance (1/24)


def context_config(pretrained, **model):
    c = eval_config()
    c.model.pretrained = pretrained
    for k, v in model.items():
        c.model[k] = v
    c.evaluate.tasks = [C.eval_task("tatoeba")]
    return c


def test_input_prefix_from_the_config(e5_dir, e5_tok, tmp_path):
    from xtreme_jax.context import build_context
    ctx = build_context(context_config(e5_dir, input_prefix="query: "), str(tmp_path))
    text = "Der Hund schläft."
    assert isinstance(ctx.tokenizer, PrefixedTokenizer)
    assert ctx.tokenizer(text)["input_ids"] == e5_tok("query: " + text)["input_ids"]
    entry = C.eval_task("tatoeba", input_prefix="passage: ")
    assert ctx.eval_tokenizer(entry)(text)["input_ids"] == e5_tok("passage: " + text)["input_ids"]
    assert ctx.eval_tokenizer(C.eval_task("tatoeba", input_prefix=""))(text)["input_ids"] == e5_tok(text)["input_ids"]
    assert ctx.eval_tokenizer(C.eval_task("tatoeba")) is ctx.tokenizer     # None: the model's prefix


def test_pad_id_of_tokenizer_and_model_must_agree(e5_dir, minilm_dir, tmp_path):
    from xtreme_jax.context import build_context
    with pytest.raises(ConfigError, match=r"pads with id 0 but the model's config.json .* has pad_token_id=1"):
        build_context(context_config(e5_dir, tokenizer=minilm_dir), str(tmp_path))


def test_packed_positions_follow_the_model_on_e5(shared_data, e5_dir, e5_jax, tmp_path):
    """A BERT-layout model with an XLM-R tokenizer: packed position ids start at 0 (the model's
    convention), not at the tokenizer's 2, and packed outputs equal unpacked ones per example."""
    from xtreme_jax.context import build_context
    c = context_config(e5_dir)
    c.phases, c.target.tasks = "target,evaluate", [
        C.task_entry("udpos", split="dev", src=C.source("official", str(shared_data / "ud")))]
    ctx = build_context(c, str(tmp_path))
    full = ctx.features(get_task("udpos"), "dev", "mr", c.target.tasks[0].source, 64)
    assert full.meta["position_offset"] == 2 and full.meta["first_position_id"] == 0
    n = 10
    order = np.argsort(full.unit_lengths)[:n]       # short sentences, so rows hold several
    rows = B.pack_first_fit(np.asarray(full.unit_lengths), order, 64, 4)
    assert any(len(r) > 1 for r in rows), "the fixture must actually pack several examples per row"
    packed = B.assemble_packed(full, rows, 64, 4)
    plain = B.assemble(full, np.asarray(order), 64)

    def run(batch):
        return np.asarray(encode(e5_jax, {k: jnp.asarray(v) for k, v in batch.items() if k in ENCODER_KEYS},
                                 None).last_hidden_state)

    got, want = run(packed), run(plain)
    wrong = run(B.assemble_packed(full, rows, 64, 4, first_position=2))    # the tokenizer's guess
    where = {int(u): i for i, u in enumerate(order)}
    worst = worst_wrong = 0.0
    for b, units in enumerate(rows):
        at = 0
        for u in units:
            k = int(full.unit_lengths[u])
            assert (packed["position_ids"][b, at:at + k] == np.arange(k)).all()
            worst = max(worst, float(np.abs(got[b, at:at + k] - want[where[u], :k]).max()))
            worst_wrong = max(worst_wrong, float(np.abs(wrong[b, at:at + k] - want[where[u], :k]).max()))
            at += k
    assert worst < 1e-4, worst
    assert worst_wrong > 1e-2, worst_wrong   # positions shifted by 2 change the outputs


# ---------------------------------------------------------------- configs/real.py

def load_real_config():
    spec = importlib.util.spec_from_file_location("real_config", ROOT / "configs" / "real.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_real_config_without_the_converted_encoder(monkeypatch, tmp_path, capsys):
    mod = load_real_config()
    monkeypatch.setattr(mod.convert_e5, "default_dir", lambda: str(tmp_path / "absent"))
    with pytest.raises(SystemExit) as e:
        mod.get_config()
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "python -m tools.convert_e5" in err[0]


def test_real_config_is_valid(shared_data, e5_dir):
    c = load_real_config().get_config()
    C.validate(c, 1)
    assert c.model.pretrained == e5_dir and c.ablate == "intermediate"
    names = [t.name for t in c.evaluate.tasks]
    assert names == ["udpos", "tatoeba"]
    assert c.target.tasks[0].name == "udpos" and c.target.tasks[0].lang == "en"


def test_real_config_takes_the_english_only_minilm_without_e5s_prefix(shared_data, e5_dir):
    """The difficulty study's English-only stand-in runs the same path: no "query: " for MiniLM."""
    from tools import convert_e5
    mod = load_real_config()
    assert mod.get_config().model.input_prefix == "query: "
    c = mod.get_config(f"pretrained={convert_e5.minilm_dir()}")
    C.validate(c, 1)
    assert c.model.pretrained == convert_e5.minilm_dir() and c.model.input_prefix == ""
    assert mod.get_config("prefix=passage: ").model.input_prefix == "passage: "
