"""The encoder against HF transformers' PyTorch implementation (the numerical oracle)."""
import numpy as np
import pytest
import torch
import transformers

import jax
import jax.numpy as jnp
from flax import nnx

from xtreme_jax.models import CheckpointMismatchError, export_hf, from_pretrained, hf as hfmod
from xtreme_jax.models.heads import TaskModel

SMALL = dict(vocab_size=99, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
             intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def xlmr_config(**kw):
    # Real xlm-roberta values (HF's class defaults differ): type_vocab_size 1, eps 1e-5.
    return transformers.XLMRobertaConfig(**SMALL, max_position_embeddings=40, type_vocab_size=1,
                                         layer_norm_eps=1e-5, pad_token_id=1, **kw)


def bert_config(**kw):
    return transformers.BertConfig(**SMALL, max_position_embeddings=40, type_vocab_size=2, **kw)


def ragged_batch(pad_id, seed=0, lengths=(17, 9, 3, 12)):
    rng = np.random.default_rng(seed)
    s = max(lengths)
    ids = np.full((len(lengths), s), pad_id, np.int64)
    mask = np.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(3, 99, n)
        mask[i, :n] = 1
    return ids, mask


def save(model, path):
    torch.manual_seed(0)
    model.eval()
    model.save_pretrained(path)
    return model


def torch_states(model, ids, mask, **kw):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                    output_hidden_states=True, **kw)
    return out


def max_err_all_layers(ours, theirs, mask):
    valid = mask.astype(bool)[..., None]
    return max(float(np.abs(np.where(valid, np.asarray(a) - b.numpy(), 0)).max())
               for a, b in zip(ours, theirs))


@pytest.fixture(scope="module")
def xlmr_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("xlmr")
    return save(transformers.XLMRobertaModel(xlmr_config()), path), path


@pytest.mark.parametrize("kind", ["xlmr", "bert"])
def test_every_layer_matches_pytorch(kind, tmp_path, xlmr_dir):
    if kind == "xlmr":
        pt, path = xlmr_dir
        pad = 1
    else:
        torch.manual_seed(1)
        pt, path = save(transformers.BertModel(bert_config()), tmp_path), tmp_path
        pad = 0
    ids, mask = ragged_batch(pad)
    tt = np.zeros_like(ids)
    if kind == "bert":  # BERT pairs use token type 1 for the second segment
        tt[:, 5:] = 1
        tt *= mask
    ref = torch_states(pt, ids, mask, token_type_ids=torch.tensor(tt))
    enc = from_pretrained(str(path))
    out = enc(jnp.asarray(ids, jnp.int32), jnp.asarray(mask, jnp.int32),
              token_type_ids=jnp.asarray(tt, jnp.int32), output_hidden_states=True)
    assert len(out.hidden_states) == 4  # embeddings + 3 layers, index 0 = embeddings (HF)
    err = max_err_all_layers(out.hidden_states, ref.hidden_states, mask)
    print(f"{kind} max abs error over all layers: {err:.2e}")
    assert err < 1e-4
    np.testing.assert_allclose(out.last_hidden_state, ref.last_hidden_state.numpy(), atol=1e-4)


def test_pytorch_bin_checkpoint(tmp_path, xlmr_dir):
    pt, _ = xlmr_dir
    pt.config.save_pretrained(tmp_path)
    torch.save(pt.state_dict(), tmp_path / "pytorch_model.bin")
    ids, mask = ragged_batch(1)
    ours = from_pretrained(str(tmp_path))(jnp.asarray(ids), jnp.asarray(mask)).last_hidden_state
    np.testing.assert_allclose(ours, torch_states(pt, ids, mask).last_hidden_state.numpy(), atol=1e-4)


def _task_model_with_hf_head(path, kind, n):
    hf = hfmod.read_config(str(path))
    cfg = hfmod.config_from_hf(hf)
    graphdef, state = nnx.split(hfmod.abstract(lambda: TaskModel(cfg, {"t": (kind, n)}, rngs=nnx.Rngs(0))))
    pure = nnx.to_pure_dict(state)
    loaded = hfmod.load_checkpoint(str(path), cfg, hf["model_type"], {"t": kind}, {"t": pure["heads"]["t"]})
    assert "t" in loaded["heads"], "head tensors should load"
    pure = {"encoder": loaded["encoder"], "heads": loaded["heads"]}
    nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, pure))
    return cfg, nnx.merge(graphdef, state)


