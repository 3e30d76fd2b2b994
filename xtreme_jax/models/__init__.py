"""Flax NNX encoders (XLM-R / RoBERTa / BERT), task heads, HF import/export."""
from xtreme_jax.models.encoder import Encoder, EncoderConfig, EncoderOutput, preset  # noqa: F401
from xtreme_jax.models.heads import HEADS, TaskModel  # noqa: F401
from xtreme_jax.models.hf import (CheckpointMismatchError, export_hf, from_pretrained,  # noqa: F401
                                  load_tokenizer)
