"""Benchmarks over the xtreme_jax library (run from the repository root: python -m benchmarks.bench)."""