@pytest.mark.parametrize("cls,kind,n", [
    (transformers.XLMRobertaForSequenceClassification, "classification", 3),
    (transformers.XLMRobertaForTokenClassification, "tagging", 5),
    (transformers.XLMRobertaForQuestionAnswering, "span", 2),
    (transformers.BertForSequenceClassification, "classification", 3),
])
def test_heads_load_and_export_roundtrip(cls, kind, n, tmp_path):
    torch.manual_seed(2)
    is_bert = cls.__name__.startswith("Bert")
    conf = bert_config(num_labels=n) if is_bert else xlmr_config(num_labels=n)
    pt = save(cls(conf), tmp_path / "in")
    ids, mask = ragged_batch(0 if is_bert else 1)
    with torch.no_grad():
        ref = pt(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
    ref = (torch.stack([ref.start_logits, ref.end_logits], -1) if kind == "span" else ref.logits).numpy()
    cfg, model = _task_model_with_hf_head(tmp_path / "in", kind, n)
    batch = dict(input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask))
    ours = np.asarray(model.logits("t", batch))
    valid = mask.astype(bool)[..., None] if kind != "classification" else True
    np.testing.assert_allclose(np.where(valid, ours, 0), np.where(valid, ref, 0), atol=1e-4)

    # export -> transformers loads it in PyTorch -> same outputs
    pure = nnx.to_pure_dict(nnx.state(model))
    out = export_hf(str(tmp_path / "out"), cfg, pure["encoder"], model_type="bert" if is_bert else "xlm-roberta",
                    head_kind=kind, head_params=pure["heads"]["t"], num_labels=n)
    back = cls.from_pretrained(out).eval()
    with torch.no_grad():
        again = back(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
    again = (torch.stack([again.start_logits, again.end_logits], -1) if kind == "span" else again.logits).numpy()
    np.testing.assert_allclose(np.where(valid, again, 0), np.where(valid, ref, 0), atol=1e-5)


def test_encoder_export_loads_in_pytorch(tmp_path, xlmr_dir):
    pt, path = xlmr_dir
    enc = from_pretrained(str(path))
    export_hf(str(tmp_path / "exp"), enc.cfg, nnx.to_pure_dict(nnx.state(enc)))
    back = transformers.XLMRobertaModel.from_pretrained(str(tmp_path / "exp")).eval()
    ids, mask = ragged_batch(1)
    np.testing.assert_allclose(torch_states(back, ids, mask).last_hidden_state.numpy(),
                               torch_states(pt, ids, mask).last_hidden_state.numpy(), atol=1e-5)


def test_mismatch_lists_missing_unexpected_misshaped(tmp_path, xlmr_dir):
    from safetensors.numpy import load_file, save_file
    _, path = xlmr_dir
    tensors = load_file(str(path / "model.safetensors"))
    del tensors["encoder.layer.1.intermediate.dense.weight"]
    tensors["encoder.layer.0.output.dense.weight"] = tensors["encoder.layer.0.output.dense.weight"][:, :10]
    (tmp_path / "config.json").write_text((path / "config.json").read_text())
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointMismatchError) as e:
        from_pretrained(str(tmp_path))
    msg = str(e.value)
    assert "missing (1): encoder.layer.1.intermediate.dense.weight" in msg
    assert "mis-shaped (1): encoder.layer.0.output.dense.weight: checkpoint (10, 32) -> expected (64, 32)" in msg
    # an extra layer in the checkpoint is unexpected
    tensors = load_file(str(path / "model.safetensors"))
    tensors["encoder.layer.7.output.dense.weight"] = tensors["encoder.layer.0.output.dense.weight"]
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointMismatchError, match=r"unexpected \(1\): encoder.layer.7.output.dense.weight"):
        from_pretrained(str(tmp_path))


def test_hub_id_offline_says_how_to_fix():
    with pytest.raises(OSError, match="pass the directory instead"):
        from_pretrained("FacebookAI/xlm-roberta-base")
