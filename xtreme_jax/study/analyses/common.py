"""What the five analyses share: tables of scores out of the collected rows, estimate formatting
and error-bar plots.

Scores are the primary metric (percent), averaged over a point's tasks and over a set of
languages: `zero-shot` = every evaluation language except English; `seen` / `unseen` = those the
point's task training did / did not include (translated data, translate-train); or a given list of
languages (a script group, `script_groups`).
"""
from __future__ import annotations

import math

import numpy as np

from xtreme_jax.study import stats


def cell_scores(col, which: str | list = "zero-shot") -> dict:
    """{(labels tuple, seed): score} averaged over tasks and the chosen languages."""
    per = {}
    for r in col.rows:
        if not r["primary"] or math.isnan(r["value"]):
            continue
        lang, seen = r["language"], r["seen"]
        if isinstance(which, (list, tuple, set, frozenset)):   # a group of languages (a script's)
            keep = lang in which
        else:
            keep = {"zero-shot": lang != "en", "en": lang == "en", "all": True, "seen": seen and lang != "en",
                    "unseen": not seen}.get(which, lang == which)
        if keep:
            key = (tuple((f, r[f]) for f in col.factors), r["seed"])
            per.setdefault(key, {}).setdefault(r["task"], []).append(r["value"])
    return {k: float(np.mean([np.mean(v) for v in tasks.values()])) for k, tasks in per.items()}


def languages(col, which="zero-shot") -> list[str]:
    langs = sorted({r["language"] for r in col.rows})
    return [l for l in langs if l != "en"] if which == "zero-shot" else langs


SCRIPT_CAVEAT = ("What this does not show: an effect of the script itself. Script is confounded with language "
                 "family, with each language's share of the pretraining data and the tokenizer's coverage of it "
                 "(and, in the demo world, with sharing English's function words); the intervals are over seeds "
                 "with the languages of each group fixed, so a group of one or two languages stands for those "
                 "languages only.")


def script_groups(langs: list[str]) -> tuple[dict, str]:
    """Zero-shot languages (English left out) grouped by ISO 15924 script (tasks/languages.py SCRIPT):
    "Latin", "non-Latin", then each non-Latin script with >= 2 of the languages (when it is not the
    whole non-Latin group). ({}, why) when they are written in fewer than two scripts: no split. The
    note names languages with no known script, which no group holds."""
    from xtreme_jax.tasks.languages import script_of
    by, unknown = {}, []
    for l in sorted(set(langs) - {"en"}):
        if script_of(l):
            by.setdefault(script_of(l), []).append(l)
        else:
            unknown.append(l)
    note = (f" No script known for {', '.join(unknown)} (add it to tasks/languages.py SCRIPT): left out."
            if unknown else "")
    if len(by) < 2:
        return {}, (f"All zero-shot languages ({', '.join(sum(by.values(), [])) or 'none'}) are written in "
                    f"{' '.join(by) or 'no known script'}: no split by script.{note}")
    non_latin = sorted(l for s, ls in by.items() if s != "Latn" for l in ls)
    groups = {"Latin": by.get("Latn", []), "non-Latin": non_latin}
    groups.update({s: ls for s, ls in sorted(by.items()) if s != "Latn" and len(ls) >= 2 and ls != non_latin})
    return {k: v for k, v in groups.items() if v}, note.strip()


def script_split(col, title: str) -> tuple[dict, dict, list]:
    """What an analysis needs to split its zero-shot scores by script: {group: cell_scores over the
    group's languages}, the record for analysis.json (groups, no_split: why there is none, note) and
    the section's opening Markdown lines (the groups, or why there is no split)."""
    groups, note = script_groups(languages(col))
    record = {"groups": groups, "no_split": None if groups else note, "note": (note or None) if groups else None}
    lines = ["", f"### {title} by writing script", ""]
    if not groups:
        return {}, record, lines + [note, ""]
    lines.append("Zero-shot languages by ISO 15924 script (CLDR likely subtags, tasks/languages.py): " +
                 "; ".join(f"{g}: {', '.join(ls)}" for g, ls in groups.items()) + "." + (f" {note}" if note else ""))
    return {g: cell_scores(col, ls) for g, ls in groups.items()}, record, lines


