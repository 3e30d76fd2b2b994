"""DIR/report/: results_long.csv, report.md, PNG plots and analysis.json.

analysis.json holds every estimate as {"value", "ci95": [lo, hi], "n", "unit", ...} (the cells:
mean over seeds per factor combination and language; the paired deltas with vs without
intermediate training; the study's analysis) plus provenance: git commit, the hash of every run's
config, and checksums of the data files the study read.
"""
from __future__ import annotations

import datetime
import hashlib
import io
import json
import math
import os

from xtreme_jax.files import write_atomic
from xtreme_jax.study import analyses, stats
from xtreme_jax.study.collect import collect, write_long_csv

MAX_HASH_BYTES = 200 * 2 ** 20
STATISTICS = ("95% t intervals over seeds (jackknife-t for fitted parameters, log scale for sizes); over seeds "
              "and test items where runs wrote predictions (items clustered across languages); Holm-adjusted p "
              "for per-language and per-task tables; TOST for equivalence to 0")  # larger data sets get a names/sizes/mtimes fingerprint instead


def data_checksums(plan) -> dict:
    """sha256 over the files of every local data directory the plan read (sorted names + contents)."""
    out = {}
    paths = sorted({k[4] for k in plan.data.counts if k[3] in ("official", "local") and k[4]})
    for path in paths:
        files = [os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs] if os.path.isdir(path) else [path]
        files = sorted(files)
        size = sum(os.path.getsize(f) for f in files)
        h = hashlib.sha256()
        if size <= MAX_HASH_BYTES:
            for f in files:
                h.update(os.path.relpath(f, path).encode() + b"\0")
                with open(f, "rb") as fh:
                    h.update(fh.read())
            out[path] = {"sha256": h.hexdigest(), "files": len(files), "bytes": size}
        else:
            from xtreme_jax.data.sources import path_fingerprint
            out[path] = {"fingerprint": path_fingerprint(path), "files": len(files), "bytes": size,
                         "note": "names, sizes and mtimes (too large to hash)"}
    for k, v in plan.data.hub.items():
        out[f"hub:{k[0]}/{k[1]}/{k[2]}"] = {"datasets": v}
    return out


def cells(col) -> list:
    """Mean over seeds (with CI and std) of every factor combination x task x language (primary metric)."""
    groups = {}
    for r in col.rows:
        if r["primary"]:
            key = tuple(r[f] for f in col.factors) + (r["task"], r["language"])
            groups.setdefault(key, {"seen": r["seen"], "values": {}})["values"][r["seed"]] = r["value"]
    out = []
    for key, g in groups.items():
        out.append({**dict(zip(col.factors + ["task", "language"], key)), "seen": g["seen"],
                    **stats.mean_estimate(list(g["values"].values()))})
    return out


def paired_deltas(col, study) -> list:
    """With minus without intermediate training (same seed, same other factors), per language,
    where the study has a factor holding the "no intermediate" level (analysis.arm / .task /
    .baseline); empty otherwise."""
    a = study.analysis
    factor = a.get("arm") or a.get("task")
    base = a.get("baseline")
    if not factor or base is None or factor not in col.factors:
        return []
    by = {}
    for r in col.rows:
        if r["primary"]:
            rest = tuple((f, r[f]) for f in col.factors if f != factor)
            by.setdefault((rest, r[factor], r["task"], r["language"]), {})[r["seed"]] = r["value"]
    out = []
    for (rest, level, task, lang), vals in by.items():
        if level == base or (rest, base, task, lang) not in by:
            continue
        ref = by[(rest, base, task, lang)]
        seeds = sorted(set(vals) & set(ref))
        est = stats.paired_delta([vals[s] for s in seeds], [ref[s] for s in seeds])
        out.append({**dict(rest), factor: level, "vs": base, "task": task, "language": lang, **est})
    return out


def _md_cells(col, rows) -> list[str]:
    langs = sorted({r["language"] for r in rows}, key=lambda l: (l != "en", l))
    combos = list(dict.fromkeys(tuple(r[f] for f in col.factors) + (r["task"],) for r in rows))
    index = {tuple(r[f] for f in col.factors) + (r["task"], r["language"]): r for r in rows}
    head = [*col.factors, "task", *langs]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * (len(col.factors) + 1) + "---:|" * len(langs)]
    for c in combos:
        cellv = []
        for l in langs:
            r = index.get(c + (l,))
            cellv.append("–" if r is None or r["value"] is None else
                         f"{r['value']:.1f} ± {r['std']:.1f}" if r.get("std") is not None else f"{r['value']:.1f}")
        out.append("| " + " | ".join(list(c) + cellv) + " |")
    return out


def _md_at_chance(plan, dead: list, with_results: int) -> list[str]:
    if not dead:
        return []
    points = sorted({d["point"] for d in dead})
    return [f"**Warning: {len(points)} of {with_results} points score at chance in every language** (within 1 "
            "point of guessing, English included): those runs learnt nothing, and a gain or difference between "
            "two of them is 0 by construction, not a finding (their training curves: runs/<hash>/*/metrics/"
            "train.jsonl). The points:", "",
            *[f"- {plan.points[i].describe()}" for i in points], ""]


