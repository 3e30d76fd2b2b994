"""Data: sources, tokenize-once cache, batching/packing and the grain input pipeline.

Public entry points (imported lazily so that `python -m xtreme_jax.data.demo` stays light):

    Source, DataError, OnError                   where data comes from; bad-input errors
    cached_features(task, split, lang, tok, source=..., cache_dir=...)   -> Features
    make_train_iterator(features, global_batch_size=..., seed=..., ...)  -> grain iterator
    make_eval_batches(features | [features...], global_batch_size=...)  -> iterator of dicts
    load_tokenizer(name_or_path)
"""
import importlib

_EXPORTS = {
    "Source": "sources", "as_source": "sources", "DataError": "errors", "OnError": "errors",
    "Features": "features", "concat_features": ("features", "concat"),
    "cached_features": "cache", "PREPROCESSING_VERSION": "cache",
    "make_train_iterator": "input_pipeline", "make_train_dataset": "input_pipeline",
    "make_eval_batches": "input_pipeline", "TrainPlan": "input_pipeline",
    "DEFAULT_BUCKETS": "batching", "padding_efficiency": "batching",
    "load_tokenizer": "tokenization", "tokenizer_fingerprint": "tokenization",
}


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'xtreme_jax.data' has no attribute {name!r}")
    mod, attr = _EXPORTS[name] if isinstance(_EXPORTS[name], tuple) else (_EXPORTS[name], name)
    return getattr(importlib.import_module(f"xtreme_jax.data.{mod}"), attr)


__all__ = sorted(_EXPORTS)
