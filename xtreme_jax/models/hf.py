"""HF checkpoint import/export for XLM-R (XL / XXL included), RoBERTa and BERT (safetensors or
PyTorch .bin).

Import reads tensors with `safetensors.numpy` (no torch); `.bin` needs torch. The mapping is one
table per parameter so a mismatch is reported all at once: missing, unexpected, mis-shaped.
"""
import glob
import json
import os
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# Hub/dir resolution and tokenizers live in the data layer, which never imports models.
from xtreme_jax.data.errors import DataError
from xtreme_jax.data.tokenization import load_tokenizer, resolve  # noqa: F401  (re-exported)
from xtreme_jax.models.encoder import Encoder, EncoderConfig

ROBERTA_TYPES = ("xlm-roberta", "roberta", "camembert")
# XLM-R XL / XXL (transformers' XLMRobertaXLModel): RoBERTa's tensor names and position ids,
# pre-LayerNorm layers (EncoderConfig.pre_layer_norm).
PRE_LN_TYPES = ("xlm-roberta-xl",)
BERT_TYPES = ("bert",)
# Head tensors HF stores per architecture (roberta prefix shown; bert differs where noted).
HEAD_KEYS = {
    "classification": {"roberta": ("classifier.dense", "classifier.out_proj"),
                       "bert": ("{base}.pooler.dense", "classifier")},
    "multiple_choice": {"roberta": ("{base}.pooler.dense", "classifier"),
                        "bert": ("{base}.pooler.dense", "classifier")},
    "tagging": {"roberta": ("classifier",), "bert": ("classifier",)},
    "span": {"roberta": ("qa_outputs",), "bert": ("qa_outputs",)},
}
HF_ARCH = {"classification": "ForSequenceClassification", "multiple_choice": "ForMultipleChoice",
           "tagging": "ForTokenClassification", "span": "ForQuestionAnswering", "mlm": "ForMaskedLM"}


class CheckpointMismatchError(DataError):
    """The weights do not fit the model config.json describes (bad input: exit 2, one line)."""


# ---------------------------------------------------------------- config

def config_from_hf(hf: dict, dtype=jnp.float32) -> EncoderConfig:
    model_type = hf.get("model_type", "")
    if model_type in ROBERTA_TYPES + PRE_LN_TYPES:
        style = "roberta"
    elif model_type in BERT_TYPES:
        style = "bert"
    else:
        raise DataError(f"config.json model_type={model_type!r} is not supported; "
                         f"supported: {ROBERTA_TYPES + PRE_LN_TYPES + BERT_TYPES}")
    act = hf.get("hidden_act", "gelu")
    if act != "gelu":
        raise DataError(f"config.json hidden_act={act!r}: only exact 'gelu' is implemented")
    pos = hf.get("position_embedding_type", "absolute")
    if pos != "absolute":
        raise DataError(f"config.json position_embedding_type={pos!r}: only 'absolute' is implemented")
    # Position ids follow the architecture, not the tokenizer: BERT counts 0..S-1 even with an
    # XLM-R vocabulary (multilingual-e5); RoBERTa/XLM-R start at pad_token_id + 1. pad_token_id
    # is the checkpoint's own (it masks padding when no attention mask is given).
    return EncoderConfig(
        vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"], num_heads=hf["num_attention_heads"],
        intermediate_size=hf["intermediate_size"],
        max_position_embeddings=hf["max_position_embeddings"],
        type_vocab_size=hf.get("type_vocab_size", 2), layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
        pad_token_id=hf.get("pad_token_id", 1 if style == "roberta" else 0), position_style=style,
        hidden_dropout=hf.get("hidden_dropout_prob", 0.1),
        attention_dropout=hf.get("attention_probs_dropout_prob", 0.1),
        initializer_range=hf.get("initializer_range", 0.02), pre_layer_norm=model_type in PRE_LN_TYPES,
        dtype=dtype)


