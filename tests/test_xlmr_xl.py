"""XLM-R XL / XXL: the pre-LayerNorm encoder against transformers' XLMRobertaXL (PyTorch), its
checkpoints through the one loader, the xl / xxl presets' sizes, and the recipes that name them."""
import importlib.util
import json
import math
import os

import numpy as np
import pytest
import torch
import transformers

import jax
import jax.numpy as jnp
from flax import nnx

from xtreme_jax import aot, config as C, optim, sharding, train_step
from xtreme_jax.data.errors import DataError
from xtreme_jax.models import encoder as enc_lib, export_hf, from_pretrained, hf as hfmod
from xtreme_jax.models.heads import TaskModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
# The hub config.json of facebook/xlm-roberta-xl and facebook/xlm-roberta-xxl (the fields that differ
# from XLMRobertaXLConfig's defaults of 514 positions, type_vocab_size 1, eps 1e-5, pad 1).
HUB = {"xl": dict(vocab_size=250880, hidden_size=2560, num_hidden_layers=36, num_attention_heads=32,
                  intermediate_size=10240),
       "xxl": dict(vocab_size=250880, hidden_size=4096, num_hidden_layers=48, num_attention_heads=32,
                   intermediate_size=16384)}


def perturbed(model, seed):
    """Every parameter moved off its init (HF starts biases at 0 and LayerNorms at 1, which would
    hide a bias or LayerNorm loaded into the wrong place)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return model.eval()


def padded_batch(pad_id=1, lengths=(11, 4, 7)):
    rng = np.random.default_rng(0)
    ids = np.full((len(lengths), max(lengths)), pad_id, np.int64)
    mask = np.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(3, 99, n)
        mask[i, :n] = 1
    return ids, mask


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    torch.manual_seed(0)
    pt = perturbed(transformers.XLMRobertaXLForMaskedLM(transformers.XLMRobertaXLConfig(**TINY)), 1)
    path = tmp_path_factory.mktemp("xlmr_xl")
    pt.save_pretrained(path)
    return pt, path


def _valid(mask):
    return mask.astype(bool)[..., None]


def test_config_json_gives_a_pre_layer_norm_encoder(mlm_dir):
    _, path = mlm_dir
    hf = hfmod.read_config(str(path))
    assert hf["model_type"] == "xlm-roberta-xl"
    cfg = hfmod.config_from_hf(hf)
    assert cfg.pre_layer_norm and cfg.position_style == "roberta" and cfg.num_layers == 2
    assert not hfmod.config_from_hf({**hf, "model_type": "xlm-roberta"}).pre_layer_norm


def test_every_hidden_state_matches_pytorch_on_a_padded_batch(mlm_dir):
    pt, path = mlm_dir
    ids, mask = padded_batch()
    with torch.no_grad():
        ref = pt.roberta(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), output_hidden_states=True)
    enc = from_pretrained(str(path))
    out = enc(jnp.asarray(ids, jnp.int32), jnp.asarray(mask, jnp.int32), output_hidden_states=True)
    assert len(out.hidden_states) == len(ref.hidden_states) == 3  # embeddings + 2 layers
    for ours, theirs in zip(out.hidden_states, ref.hidden_states):
        np.testing.assert_allclose(np.where(_valid(mask), ours, 0), np.where(_valid(mask), theirs.numpy(), 0),
                                   atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.where(_valid(mask), out.last_hidden_state, 0),
                               np.where(_valid(mask), ref.last_hidden_state.numpy(), 0), atol=1e-5, rtol=1e-5)


def _task_model(path, kind, n, cfg=None):
    hf = hfmod.read_config(str(path))
    cfg = cfg or hfmod.config_from_hf(hf)
    graphdef, state = nnx.split(hfmod.abstract(lambda: TaskModel(cfg, {"t": (kind, n)}, rngs=nnx.Rngs(0))))
    loaded = hfmod.load_checkpoint(str(path), cfg, hf["model_type"], {"t": kind},
                                   {"t": nnx.to_pure_dict(state)["heads"]["t"]})
    assert "t" in loaded["heads"], "the checkpoint's head should load"
    nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, loaded))
    return cfg, nnx.merge(graphdef, state)


def test_mlm_logits_match_pytorch(mlm_dir):
    pt, path = mlm_dir
    ids, mask = padded_batch()
    with torch.no_grad():
        ref = pt(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    _, model = _task_model(path, "mlm", 0)
    ours = np.asarray(model.logits("t", dict(input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask))))
    assert ours.shape == ref.shape == ids.shape + (99,)
    np.testing.assert_allclose(np.where(_valid(mask), ours, 0), np.where(_valid(mask), ref, 0), atol=1e-5, rtol=1e-5)


def test_post_layer_norm_with_the_same_weights_differs(mlm_dir):
    pt, path = mlm_dir
    ids, mask = padded_batch()
    with torch.no_grad():
        ref = pt.roberta(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state.numpy()
    pre = from_pretrained(str(path))
    weights = nnx.to_pure_dict(nnx.state(pre))
    post_cfg = pre.cfg.replace(pre_layer_norm=False)
    graphdef, state = nnx.split(hfmod.abstract(lambda: enc_lib.Encoder(post_cfg, rngs=nnx.Rngs(0))))
    # the same layers; post-LN's embedding LayerNorm as the identity; no final LayerNorm
    post_weights = {k: v for k, v in weights.items() if k != "final_norm"}
    post_weights["embeddings"] = {**weights["embeddings"], "norm": {"scale": jnp.ones(32), "bias": jnp.zeros(32)}}
    nnx.replace_by_pure_dict(state, post_weights)
    out = nnx.merge(graphdef, state)(jnp.asarray(ids), jnp.asarray(mask)).last_hidden_state
    diff = np.abs(np.where(_valid(mask), np.asarray(out) - ref, 0)).max()
    assert diff > 0.1, f"post-LN gave HF's pre-LN output (max diff {diff})"


def test_classifier_loads_and_exports_back_to_pytorch(tmp_path):
    torch.manual_seed(3)
    cls = transformers.XLMRobertaXLForSequenceClassification
    pt = perturbed(cls(transformers.XLMRobertaXLConfig(**TINY, num_labels=3)), 4)
    pt.save_pretrained(tmp_path / "in")
    ids, mask = padded_batch()
    with torch.no_grad():
        ref = pt(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    cfg, model = _task_model(tmp_path / "in", "classification", 3)
    batch = dict(input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask))
    np.testing.assert_allclose(np.asarray(model.logits("t", batch)), ref, atol=1e-5, rtol=1e-5)
    # a run hands export "xlm-roberta" when it had no checkpoint type; a pre-LN encoder is XL
    pure = nnx.to_pure_dict(nnx.state(model))
    out = export_hf(str(tmp_path / "out"), cfg, pure["encoder"], model_type="xlm-roberta",
                    head_kind="classification", head_params=pure["heads"]["t"], num_labels=3)
    hf = json.load(open(os.path.join(out, "config.json")))
    assert hf["model_type"] == "xlm-roberta-xl" and hf["architectures"] == ["XLMRobertaXLForSequenceClassification"]
    back = cls.from_pretrained(out).eval()
    with torch.no_grad():
        again = back(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    np.testing.assert_allclose(again, ref, atol=1e-5, rtol=1e-5)


def test_unknown_model_type_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({**TINY, "model_type": "gpt2"}))
    with pytest.raises(DataError) as e:
        from_pretrained(str(tmp_path))
    msg = str(e.value)
    assert msg.startswith("config.json model_type='gpt2' is not supported; supported: (") and "\n" not in msg
    assert "'xlm-roberta-xl'" in msg


def _count(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("name,paper", [("xl", 3.5e9), ("xxl", 10.7e9)])
def test_presets_are_the_hub_models(name, paper):
    hf_cfg = transformers.XLMRobertaXLConfig(**HUB[name])
    # the hub config.json read by the loader gives exactly the preset
    assert hfmod.config_from_hf(hf_cfg.to_dict()) == enc_lib.preset(name)
    with torch.device("meta"):  # no memory: parameter shapes only
        pt = transformers.XLMRobertaXLModel(hf_cfg, add_pooling_layer=False)
    theirs = sum(p.numel() for p in pt.parameters())
    ours = _count(nnx.state(hfmod.abstract(lambda: enc_lib.Encoder(enc_lib.preset(name), rngs=nnx.Rngs(0)))))
    assert ours == theirs
    assert abs(ours / paper - 1) < 0.01  # Goyal et al. 2021: 3.5B and 10.7B parameters


def _stilts():
    spec = importlib.util.spec_from_file_location("stilts", os.path.join(REPO, "configs", "stilts.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("model,hub", [("xl", "facebook/xlm-roberta-xl"), ("xxl", "facebook/xlm-roberta-xxl")])
def test_run_config_validation_accepts_xl(model, hub):
    c = _stilts().get_config(f"intermediate=mnli,target=pawsx,model={model}")
    C.validate(c, num_devices=8)
    assert (c.model.pretrained, c.model.size, c.model.remat, tuple(c.mesh)) == (hub, model, True, (1, -1, 1))
    # the TPU compile's model config for the hub id, without its weights: the preset
    assert aot.model_config(c) == enc_lib.preset(model, hidden_dropout=0.1, attention_dropout=0.1,
                                                 dtype=jnp.bfloat16, remat=True)


def test_model_size_study_names_the_xl_recipes():
    spec = importlib.util.spec_from_file_location("model_size", os.path.join(REPO, "configs", "studies",
                                                                             "model_size.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sizes = mod.get_config("scale=full").factors.size
    assert sizes["xl"].startswith("model=xl,") and sizes["xxl"].startswith("model=xxl,")
    assert "pretrained" not in sizes["xl"] + sizes["xxl"]


def _value_and_grad(model, mesh=None):
    """Mean square of the last hidden states and its gradient, jitted (on `mesh`: parameters
    split by their logical axes, activations over the batch)."""
    ids, mask = padded_batch(lengths=(11, 4, 7, 9, 2, 11, 5, 8))
    batch = dict(input_ids=ids.astype(np.int32), attention_mask=mask.astype(np.int32))

    def loss(m, b):
        h = m.encoder(b["input_ids"], b["attention_mask"]).last_hidden_state
        return jnp.mean(jnp.square(h) * b["attention_mask"][..., None])
    if mesh is None:
        value, grads = nnx.jit(nnx.value_and_grad(loss))(model, batch)
    else:
        with jax.set_mesh(mesh):
            value, grads = nnx.jit(nnx.value_and_grad(loss))(model, sharding.device_batch(batch, mesh))
    return float(value), jax.tree.map(np.asarray, nnx.to_pure_dict(grads))


def test_pre_ln_gradients_alike_on_a_sharded_mesh_with_remat():
    cfg = enc_lib.preset("tiny", vocab_size=99, num_layers=2, pre_layer_norm=True)
    # random weights (no init: eager init costs seconds), unsharded
    graphdef, state = nnx.split(hfmod.abstract(lambda: TaskModel(cfg, {}, rngs=nnx.Rngs(0))))
    rng = np.random.default_rng(0)
    weights = jax.tree.map(lambda a: rng.normal(0, 0.3, a.shape).astype(np.float32), nnx.to_pure_dict(state))
    nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, weights))
    ref, ref_grads = _value_and_grad(nnx.merge(graphdef, state))
    # the same weights, placed on a (data, fsdp, tensor) = (2, 2, 2) mesh by their logical axes
    mesh = sharding.make_mesh((2, 2, 2))
    graphdef, abstract = train_step.create_model(cfg.replace(remat=True), {}, mesh, abstract_only=True)
    nnx.replace_by_pure_dict(abstract, jax.tree.map(lambda v, a: jax.device_put(v, a.sharding), weights,
                                                    nnx.to_pure_dict(abstract)))
    model = nnx.merge(graphdef, abstract)
    value, grads = _value_and_grad(model, mesh)
    assert value == pytest.approx(ref, rel=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-4), grads, ref_grads)
    assert np.abs(grads["encoder"]["final_norm"]["scale"]).max() > 0  # the final LayerNorm is trained
    # its parameters replicated (logical axis "norm"); the layers' split over fsdp / tensor
    assert model.encoder.final_norm.scale[...].sharding.is_fully_replicated
    ffn = model.encoder.layers[0].ffn_in.kernel[...]
    assert ffn.sharding.shard_shape(ffn.shape) == (32, 64)
    # layer-wise lr decay: the final LayerNorm sits above the last layer
    params = nnx.to_pure_dict(nnx.state(hfmod.abstract(lambda: enc_lib.Encoder(cfg, rngs=nnx.Rngs(0)))))
    scales = optim.layer_scales({"encoder": params}, num_layers=2, decay=0.5)["encoder"]
    assert scales["final_norm"] == {"scale": 1.0, "bias": 1.0} and scales["layers"][1]["ffn_norm"]["scale"] == 0.5


def test_xl_state_is_split_evenly_over_fsdp():
    mesh = sharding.make_mesh((1, 8, 1))
    tx, _ = optim.make_optimizer(lr=1e-5, total_steps=100)
    _, state, _ = train_step.create_state(enc_lib.preset("xl"), {"cls": ("classification", 2)}, tx, mesh,
                                          abstract_only=True)
    leaves = jax.tree.leaves(state["model"])
    total = sum(math.prod(x.shape) * x.dtype.itemsize for x in leaves)
    per_device = sum(math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize for x in leaves)
    assert total > 13.9e9  # ~3.48B fp32 parameters
    assert abs(per_device - total / 8) / (total / 8) < 0.05, (per_device, total / 8)


@pytest.mark.slow
def test_a_run_fine_tunes_an_xl_checkpoint_and_exports_it(smoke, tmp_path):
    """The run's own path: build_context reads the XL config.json, the target phase trains from
    its weights (pre-LN), evaluates, and exports an XLMRobertaXL directory transformers loads."""
    from xtreme_jax.context import build_context
    from xtreme_jax.data.tokenization import load_tokenizer
    from xtreme_jax.phases import run_pipeline
    tok = load_tokenizer(str(smoke / "tok"))
    torch.manual_seed(5)
    conf = transformers.XLMRobertaXLConfig(**{**TINY, "vocab_size": len(tok), "max_position_embeddings": 130},
                                           pad_token_id=tok.pad_token_id)
    perturbed(transformers.XLMRobertaXLForMaskedLM(conf), 6).save_pretrained(tmp_path / "xl")
    c = C.base_config()
    c.model.pretrained, c.model.tokenizer = str(tmp_path / "xl"), str(smoke / "tok")
    c.data.buckets, c.data.cache_dir, c.phases = (32,), str(smoke / "cache"), "target,evaluate"
    src = C.source("official", str(smoke / "xnli"))
    c.target = C.train_phase([C.task_entry("xnli", src=src)], num_steps=2, batch_size=8, lr=1e-3, eval_every=0,
                             save_every=2, log_every=1, export_hf=True)
    c.evaluate.tasks, c.evaluate.batch_size = [C.eval_task("xnli", src, languages="en")], 8
    c.evaluate.write_submission = False
    ctx = build_context(c, str(tmp_path / "run"))
    assert ctx.hf_type == "xlm-roberta-xl" and ctx.model_cfg.pre_layer_norm
    out = run_pipeline(c, str(tmp_path / "run"))
    assert "xnli" in out["evaluate"]["results"]
    hf_dir = tmp_path / "run" / "target" / "hf"
    assert json.loads((hf_dir / "config.json").read_text())["model_type"] == "xlm-roberta-xl"
    back, info = transformers.XLMRobertaXLForSequenceClassification.from_pretrained(
        str(hf_dir), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    trained = back.roberta.encoder.LayerNorm.weight.detach().numpy()
    assert np.abs(trained - np.asarray(hfmod.read_tensors(str(tmp_path / "xl"))["roberta.encoder.LayerNorm.weight"])).max() > 0
