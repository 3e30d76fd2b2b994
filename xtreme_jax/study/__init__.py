"""Study layer: a research question as a config, expanded into validated and costed points, run as
a graph that shares work, and reported with confidence intervals and fits.

    python -m xtreme_jax.study plan|run|status|report --config=configs/studies/NAME.py[:scale=tiny] --workdir=DIR

Modules: stats, fits (pure numerics); spec (study config schema), expand, validate, cost (plan);
graph, executors (run); collect, analyses, report (report); cli (the command). See docs/studies.md.
"""
