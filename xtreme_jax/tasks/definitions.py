"""Imports every task family so that each registers its tasks."""
from xtreme_jax.tasks import classification, mlm, multiple_choice, qa, retrieval, tagging  # noqa: F401
