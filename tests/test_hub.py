"""The offline table of hub encoders (models/hub.py): each entry builds, through the loader's own
config_from_hf, the architecture transformers builds from the same config.json (parameter counts
equal, the published size), XLM-R's entries give the presets, and the TPU compiler and the study
checks shape every model a study names without a download."""
import pytest
import torch
import transformers
from flax import nnx

from xtreme_jax import aot, config as C
from xtreme_jax.models import encoder as enc_lib
from xtreme_jax.models import hf as hfmod
from xtreme_jax.models.hub import HUB_CONFIGS, hub_config
from xtreme_jax.study.validate import model_shape

ARCH = {"bert": transformers.BertModel, "roberta": transformers.RobertaModel,
        "xlm-roberta": transformers.XLMRobertaModel, "xlm-roberta-xl": transformers.XLMRobertaXLModel}
# Published sizes (model cards / papers), encoder without pooler or LM head; 3% tolerance for
# the rounding in the cards ("355M", "560M").
PUBLISHED = {"FacebookAI/xlm-roberta-base": 278e6, "FacebookAI/xlm-roberta-large": 560e6,
             "FacebookAI/roberta-base": 125e6, "FacebookAI/roberta-large": 355e6,
             "google-bert/bert-base-cased": 108e6, "google-bert/bert-large-cased": 333e6,
             "microsoft/Multilingual-MiniLM-L12-H384": 117e6}


def _count(module):
    return sum(int(x.size) for x in __import__("jax").tree.leaves(nnx.state(module)))


@pytest.mark.parametrize("name", [n for n in HUB_CONFIGS if "xl" not in n.split("-")[-1]])
def test_each_entry_is_the_architecture_transformers_builds(name):
    hf = HUB_CONFIGS[name]
    cfg = hfmod.config_from_hf(hf)
    with torch.device("meta"):  # shapes only, no memory
        pt = ARCH[hf["model_type"]](transformers.AutoConfig.for_model(**hf), add_pooling_layer=False)
    theirs = sum(p.numel() for p in pt.parameters())
    ours = _count(hfmod.abstract(lambda: enc_lib.Encoder(cfg, rngs=nnx.Rngs(0))))
    assert ours == theirs
    assert abs(ours / PUBLISHED[name] - 1) < 0.03


@pytest.mark.parametrize("name,size", [("FacebookAI/xlm-roberta-base", "base"), ("FacebookAI/xlm-roberta-large", "large"),
                                       ("facebook/xlm-roberta-xl", "xl"), ("facebook/xlm-roberta-xxl", "xxl")])
def test_xlmr_entries_are_the_presets(name, size):
    assert hfmod.config_from_hf(HUB_CONFIGS[name]) == enc_lib.preset(size)


def _config(pretrained):
    c = C.base_config()
    c.model.pretrained = pretrained
    return c


def test_the_compiler_shapes_english_encoders_offline():
    bert = aot.model_config(_config("google-bert/bert-large-cased"))
    assert (bert.vocab_size, bert.type_vocab_size, bert.position_style, bert.pad_token_id,
            bert.max_position_embeddings, bert.num_layers, bert.hidden_size) == (28996, 2, "bert", 0, 512, 24, 1024)
    roberta = aot.model_config(_config("roberta-large"))  # the short name finds it too
    assert (roberta.vocab_size, roberta.position_style, roberta.pad_token_id, roberta.max_position_embeddings,
            roberta.layer_norm_eps) == (50265, "roberta", 1, 514, 1e-5)
    assert model_shape({"model": {"pretrained": "roberta-large"}})["name"] == "FacebookAI/roberta-large"
    assert hub_config("gpt2") is None
    with pytest.raises(aot.CompileError, match=r"^config.model.pretrained='org/unknown': not a local HF directory "
                                               r"nor a hub id of xtreme_jax/models/hub.py; point it at a directory "
                                               r"holding config.json$"):
        aot.model_config(_config("org/unknown"))
