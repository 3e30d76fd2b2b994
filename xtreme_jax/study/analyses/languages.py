"""Question 5: returns of adding non-English languages to multi-task intermediate training."""
from __future__ import annotations

import numpy as np

from xtreme_jax.study import fits, stats
from xtreme_jax.study.analyses.common import (SCRIPT_CAVEAT, cell_scores, errorbars, fmt, levels_of, matrix,
                                              script_split, seeds_of, significance)


def _returns(x, Y) -> dict:
    """Model-free answers to "diminishing returns?", per (seed x order) unit: the rise from k = 0 to
    the largest k, and the change in slope (score per added language) from the first half of the
    k range to the second (negative: diminishing returns). A fitted knee alone can be produced by
    one bad run or by noise on a flat curve; these say whether there is a rise to diminish."""
    if len(x) < 3:
        return {}
    m = len(x) // 2
    late = (Y[:, -1] - Y[:, m]) / (x[-1] - x[m])
    early = (Y[:, m] - Y[:, 0]) / (x[m] - x[0])
    return {"rise": stats.mean_estimate(Y[:, -1] - Y[:, 0], unit="seed x order"),
            "slope_change": stats.mean_estimate(late - early, unit="seed x order")}


def _returns_verdict(e: dict, k_max: int) -> str:
    rise, change = e.get("rise"), e.get("slope_change")
    if not rise or rise["ci95"][0] is None:
        return "Too few runs to tell."
    if rise["ci95"][0] <= 0:
        return (f"No rise shown: the score at k = {k_max} minus k = 0 is {fmt(rise)}, an interval that "
                f"includes 0, so there are no returns to diminish and no threshold to report.")
    if change["ci95"][1] is not None and change["ci95"][1] < 0:
        return (f"Diminishing returns: rise {fmt(rise)}; the gain per added language falls by "
                f"{fmt(change)} from the first half of the k range to the second.")
    return (f"Rising ({fmt(rise)}) without shown flattening: the slope change {fmt(change)} "
            f"includes 0, so no threshold is shown up to k = {k_max}.")


def languages_added(col, study) -> dict:
    """Per level of analysis.budget (fixed English steps / fixed total steps) when the study has
    that factor; the first level's answers are the top-level ones."""
    budget_f = study.analysis.get("budget")
    if not budget_f or budget_f not in col.factors:
        return _one(col, study, {}, "")
    parts = {lvl: _one(col, study, {budget_f: lvl}, f"{lvl}_") for lvl in levels_of(col, budget_f)}
    first = next(iter(parts.values()))
    out = {"estimates": {**first["estimates"], "by_budget": {l: p["estimates"] for l, p in parts.items()}},
           "headline": dict(first["headline"]), "lines": [], "plots": {}}
    for lvl, p in parts.items():
        out["headline"][f"rise ({lvl})"] = p["headline"]["rise"]
        out["lines"] += [f"### Budget `{lvl}`", "", *p["lines"]]
        out["plots"].update(p["plots"])
    return out


def _by_script(col, fixed: dict, order_f: str, count_f: str, orders: list, ks: list, seeds: list) -> tuple[dict, list]:
    """The zero-shot score per group of languages by script (common.script_split) at the smallest and
    largest k, and its rise, over (seed x order) units."""
    scores, out, lines = script_split(col, "Zero-shot score")
    if not scores:
        return out, lines
    per = out["estimates"] = {}
    for g, sc in scores.items():
        Y = np.array([row for o in orders for row in matrix(sc, col, {**fixed, order_f: o}, count_f, ks, seeds)])
        per[g] = {"languages": out["groups"][g],
                  "by_k": {k: stats.mean_estimate(Y[:, j], unit="seed x order") for j, k in enumerate(ks)},
                  "rise": stats.mean_estimate(Y[:, -1] - Y[:, 0], unit="seed x order")}
    stats.adjust([e["rise"] for e in per.values()], f"script-group rises, {len(per)} groups")
    lines += ["", f"| script group | languages | k = {ks[0]} | k = {ks[-1]} | rise |", "|---|---:|---:|---:|---:|"]
    for g, e in per.items():
        lines.append(f"| {g} | {len(e['languages'])} | {fmt(e['by_k'][ks[0]], 1)} | {fmt(e['by_k'][ks[-1]], 1)} | "
                     f"{fmt(e['rise'], 1)}{significance(e['rise'])} |")
    return out, lines + ["", "\\* = rise different from 0 at 5% after Holm's adjustment over the groups. The languages "
                         "added to intermediate training differ by k and by order, so a group's rise mixes languages "
                         "it saw with ones it did not. " + SCRIPT_CAVEAT, ""]


