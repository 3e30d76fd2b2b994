"""The five analyses, one module per question. Each takes the collected results and returns
{"estimates": nested dicts of stats estimates, "headline": the question's answer, "lines": Markdown
for report.md, "plots": {file: fn(ax)}}.

Gains are paired by seed: the run with intermediate training minus the run without, same seed
(and, at tiny scale, the same pretrained encoder).
"""
from __future__ import annotations

from xtreme_jax.study import collect
from xtreme_jax.study.analyses.common import at_chance, fmt
from xtreme_jax.study.analyses.difficulty import difficulty
from xtreme_jax.study.analyses.direct import direct
from xtreme_jax.study.analyses.languages import languages_added
from xtreme_jax.study.analyses.model_size import model_size
from xtreme_jax.study.analyses.target_size import target_size

ANALYSES = {"target_size": target_size, "direct": direct, "difficulty": difficulty, "model_size": model_size,
            "languages": languages_added}

__all__ = ["ANALYSES", "at_chance", "fmt", "run"]


def run(col, study) -> dict:
    a = study.analysis
    col = collect.average_over(col, list(a.get("average_over", ()) or ()))
    return ANALYSES[a.kind](col, study)