def config_to_hf(cfg: EncoderConfig, model_type: str = "xlm-roberta") -> dict:
    return dict(
        model_type=model_type, vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size, max_position_embeddings=cfg.max_position_embeddings,
        type_vocab_size=cfg.type_vocab_size, layer_norm_eps=cfg.layer_norm_eps,
        pad_token_id=cfg.pad_token_id, hidden_act="gelu", hidden_dropout_prob=cfg.hidden_dropout,
        attention_probs_dropout_prob=cfg.attention_dropout, initializer_range=cfg.initializer_range,
        bos_token_id=0 if cfg.position_style == "roberta" else None,
        eos_token_id=2 if cfg.position_style == "roberta" else None)


# ---------------------------------------------------------------- files

def read_tensors(path: str) -> dict:
    files = sorted(glob.glob(os.path.join(path, "*.safetensors")))
    if files:
        from safetensors.numpy import load_file
        out = {}
        for f in files:
            try:
                out.update(load_file(f))
            except Exception as e:  # noqa: BLE001  safetensors raises its own SafetensorError
                raise DataError(f"cannot read the weights ({type(e).__name__}: {str(e)[:200]}): truncated or "
                                "damaged", file=f, fix="download or export the checkpoint again") from None
        return out
    binf = os.path.join(path, "pytorch_model.bin")
    if os.path.exists(binf):
        try:
            import torch
        except ImportError as e:
            raise ImportError(f"{binf}: reading PyTorch .bin needs torch; install it or convert the "
                              "checkpoint to model.safetensors") from e
        sd = torch.load(binf, map_location="cpu", weights_only=True)
        return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in sd.items()}
    raise FileNotFoundError(f"{path}: no model.safetensors or pytorch_model.bin found")


def read_config(path: str) -> dict:
    f = os.path.join(path, "config.json")
    if not os.path.exists(f):
        raise DataError("not found: an HF checkpoint directory needs config.json", file=f)
    try:
        with open(f, "rb") as fh:
            hf = json.loads(fh.read())
    except (ValueError, OSError) as e:
        raise DataError(f"damaged or truncated ({type(e).__name__}: {e})", file=f,
                        fix="download or export the checkpoint again") from None
    if not isinstance(hf, dict):
        raise DataError("not an HF model config (a JSON object)", file=f,
                        fix="download or export the checkpoint again")
    return hf


# ---------------------------------------------------------------- mapping

def _base_prefix(keys, model_type: str) -> str:
    base = "bert" if model_type in BERT_TYPES else "roberta"
    return base + "." if any(k.startswith(base + ".") for k in keys) else ""


def _norm_aliases(t: dict) -> dict:
    """Old BERT checkpoints name LayerNorm params gamma/beta."""
    return {k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): v
            for k, v in t.items()}


def _dense(hf: str):
    # torch Linear weight is (out, in): transpose to our (in, out) kernel.
    return {"kernel": ([hf + ".weight"], lambda w: w.T), "bias": ([hf + ".bias"], lambda b: b)}


def _norm(hf: str):
    return {"scale": ([hf + ".weight"], lambda w: w), "bias": ([hf + ".bias"], lambda b: b)}


def encoder_table(cfg: EncoderConfig, p: str) -> dict:
    """our nested param path -> (hf keys, fn(*tensors) -> our array)."""
    pre = cfg.pre_layer_norm
    t = {"embeddings": {
        "word": ([p + "embeddings.word_embeddings.weight"], lambda w: w),
        "position": ([p + "embeddings.position_embeddings.weight"], lambda w: w),
        "token_type": ([p + "embeddings.token_type_embeddings.weight"], lambda w: w)}, "layers": {}}
    if pre:  # XLMRobertaXL: no embedding LayerNorm; the encoder's last one
        t["final_norm"] = _norm(p + "encoder.LayerNorm")
    else:
        t["embeddings"]["norm"] = _norm(p + "embeddings.LayerNorm")
    for i in range(cfg.num_layers):
        L = f"{p}encoder.layer.{i}."
        qkv = [L + f"attention.self.{n}" for n in ("query", "key", "value")]
        t["layers"][i] = {
            "qkv_kernel": ([q + ".weight" for q in qkv], lambda *w: np.stack([x.T for x in w], axis=1)),
            "qkv_bias": ([q + ".bias" for q in qkv], lambda *b: np.stack(b)),
            "attn_out": _dense(L + "attention.output.dense"),
            # pre-LN: the LayerNorm before self-attention and the one before the FFN
            "attn_norm": _norm(L + ("attention.self_attn_layer_norm" if pre else "attention.output.LayerNorm")),
            "ffn_in": _dense(L + "intermediate.dense"),
            "ffn_out": _dense(L + "output.dense"),
            "ffn_norm": _norm(L + ("LayerNorm" if pre else "output.LayerNorm")),
        }
    return t


