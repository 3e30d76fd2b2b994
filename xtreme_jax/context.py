"""The run context: what every phase of a run shares, built once from the config and then
read-only (config, mesh, tokenizer, model config, feature cache; the pretrained checkpoint's path
and type). Phases get it as an argument and never call back into the phase runner."""
from __future__ import annotations

import dataclasses
import logging
import os

import jax
import jax.numpy as jnp

from xtreme_jax import config as config_lib
from xtreme_jax import sharding
from xtreme_jax.data.cache import cached_features
from xtreme_jax.data.sources import Source
from xtreme_jax.files import is_remote, local_dir_for
from xtreme_jax.models import encoder as enc_lib
from xtreme_jax.data.tokenization import PrefixedTokenizer, load_tokenizer, resolve, with_prefix
from xtreme_jax.models import hf as hf_lib

log = logging.getLogger(__name__)
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@dataclasses.dataclass(frozen=True)
class RunContext:
    config: object                 # the resolved ml_collections config (locked)
    workdir: str                   # run directory, local or gs://
    mesh: jax.sharding.Mesh
    tokenizer: object              # HF fast tokenizer (with config.model.input_prefix, if set)
    model_cfg: enc_lib.EncoderConfig
    cache_dir: str                 # tokenized-feature cache (always local)
    hf_path: str | None = None     # resolved pretrained checkpoint directory, if any
    hf_type: str | None = None     # its HF model_type (xlm-roberta, roberta, bert)

    def features(self, task, split: str, lang: str, src, max_length: int = 0):
        """Features of one split and language of `task` from the config source `src`, through
        the tokenize-once cache. Their meta carries the model's `first_position_id`: packed
        batches restart position ids there (the model's convention, which the cached,
        model-independent features cannot know: a BERT-layout model may use an XLM-R tokenizer)."""
        f = cached_features(task, split, lang, self.tokenizer, source=source(src),
                            cache_dir=self.cache_dir, max_length=max_length or None,
                            errors=self.config.data.errors, progress=jax.process_index() == 0)
        return dataclasses.replace(f, meta={**f.meta, "first_position_id": self.model_cfg.first_position_id})

    def eval_tokenizer(self, entry):
        """The tokenizer of one evaluate task entry: its own input_prefix if set (None = the
        model's, config.model.input_prefix)."""
        prefix = entry.get("input_prefix")
        if prefix is None or prefix == getattr(self.tokenizer, "input_prefix", ""):
            return self.tokenizer
        base = self.tokenizer.tokenizer if isinstance(self.tokenizer, PrefixedTokenizer) else self.tokenizer
        return with_prefix(base, prefix)


def source(src) -> Source:
    """A config source entry (config.source(...)) as a data Source."""
    return Source(type=src.type, path=src.path, config=src.config, split=src.split)


def build_context(config, workdir: str) -> RunContext:
    """Validates the config (before any compute) and loads the tokenizer and model config."""
    if config.model.dtype not in DTYPES:
        raise config_lib.ConfigError(f"config.model.dtype={config.model.dtype!r}; choose from {list(DTYPES)}")
    config_lib.validate(config, jax.device_count(), jax.process_count())
    hf_path, hf_type = None, None
    drop = encoder_settings(config.model)
    if config.model.pretrained:
        try:  # a hub id while offline, a path that is not a checkpoint: a config error
            hf_path = resolve(config.model.pretrained)
        except OSError as e:
            raise config_lib.ConfigError(f"config.model.pretrained={config.model.pretrained!r}: {e}") from None
        hf = hf_lib.read_config(hf_path)
        hf_type = hf["model_type"]
        model_cfg = hf_lib.config_from_hf(hf).replace(**drop)
    else:
        model_cfg = enc_lib.preset(config.model.size, **drop)
    config_lib.validate_lengths(config, model_cfg)
    tok = config.model.tokenizer or hf_path
    if not tok:
        raise config_lib.ConfigError("config.model.tokenizer is empty: set it to a tokenizer dir or hub id "
                                     "(or set config.model.pretrained)")
    try:
        tokenizer = load_tokenizer(tok)
    except OSError as e:
        field = "tokenizer" if config.model.tokenizer else "pretrained"
        raise config_lib.ConfigError(f"config.model.{field}={tok!r}: {e}") from None
    if not config.model.pretrained:
        # A randomly initialised model is made for this tokenizer: its pad id is the tokenizer's.
        model_cfg = model_cfg.replace(vocab_size=vocab_size(config, model_cfg.vocab_size, len(tokenizer), tok),
                                      pad_token_id=int(tokenizer.pad_token_id))
    elif config.model.vocab_size:
        raise config_lib.ConfigError(
            f"config.model.vocab_size={config.model.vocab_size}: the pretrained checkpoint fixes the "
            f"vocabulary ({model_cfg.vocab_size}); leave it 0")
    if len(tokenizer) > model_cfg.vocab_size:
        raise config_lib.ConfigError(
            f"tokenizer {tok} has {len(tokenizer)} tokens but the model vocab is "
            f"{model_cfg.vocab_size}; use a pretrained checkpoint that matches the tokenizer")
    check_pad_id(tokenizer, model_cfg, tok, hf_path)
    config_lib.validate_retrieval_layers(config, model_cfg)
    tokenizer = with_prefix(tokenizer, config.model.input_prefix)
    return RunContext(config=config, workdir=workdir, mesh=sharding.make_mesh(tuple(config.mesh)),
                      tokenizer=tokenizer, model_cfg=model_cfg, cache_dir=default_cache_dir(config, workdir),
                      hf_path=hf_path, hf_type=hf_type)


