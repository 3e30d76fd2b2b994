"""Benchmark helpers: length models, and the compile budget of a real bucketed training stream
(few compiled shapes, no recompilation after warm-up) -- issue 6's enforced target."""
import json

import jax
import numpy as np
import pytest

from benchmarks import bench
from xtreme_jax import sharding
from xtreme_jax.data.batching import DEFAULT_BUCKETS, padding_efficiency
from xtreme_jax.models.encoder import preset


def test_length_models_match_the_documented_averages():
    xnli = bench.sample_lengths("xnli", 20000, 128)
    panx = bench.sample_lengths("panx", 20000, 128)
    assert 40 <= xnli.mean() <= 50 and xnli.max() == 128 and xnli.min() >= 6
    assert 17 <= panx.mean() <= 23
    f = bench.synthetic_features("classification", xnli[:2000], 1000, 128)
    eff = padding_efficiency(f, 32)
    # pad-to-128 wastes most of the compute on XNLI-like pairs; packing recovers it
    assert eff["pad_to_max"] < 0.4 and eff["packing"] > 0.9


def test_bucketed_stream_compiles_few_shapes_and_never_recompiles():
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    # max_length 48: buckets (32, 48), two compiled shapes keep the test fast
    out = bench.compile_counts(preset("tiny", num_layers=1), batch_size=8, examples=120, epochs=2,
                               max_length=48, mesh=mesh, phases=("target_classification_buckets",),
                               evaluate=False, mixed=True)
    ph = out["target_classification_buckets"]
    assert ph["steps"] > 2 * len(DEFAULT_BUCKETS)
    assert ph["distinct_input_shapes"] == ph["compiled_shapes"] == 2 <= 6
    assert ph["compilations_after_warmup"] == 0
    assert ph["recompiles_of_seen_shapes"] == 0
    # a phase with two heads (classification + MLM): one program per head and shape, bounded by
    # buckets x heads, none after the warm-up epoch
    mix = out["mixed_mlm_classification"]
    assert mix["compiled_shapes_per_head"] == {"xnli": 2, "mlm": 2}
    assert mix["compiled_shapes"] == mix["distinct_input_shapes"] <= mix["bound_buckets_x_heads"] == 4
    assert mix["compilations_after_warmup"] == mix["recompiles_of_seen_shapes"] == 0
    assert out["total_recompiles_after_warmup"] == 0


def test_interleave_alternates_order():
    calls = []
    res = bench.interleave({"a": lambda: calls.append("a") or 1.0, "b": lambda: calls.append("b") or 2.0}, 3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert res == {"a": [1.0] * 3, "b": [2.0] * 3}
    assert np.isclose(bench.med([3.0, 1.0, 2.0]), 2.0)


def test_torch_batches_follow_each_pytorch_batching_and_quantiles_span_the_lengths():
    lengths = bench.sample_lengths("xnli", 1000, 128, seed=2)
    plans = {m: bench.torch_batches(m, lengths, 16, 128) for m in bench.TORCH_PAD_MODES}
    for mode, batches in plans.items():
        assert sorted(np.concatenate([idx for _, idx in batches]).tolist()) == list(range(1000))  # an epoch
        assert len(batches) == 63 and len(batches[-1][1]) == 1000 - 62 * 16                  # drop_last=False
        for padded, idx in batches:
            assert padded == (128 if mode == "pad_to_max" else lengths[idx].max())
    padded_tokens = {m: sum(p * len(idx) for p, idx in b) for m, b in plans.items()}
    # grouping by length pads far less than random batches, which pad less than max_seq_length
    assert padded_tokens["group_by_length"] < 0.8 * padded_tokens["longest_in_batch"] < 0.8 * 128 * 1000
    picks = [p for p, _ in bench.quantile_batches(plans["group_by_length"], 8)]
    ranked = sorted(p for p, _ in plans["group_by_length"])
    assert picks == [ranked[int((i + 0.5) * 63 / 8)] for i in range(8)] and picks == sorted(picks)


def test_gpu_script_smoke_on_cpu(tmp_path):
    """benchmarks/gpu.py at toy size: the variants (the cuDNN ones fall back to XLA off a GPU),
    PyTorch on the same batch, the profile summary and the JSON a GPU session reads."""
    from benchmarks import gpu
    out = tmp_path / "gpu.json"
    r = gpu.main(["--smoke", "--stages", "large_big,torch,profile,large_small", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["summary"] == r["summary"] and saved["machine"]["cpu_model"]
    g = saved["tiny_b4"]
    for name in ("baseline", "cudnn_dropout"):
        assert g[name]["step_s"] > 0 and 0 < g[name]["mfu"] < 1 and np.isfinite(g[name]["loss"])
    assert saved["torch"]["tiny_b4"]["step_s"] > 0 and saved["torch"]["tiny_b4"]["adamw"] == "fused"
    assert saved["profile"]["kernels"] > 0 and saved["profile"]["top"]
    small = saved["tiny_b2"]   # the row-wise embedding update as a lever at the small batch
    assert small["best_rows"]["step_s"] > 0 and np.isfinite(small["best_rows"]["loss"])
    assert not saved["skipped"]


def test_packing_matched_takes_as_many_examples_per_step_as_the_padded_batch():
    from xtreme_jax.data.input_pipeline import TrainPlan
    lengths = bench.sample_lengths("xnli", 2000, 128, seed=2)
    f = bench.synthetic_features("classification", lengths, 1000, 128)
    g = bench.matched_pack_rows(f, 16, 128)
    per_step = {r: 2000 / TrainPlan(f, r, packing=True, pack_length=128).batches_per_epoch for r in range(1, 17)}
    # ~2.8 XNLI-like pairs per packed row of 128: about 6 rows carry 16 examples
    assert 4 <= g <= 8 and abs(per_step[g] - 16) == min(abs(v - 16) for v in per_step.values())
    with pytest.raises(SystemExit, match="error: unknown choice"):
        bench._csv("buckets,padded", bench.PAD_MODES)


def test_step_bench_times_the_lazy_embedding_update_beside_the_dense_one():
    from benchmarks import bench
    args = bench.parse_args("--what step --size tiny --layers 1 --vocab 2000 --batch 8 --seq 16 --dropout 0 "
                            "--threads 1 --rounds 2 --peak-n 64 --embedding-update rows".split())
    out = bench.bench_step(args)
    for name in ("jax", "jax_rows", "torch", "torch_sparse"):
        assert out[name]["step_s"] > 0
    assert out["torch_sparse"]["adamw"] == "SparseAdam (word embedding) + fused AdamW (the rest)"
    for k in ("rows_speedup_vs_dense", "rows_speedup_vs_torch_sparse", "rows_speedup_vs_torch_dense"):
        assert out[k] > 0
    assert set(bench.summarize({"step": out})) >= {"rows_speedup_vs_dense", "speedup_vs_torch"}