def head_table(kind: str, style: str, p: str) -> dict:
    if kind == "mlm":
        if style == "bert":
            return {"dense": _dense("cls.predictions.transform.dense"),
                    "norm": _norm("cls.predictions.transform.LayerNorm"),
                    "bias": (["cls.predictions.bias"], lambda b: b)}
        return {"dense": _dense("lm_head.dense"), "norm": _norm("lm_head.layer_norm"),
                "bias": (["lm_head.bias"], lambda b: b)}
    names = [n.format(base=p.rstrip(".") or ("bert" if style == "bert" else "roberta"))
             for n in HEAD_KEYS[kind][style]]
    if kind == "span":
        return {"qa_outputs": _dense(names[0])}
    if kind == "tagging":
        return {"classifier": _dense(names[0])}
    return {"dense": _dense(names[0]), "out_proj": _dense(names[1])}


def _flatten(tree, prefix=()):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _flatten(v, prefix + (k,))
        else:
            yield prefix + (k,), v


def _set(tree, path, value):
    for k in path[:-1]:
        tree = tree.setdefault(k, {})
    tree[path[-1]] = value


def _get(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def convert(tensors: dict, table: dict, expected: dict, where: str):
    """Applies `table`; checks shapes against `expected` (nested ShapeDtypeStructs / arrays).

    Returns (nested numpy params, used hf keys). Raises one error listing every problem.
    """
    out, used, missing, misshaped = {}, set(), [], []
    for path, (keys, fn) in _flatten(table):
        absent = [k for k in keys if k not in tensors]
        if absent:
            missing += absent
            continue
        value = np.asarray(fn(*[tensors[k] for k in keys]), dtype=np.float32)
        want = tuple(_get(expected, path).shape)
        if value.shape != want:
            misshaped.append(f"{'+'.join(keys)}: checkpoint {value.shape} -> expected {want}")
            continue
        used.update(keys)
        _set(out, path, value)
    if missing or misshaped:
        raise CheckpointMismatchError(_mismatch_message(where, missing, [], misshaped))
    return out, used


def _mismatch_message(where, missing, unexpected, misshaped):
    """One line: every problem, and what usually causes it."""
    parts = [f"{title} ({len(items)}): " + ", ".join(sorted(items)[:20]) + (" ..." if len(items) > 20 else "")
             for title, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
             if items]
    return (f"{where}: checkpoint does not match the model config ({'; '.join(parts)}). Its config.json and "
            "weights describe different models (an edited config.json, or files of two checkpoints): "
            "use the config.json saved with these weights")


def abstract(make):
    """nnx.eval_shape without a mesh: sharding annotations stay metadata only."""
    with nnx.use_eager_sharding(False):
        return nnx.eval_shape(make)


def _abstract_encoder(cfg):
    return nnx.to_pure_dict(nnx.state(abstract(lambda: Encoder(cfg, rngs=nnx.Rngs(0)))))


def load_checkpoint(path: str, cfg: EncoderConfig, model_type: str, heads: dict | None = None,
                    expected_heads: dict | None = None):
    """Reads an HF dir into nested numpy params: {'encoder': ..., 'heads': {task: ...}}.

    `heads` maps task -> kind for heads to take from the checkpoint where it has them;
    `expected_heads` gives their abstract shapes.
    """
    tensors = _norm_aliases(read_tensors(path))
    p = _base_prefix(tensors, model_type)
    style = "bert" if model_type in BERT_TYPES else "roberta"
    enc, used = convert(tensors, encoder_table(cfg, p), _abstract_encoder(cfg), path)
    # Encoder tensors we did not consume mean a different architecture: report them.
    ignorable = ("position_ids", "pooler.", "lm_head.", "cls.", "classifier.", "qa_outputs.")
    unexpected = [k for k in tensors if k.startswith((p + "embeddings.", p + "encoder."))
                  and k not in used and not any(s in k for s in ignorable)]
    if unexpected:
        raise CheckpointMismatchError(_mismatch_message(path, [], unexpected, []))
    out = {"encoder": enc, "heads": {}}
    for task, kind in (heads or {}).items():
        table = head_table(kind, style, p)
        keys = [k for _, (ks, _) in _flatten(table) for k in ks]
        if all(k in tensors for k in keys):
            out["heads"][task], _ = convert(tensors, table, expected_heads[task], path)
    return out


def from_pretrained(name_or_path: str, *, dtype=jnp.float32) -> Encoder:
    """An `Encoder` from an HF checkpoint dir or hub id (XLM-R incl. XL / XXL, RoBERTa, BERT)."""
    path = resolve(name_or_path)
    hf = read_config(path)
    cfg = config_from_hf(hf, dtype)
    params = load_checkpoint(path, cfg, hf["model_type"])["encoder"]
    graphdef, state = nnx.split(abstract(lambda: Encoder(cfg, rngs=nnx.Rngs(0))))
    nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, params))
    return nnx.merge(graphdef, state)