# config.model fields copied as they are into the EncoderConfig field of the same name: an
# accelerator lever is a schema field (config.py), its name here, and its use in models/encoder.py.
ENCODER_LEVERS = ("remat", "dropout_bits")


def encoder_settings(m) -> dict:
    """The EncoderConfig fields that config.model sets (besides the architecture)."""
    attention_dropout = m.get("attention_dropout")
    return dict(hidden_dropout=m.dropout, dtype=DTYPES[m.dtype],
                attention_dropout=m.dropout if attention_dropout is None else attention_dropout,
                attention_impl=m.get("attention_impl") or None,
                grad_dtype=None if m.get("grad_dtype", "float32") == "float32" else DTYPES[m.grad_dtype],
                **{k: m[k] for k in ENCODER_LEVERS if k in m})


def check_pad_id(tokenizer, model_cfg, tok: str, hf_path: str | None) -> None:
    """The tokenizer pads with the id the model treats as padding: RoBERTa-style position ids count
    from pad_token_id + 1, and features are padded with the tokenizer's id."""
    if tokenizer.pad_token_id is None:
        raise config_lib.ConfigError(f"tokenizer {tok} has no pad token; use a tokenizer with one "
                                     "(batches are padded with it)")
    if int(tokenizer.pad_token_id) != model_cfg.pad_token_id:
        raise config_lib.ConfigError(
            f"tokenizer {tok} pads with id {tokenizer.pad_token_id} but the model's config.json "
            f"({hf_path}) has pad_token_id={model_cfg.pad_token_id}; use the checkpoint's own tokenizer "
            "(config.model.tokenizer empty) or correct pad_token_id in its config.json")


def vocab_size(config, preset_size: int, tokenizer_size: int, tok: str) -> int:
    """The embedding rows of a randomly initialised model: config.model.vocab_size, or with 0 the
    preset's, grown to fit the tokenizer (rounded up to a multiple of 128, a friendly matmul
    size; rows past the tokenizer are never looked up)."""
    want = config.model.vocab_size
    if want < 0:
        raise config_lib.ConfigError(f"config.model.vocab_size={want} must be 0 (follow the tokenizer) or positive")
    if want and want < tokenizer_size:
        raise config_lib.ConfigError(
            f"config.model.vocab_size={want} is smaller than the {tokenizer_size} tokens of tokenizer {tok}; "
            f"set it to at least {tokenizer_size}, or 0 to follow the tokenizer")
    return want or max(preset_size, -(-tokenizer_size // 128) * 128)


def default_cache_dir(config, workdir: str) -> str:
    """The tokenized-feature cache: config.data.cache_dir, else <workdir>/cache. Features are
    memory-mapped .npy files, which an object store cannot hold: with a remote workdir the default
    is a local directory named after the workdir (each host tokenizes into its own)."""
    if config.data.cache_dir:
        if is_remote(config.data.cache_dir):
            raise config_lib.ConfigError(
                f"config.data.cache_dir={config.data.cache_dir!r}: the feature cache is memory-mapped "
                "and must be a local directory; leave it empty to use a local default")
        return config.data.cache_dir
    if not is_remote(workdir):
        return os.path.join(workdir, "cache")
    local = local_dir_for("features", workdir)
    log.info("workdir %s is remote: caching tokenized features locally in %s "
             "(set config.data.cache_dir to choose another local directory)", workdir, local)
    return local