def matrix(scores: dict, col, fixed: dict, vary: str, levels: list, seeds: list) -> np.ndarray:
    """seeds x levels of `vary`, the other factors as in `fixed` (NaN where missing)."""
    out = np.full((len(seeds), len(levels)), np.nan)
    for (labels, seed), v in scores.items():
        lab = dict(labels)
        if seed in seeds and lab.get(vary) in levels and all(lab.get(k) == x for k, x in fixed.items()):
            out[seeds.index(seed), levels.index(lab[vary])] = v
    return out


def seeds_of(col) -> list:
    return sorted({r["seed"] for r in col.rows})


def levels_of(col, factor) -> list:
    return list(dict.fromkeys(r[factor] for r in col.rows))


def fmt(e: dict, digits: int = 2) -> str:
    v, (lo, hi) = e.get("value"), e.get("ci95", [None, None])
    if v is None and e.get("defined") is not None:  # e.g. no knee in a straight curve
        return f"none (defined in {100 * e['defined']:.0f}% of leave-one-unit-out fits)"
    if v is None:
        return "–"
    ci = f" [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None and hi is not None else " [no CI: n < 2]"
    return f"{v:.{digits}f}{ci}"


def size_of(label: str, full: int) -> float:
    n = int(label)
    return float(full if n == 0 else n)


def errorbars(ax, x, est_list, **kw):
    v = np.array([e["value"] if e["value"] is not None else np.nan for e in est_list], float)
    lo = np.array([e["ci95"][0] if e["ci95"][0] is not None else np.nan for e in est_list], float)
    hi = np.array([e["ci95"][1] if e["ci95"][1] is not None else np.nan for e in est_list], float)
    ax.errorbar(x, v, yerr=[np.nan_to_num(v - lo), np.nan_to_num(hi - v)], capsize=3, marker="o", **kw)


def paired_examples(col, pts_a: list, pts_b: list, langs: list) -> dict | None:
    """Gain over seeds and test items where both arms wrote predictions for every seed: one
    (seeds, items) array per (task, language), items clustered across languages (stats.two_level_gain)."""
    a, b = [], []
    for t, l in langs:
        ra = [col.correct.get((p, t, l)) for p in pts_a]
        rb = [col.correct.get((p, t, l)) for p in pts_b]
        if not ra or any(x is None for x in ra + rb) or len({len(x) for x in ra + rb}) != 1:
            return None
        a.append(np.array(ra, float))
        b.append(np.array(rb, float))
    return stats.two_level_gain(a, b) if a else None


def significance(e: dict) -> str:
    """' *' when the estimate's Holm-adjusted p is below 0.05 (its family named in analysis.json)."""
    q = e.get("p_holm")
    return " *" if q is not None and q < 0.05 else ""


def point_of(col) -> dict:
    return {(tuple((f, r[f]) for f in col.factors), r["seed"]): r["point"] for r in col.rows}


def key_of(col, labels: dict) -> tuple:
    return tuple((f, labels[f]) for f in col.factors)


def chance(task_name: str, heads: dict) -> float:
    """The dev score of guessing on the task (tasks/kinds.py); labels from the task or its head."""
    from xtreme_jax.tasks import get_task
    t = get_task(task_name)
    return t.family.chance_score(t, len(t.labels) if t.labels else heads.get(t.name, [None, 2])[1])


def at_chance(col, tolerance: float = 1.0) -> list[dict]:
    """(point, task) pairs whose primary score is chance (within `tolerance` points) in every
    language, English included: runs that learnt nothing. A gain between two of them is 0 by
    construction and says nothing about the factor being compared."""
    per = {}
    for r in col.rows:
        if r["primary"] and math.isfinite(r["value"]):
            per.setdefault((r["point"], r["task"]), []).append(r["value"])
    out = []
    for (i, task), values in sorted(per.items()):
        try:
            c = 100 * chance(task, {})
        except Exception:  # noqa: BLE001 -- a task the registry does not know: no chance level to test
            continue
        if c > 0 and all(abs(v - c) <= tolerance for v in values):
            out.append({"point": i, "task": task, "chance": c})
    return out