# ---------------------------------------------------------------- export

def to_hf_tensors(cfg: EncoderConfig, encoder_params: dict, model_type: str,
                  head_kind: str | None = None, head_params: dict | None = None) -> dict:
    """Inverse of the import tables: our nested numpy params -> HF state dict."""
    style = "bert" if model_type in BERT_TYPES else "roberta"
    base = "bert." if style == "bert" else "roberta."
    p = base if head_kind else ""
    out = {}

    def emit(table, params):
        for path, (keys, _) in _flatten(table):
            v = np.asarray(_get(params, path), np.float32)
            if len(keys) == 3:  # fused q/k/v
                parts = [v[:, j].T if v.ndim == 3 else v[j] for j in range(3)]
                out.update({k: np.ascontiguousarray(x) for k, x in zip(keys, parts)})
            else:
                out[keys[0]] = np.ascontiguousarray(v.T if path[-1] == "kernel" else v)

    emit(encoder_table(cfg, p), encoder_params)
    if head_kind:
        emit(head_table(head_kind, style, p), head_params)
        if head_kind == "mlm":
            dec = "cls.predictions.decoder" if style == "bert" else "lm_head.decoder"
            out[dec + ".weight"] = out[p + "embeddings.word_embeddings.weight"].copy()
            out[dec + ".bias"] = out["cls.predictions.bias" if style == "bert" else "lm_head.bias"].copy()
    return out


def export_hf(out_dir: str, cfg: EncoderConfig, encoder_params: dict, *, model_type="xlm-roberta",
              head_kind: str | None = None, head_params: dict | None = None, num_labels: int = 2,
              tokenizer_dir: str | None = None):
    """Writes an HF directory loadable by transformers (PyTorch). Atomic: temp dir, then rename."""
    from safetensors.numpy import save_file
    if cfg.pre_layer_norm:  # a pre-LN encoder exists in transformers only as XLMRobertaXL
        model_type = PRE_LN_TYPES[0]
    tensors = to_hf_tensors(cfg, encoder_params, model_type, head_kind, head_params)
    prefix = {"xlm-roberta": "XLMRoberta", "xlm-roberta-xl": "XLMRobertaXL", "roberta": "Roberta",
              "bert": "Bert"}[model_type]
    hf = config_to_hf(cfg, model_type)
    hf["architectures"] = [prefix + (HF_ARCH[head_kind] if head_kind else "Model")]
    if head_kind in ("classification", "tagging"):
        hf["num_labels"] = num_labels
        hf["id2label"] = {str(i): f"LABEL_{i}" for i in range(num_labels)}
        hf["label2id"] = {f"LABEL_{i}": i for i in range(num_labels)}
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        save_file(tensors, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump({k: v for k, v in hf.items() if v is not None}, f, indent=2)
        if tokenizer_dir:
            for f in os.listdir(tokenizer_dir):
                if f != "config.json" and not f.endswith((".safetensors", ".bin")):
                    shutil.copy2(os.path.join(tokenizer_dir, f), tmp)
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
