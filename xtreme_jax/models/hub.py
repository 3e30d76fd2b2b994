"""The config.json of the hub encoders the studies name, for offline work: shaping a model for the
TPU compiler (aot.model_config), checking positions and costing a plan (study/validate.py), with
no download. Each entry is the architecture part of the model's config.json on the Hugging Face
hub (hub id -> fields models.hf.config_from_hf reads); a checkpoint directory's own config.json
always wins over this table. The run itself never uses it: it loads the checkpoint.
"""
from __future__ import annotations

_XLMR = dict(model_type="xlm-roberta", vocab_size=250002, max_position_embeddings=514, type_vocab_size=1,
             layer_norm_eps=1e-5, pad_token_id=1, hidden_act="gelu")
_XLMR_XL = dict(_XLMR, model_type="xlm-roberta-xl", vocab_size=250880)
_ROBERTA = dict(_XLMR, model_type="roberta", vocab_size=50265)
_BERT_CASED = dict(model_type="bert", vocab_size=28996, max_position_embeddings=512, type_vocab_size=2,
                   layer_norm_eps=1e-12, pad_token_id=0, hidden_act="gelu")


def _size(layers, hidden, heads, ffn):
    return dict(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads, intermediate_size=ffn)


HUB_CONFIGS = {
    "FacebookAI/xlm-roberta-base": dict(_XLMR, **_size(12, 768, 12, 3072)),
    "FacebookAI/xlm-roberta-large": dict(_XLMR, **_size(24, 1024, 16, 4096)),
    "facebook/xlm-roberta-xl": dict(_XLMR_XL, **_size(36, 2560, 32, 10240)),
    "facebook/xlm-roberta-xxl": dict(_XLMR_XL, **_size(48, 4096, 32, 16384)),
    "FacebookAI/roberta-base": dict(_ROBERTA, **_size(12, 768, 12, 3072)),
    "FacebookAI/roberta-large": dict(_ROBERTA, **_size(24, 1024, 16, 4096)),
    "google-bert/bert-base-cased": dict(_BERT_CASED, **_size(12, 768, 12, 3072)),
    "google-bert/bert-large-cased": dict(_BERT_CASED, **_size(24, 1024, 16, 4096)),
    # a BERT architecture with XLM-R's sentencepiece vocabulary (250002 + 35 added tokens)
    "microsoft/Multilingual-MiniLM-L12-H384": dict(_BERT_CASED, vocab_size=250037, **_size(12, 384, 12, 1536)),
}


def hub_config(name: str) -> dict | None:
    """The table's config.json for a hub id, also found by its short name ("roberta-large")."""
    for known, hf in HUB_CONFIGS.items():
        if name in (known, known.split("/")[-1]):
            return dict(hf, _name_or_path=known)
    return None