def _one(col, study, fixed: dict, prefix: str) -> dict:
    seeds = seeds_of(col)
    order_f, count_f = study.prefix.order, study.prefix.count
    orders = levels_of(col, order_f)
    ks = sorted(levels_of(col, count_f), key=int)
    x = np.array([int(k) for k in ks], float)
    reserved = [l for l in str(study.unseen).replace("+", ",").split(",") if l]
    est, lines, plots, rows_by = {}, [], {}, {}
    sets = {"zero-shot": "zero-shot", "unseen (reserved)": "unseen", "seen (added so far)": "seen"}
    for name, which in sets.items():
        sc = cell_scores(col, which)
        if name == "unseen (reserved)" and reserved:  # the fixed set never added in any order
            sc = {}
            per = {}
            for r in col.rows:
                if r["primary"] and r["language"] in reserved:
                    key = (tuple((f, r[f]) for f in col.factors), r["seed"])
                    per.setdefault(key, []).append(r["value"])
            sc = {k: float(np.mean(v)) for k, v in per.items()}
        units = []
        for o in orders:
            M = matrix(sc, col, {**fixed, order_f: o}, count_f, ks, seeds)
            units.extend(M)
        Y = np.array(units)   # (orders x seeds) x k
        rows_by[name] = Y
        e = {"by_k": {k: stats.mean_estimate(Y[:, j], unit="seed x order") for j, k in enumerate(ks)}}
        if np.isfinite(Y).sum() >= 3 and name != "seen (added so far)":
            e["knee"] = fits.knee_test(x, Y)
            e["saturating"] = fits.fit_with_ci(x, Y, fits.saturating, unit="seed x order")
            e["gain_per_language_first"] = stats.mean_estimate(Y[:, 1] - Y[:, 0], unit="seed x order") if len(ks) > 1 else None
            e.update(_returns(x, Y))
        est[name] = e
    head = est["unseen (reserved)"] if reserved else est["zero-shot"]
    lines += [f"Units: {len(orders)} language orders x {len(seeds)} seeds. Languages reserved as unseen: "
              f"{', '.join(reserved) or 'none'}.", "",
              "| k added | " + " | ".join(sets) + " |", "|---:|" + "---:|" * len(sets)]
    for k in ks:
        lines.append(f"| {k} | " + " | ".join(fmt(est[n]["by_k"][k], 1) for n in sets) + " |")
    for n in ("zero-shot", "unseen (reserved)"):
        if "knee" in est[n]:
            kt, t = est[n]["knee"], est[n]["saturating"]
            if kt.get("slope_before") is not None:
                steeper = kt["slope_after"] > kt["slope_before"]
                knee = (f"Segmented fit against one line: {kt['verdict']}, interval {fmt(kt['knee'])} (slope before "
                        f"{kt['slope_before']:.2f}, after {kt['slope_after']:.2f}"
                        f"{': steeper after it, so a dip, not diminishing returns' if steeper else ''})")
            else:
                knee = f"Segmented fit against one line: {kt.get('verdict') or 'not tested: ' + kt.get('reason', '')}"
            lines += ["", f"{n}: {_returns_verdict(est[n], int(x[-1]))} {knee}; "
                      f"saturating fit reaches 90% of its rise at k = {fmt(t['x90'])}."]
    est["by_script"], script_lines = _by_script(col, fixed, order_f, count_f, orders, ks, seeds)
    lines += script_lines   # opens with a blank line

    def plot(ax):
        for k, (n, Y) in enumerate(rows_by.items()):
            errorbars(ax, x + 0.05 * k, [est[n]["by_k"][kk] for kk in ks], color=f"C{k}", label=n)
            kt = est[n].get("knee", {})
            if kt.get("slope_before") is not None:   # drawn only where a knee beat the line
                p = fits.segmented(x, np.nanmean(Y, 0))
                g = np.linspace(x.min(), x.max(), 100)
                ax.plot(g, p["a"] + p["slope_before"] * g + (p["slope_after"] - p["slope_before"]) *
                        np.maximum(g - p["knee"], 0), color=f"C{k}", lw=0.8, ls="--")
        ax.set_xlabel("non-English languages added to intermediate training")
        ax.set_ylabel("zero-shot score")
        ax.legend(fontsize=8)
    plots[f"{prefix}score_vs_languages.png"] = plot
    kt = head.get("knee", {})
    headline = {"rise": head.get("rise"), "slope_change": head.get("slope_change"),
                "knee": kt.get("knee"), "knee_verdict": kt.get("verdict") or kt.get("reason"),
                "x90": head.get("saturating", {}).get("x90")}
    return {"estimates": est, "headline": headline, "lines": lines, "plots": plots}