def _png(path: str, draw) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    draw(ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return write_atomic(path, buf.getvalue())


def _clean(x):
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if hasattr(x, "tolist"):
        return _clean(x.tolist())
    return x


def build(plan, root: str) -> dict:
    from xtreme_jax.report import git_commit
    study = plan.study
    out = f"{root.rstrip('/')}/report"
    col = collect(plan, root)
    if not col.rows:
        raise ValueError(f"no finished points under {root} yet ({len(col.missing)} without results): run the "
                         "study first (python -m xtreme_jax.study run ...)")
    write_long_csv(col, f"{out}/results_long.csv")
    cell_rows = cells(col)
    deltas = paired_deltas(col, study)
    kind = study.analysis.kind
    if kind not in analyses.ANALYSES:
        raise ValueError(f"config.analysis.kind={kind!r}; choose from {sorted(analyses.ANALYSES)}")
    if col.missing:  # an analysis over a partial grid would mislead: say so, run it on what is there
        print(f"warning: {len(col.missing)} of {len(plan.points)} points have no results yet "
              f"({', '.join(sorted({s for _, s in col.missing}))}); the analysis uses the others")
    result = analyses.run(col, study)
    dead = analyses.at_chance(col)
    if dead:
        print(f"warning: {len(dead)} point(s) score at chance in every language: see report.md")
    plots = []
    for name, draw in result["plots"].items():
        plots.append(os.path.basename(_png(f"{out}/{name}", draw)))
    doc = {"study": study.name, "question": study.question, "scale": study.scale,
           "headline": result["headline"], "analysis": result["estimates"], "cells": cell_rows,
           "paired_deltas": deltas, "plots": plots,
           "at_chance": [dict(d, labels=plan.points[d["point"]].labels, seed=plan.points[d["point"]].seed)
                         for d in dead],
           "points": {"planned": len(plan.points), "with_results": len(plan.points) - len(col.missing),
                      "missing": [{"point": i, "state": s} for i, s in col.missing]},
           "provenance": {"git_commit": git_commit(), "written_at": datetime.datetime.now(
                              datetime.timezone.utc).isoformat(timespec="seconds"),
                          "study_config": json.loads(study.to_json_best_effort()),
                          "runs": {h: {"stage": n.stage, "phases": n.phases, "parent": n.parent}
                                   for h, n in plan.graph.nodes.items()},
                          "data": data_checksums(plan),
                          "statistics": {"bootstrap_resamples": stats.N_BOOT, "bootstrap_seed": stats.SEED,
                                         "interval": STATISTICS}}}
    write_atomic(f"{out}/analysis.json", json.dumps(_clean(doc), indent=1) + "\n")
    md = [f"# Study `{study.name}` ({study.scale} scale)", "", f"> {study.question}", ""]
    if study.scale == "tiny":
        md += ["**Tiny scale**: these numbers come from the synthetic demo world and tiny encoders; they show "
               "that the machinery works end to end, not answers about XLM-R or XTREME.", ""]
    md += [f"{len(plan.points) - len(col.missing)} of {len(plan.points)} points with results, "
           f"seeds {', '.join(str(s) for s in study.seeds)}; intervals: {STATISTICS} (each estimate's `method` and "
           "`unit` in analysis.json).", "",
           *_md_at_chance(plan, dead, len(plan.points) - len(col.missing)),
           "## Analysis", "", *result["lines"], *[f"![{p}]({p})" for p in plots], "",
           "## Scores per point (mean ± std over seeds, primary metric)", "", *_md_cells(col, cell_rows), ""]
    if deltas:
        md += ["## Paired deltas: with minus without intermediate training (mean [95% CI] over seeds)", ""]
        langs = sorted({d["language"] for d in deltas}, key=lambda l: (l != "en", l))
        keys = list(dict.fromkeys(tuple((k, v) for k, v in d.items() if k in col.factors) for d in deltas))
        md += ["| " + " | ".join(k for k, _ in keys[0]) + " | " + " | ".join(langs) + " |",
               "|" + "---|" * len(keys[0]) + "---:|" * len(langs)]
        idx = {(tuple((k, v) for k, v in d.items() if k in col.factors), d["language"]): d for d in deltas}
        for k in keys:
            md.append("| " + " | ".join(v for _, v in k) + " | " + " | ".join(
                analyses.fmt(idx[(k, l)], 1) if (k, l) in idx else "–" for l in langs) + " |")
        md.append("")
    md += ["Files: `results_long.csv` (every value), `analysis.json` (every estimate with its CI, provenance).", ""]
    write_atomic(f"{out}/report.md", "\n".join(md))
    summary = [f"{study.name}: " + "; ".join(f"{k} = {analyses.fmt(v) if isinstance(v, dict) and 'ci95' in v else v}"
                                             for k, v in result["headline"].items())]
    return {"dir": out, "summary": "\n".join(summary), "doc": doc}
