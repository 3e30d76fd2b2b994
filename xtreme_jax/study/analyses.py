"""The five analyses. Each takes the collected results and returns
{"estimates": nested dicts of stats estimates, "lines": Markdown for report.md, "plots": {file: fn(ax)}}.

Scores are the primary metric (percent), averaged over a point's tasks and over a set of
languages: `zero-shot` = every evaluation language except English; `seen` / `unseen` = those the
point's task training did / did not include (translated data, translate-train). Gains are paired
by seed: the run with intermediate training minus the run without, same seed (and, at tiny scale,
the same pretrained encoder).
"""
from __future__ import annotations

import math

import numpy as np

from xtreme_jax.study import collect, fits, stats

# --------------------------------------------------------------------------- tables of scores


def cell_scores(col, which: str = "zero-shot") -> dict:
    """{(labels tuple, seed): score} averaged over tasks and the chosen languages."""
    per = {}
    for r in col.rows:
        if not r["primary"] or math.isnan(r["value"]):
            continue
        lang, seen = r["language"], r["seen"]
        keep = {"zero-shot": lang != "en", "en": lang == "en", "all": True, "seen": seen and lang != "en",
                "unseen": not seen}.get(which, lang == which)
        if keep:
            key = (tuple((f, r[f]) for f in col.factors), r["seed"])
            per.setdefault(key, {}).setdefault(r["task"], []).append(r["value"])
    return {k: float(np.mean([np.mean(v) for v in tasks.values()])) for k, tasks in per.items()}


def languages(col, which="zero-shot") -> list[str]:
    langs = sorted({r["language"] for r in col.rows})
    return [l for l in langs if l != "en"] if which == "zero-shot" else langs


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


def _fmt(e: dict, digits: int = 2) -> str:
    v, (lo, hi) = e.get("value"), e.get("ci95", [None, None])
    if v is None and e.get("defined") is not None:  # e.g. no knee in a straight curve
        return f"none (defined in {100 * e['defined']:.0f}% of bootstrap resamples)"
    if v is None:
        return "–"
    ci = f" [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None and hi is not None else " [no CI: n < 2]"
    return f"{v:.{digits}f}{ci}"


def _size(label: str, full: int) -> float:
    n = int(label)
    return float(full if n == 0 else n)


def _errorbars(ax, x, est_list, **kw):
    v = np.array([e["value"] if e["value"] is not None else np.nan for e in est_list], float)
    lo = np.array([e["ci95"][0] if e["ci95"][0] is not None else np.nan for e in est_list], float)
    hi = np.array([e["ci95"][1] if e["ci95"][1] is not None else np.nan for e in est_list], float)
    ax.errorbar(x, v, yerr=[np.nan_to_num(v - lo), np.nan_to_num(hi - v)], capsize=3, marker="o", **kw)


def _paired_examples(col, pts_a: list, pts_b: list, langs: list) -> dict | None:
    """Gain over test examples where both arms wrote predictions (seeds stacked, examples resampled)."""
    a, b = [], []
    for pa, pb in zip(pts_a, pts_b):
        ra = [col.correct.get((pa, t, l)) for t, l in langs]
        rb = [col.correct.get((pb, t, l)) for t, l in langs]
        if any(x is None for x in ra + rb):
            return None
        a.append(np.concatenate(ra))
        b.append(np.concatenate(rb))
    if not a:
        return None
    return stats.paired_examples(np.array(a), np.array(b))


def _point_of(col) -> dict:
    return {(tuple((f, r[f]) for f in col.factors), r["seed"]): r["point"] for r in col.rows}


def key_of(col, labels: dict) -> tuple:
    return tuple((f, labels[f]) for f in col.factors)


# --------------------------------------------------------------------------- target_size

def target_size(col, study) -> dict:
    a = study.analysis
    size_f, arm_f, base = a.size, a.arm, a.baseline
    seeds = seeds_of(col)
    sizes = sorted(levels_of(col, size_f), key=lambda s: _size(s, a.full_size))
    x = np.array([_size(s, a.full_size) for s in sizes])
    arms = [l for l in levels_of(col, arm_f) if l != base]
    other = {f: levels_of(col, f)[0] for f in col.factors if f not in (size_f, arm_f)}
    langs = languages(col)
    est, lines, plots = {}, [], {}
    point = _point_of(col)
    for arm in arms:
        e = est[arm] = {"per_size": {}, "per_language": {}}
        gains = {}
        for which in ["zero-shot"] + langs:
            sc = cell_scores(col, which)
            with_ = matrix(sc, col, {**other, arm_f: arm}, size_f, sizes, seeds)
            without = matrix(sc, col, {**other, arm_f: base}, size_f, sizes, seeds)
            gains[which] = with_ - without
        g = gains["zero-shot"]
        for j, s in enumerate(sizes):
            e["per_size"][s] = {"gain": stats.mean_estimate(g[:, j]),
                                "with": stats.mean_estimate(matrix(cell_scores(col), col, {**other, arm_f: arm}, size_f, sizes, seeds)[:, j]),
                                "without": stats.mean_estimate(matrix(cell_scores(col), col, {**other, arm_f: base}, size_f, sizes, seeds)[:, j])}
            pa = [point.get((key_of(col, {**other, arm_f: arm, size_f: s}), sd)) for sd in seeds]
            pb = [point.get((key_of(col, {**other, arm_f: base, size_f: s}), sd)) for sd in seeds]
            tl = sorted({(r["task"], r["language"]) for r in col.rows if r["language"] != "en"})
            pe = _paired_examples(col, pa, pb, tl) if None not in pa + pb else None
            if pe:
                e["per_size"][s]["gain_paired_examples"] = pe
        fit = fits.fit_with_ci(x, g, fits.loglinear, derived={"zero_gain_size": fits.zero_crossing})
        grid = np.geomspace(x.min(), x.max(), 200)
        v, lo, hi = fits.band(x, g, fits.loglinear, fits.predict_loglinear, grid)
        first = fits.first_where_ci_includes_zero(grid, lo, hi)
        measured_first = next((float(_size(s, a.full_size)) for s in sizes
                               if e["per_size"][s]["gain"]["ci95"][0] is not None
                               and e["per_size"][s]["gain"]["ci95"][0] <= 0 <= e["per_size"][s]["gain"]["ci95"][1]),
                              math.nan)
        e["fit"] = {"model": "gain = a + b ln(n)", **fit,
                    "first_size_ci_includes_zero": {"fitted": stats._num(first), "measured": stats._num(measured_first)}}
        for l in langs:
            e["per_language"][l] = {"gain_by_size": {s: stats.mean_estimate(gains[l][:, j]) for j, s in enumerate(sizes)},
                                    "fit": fits.fit_with_ci(x, gains[l], fits.loglinear)}
        lines += [f"### Intermediate `{arm}` vs `{base}`: zero-shot gain by target training size", "",
                  "| n | with | without | gain [95% CI over seeds] | gain, paired over test examples |", "|---:|---:|---:|---:|---:|"]
        for s in sizes:
            ps = e["per_size"][s]
            lines.append(f"| {int(_size(s, a.full_size))} | {_fmt(ps['with'], 1)} | {_fmt(ps['without'], 1)} | "
                         f"{_fmt(ps['gain'])} | {_fmt(ps['gain_paired_examples']) if 'gain_paired_examples' in ps else '–'} |")
        lines += ["", f"Fit gain(n) = a + b ln n: b = {_fmt(fit['b'], 3)}; the fitted gain reaches 0 at n = "
                  f"{_fmt(fit['zero_gain_size'], 0)}; the fitted gain's 95% band first includes 0 at n = "
                  f"{first:.0f}" if math.isfinite(first) else
                  f"Fit gain(n) = a + b ln n: b = {_fmt(fit['b'], 3)}; the fitted gain's 95% band excludes 0 "
                  "over the whole measured range", "",
                  "Per language, gain at each size (mean [95% CI]):", "",
                  "| language | " + " | ".join(str(int(_size(s, a.full_size))) for s in sizes) + " |",
                  "|---|" + "---:|" * len(sizes)]
        for l in langs:
            lines.append(f"| {l} | " + " | ".join(_fmt(e["per_language"][l]["gain_by_size"][s], 1) for s in sizes) + " |")
        lines.append("")

        def plot(ax, arm=arm, e=e, g=g, grid=grid, v=v, lo=lo, hi=hi):
            _errorbars(ax, x, [e["per_size"][s]["gain"] for s in sizes], label="zero-shot avg (mean, 95% CI)")
            ax.plot(grid, v, color="C1", label="fit a + b ln n")
            ax.fill_between(grid, lo, hi, color="C1", alpha=0.2, label="95% band")
            for k, l in enumerate(langs):
                ax.plot(x, [e["per_language"][l]["gain_by_size"][s]["value"] or np.nan for s in sizes], lw=0.8,
                        alpha=0.6, ls="--", label=l)
            ax.axhline(0, color="k", lw=0.8)
            ax.set_xscale("log")
            ax.set_xlabel("target training examples (English)")
            ax.set_ylabel(f"gain from intermediate `{arm}` (points)")
            ax.legend(fontsize=7)
        plots[f"gain_vs_size_{arm}.png"] = plot
    head = est[arms[0]]
    headline = {"gain_at_smallest": head["per_size"][sizes[0]]["gain"],
                "first_size_ci_includes_zero": head["fit"]["first_size_ci_includes_zero"],
                "zero_gain_size": head["fit"]["zero_gain_size"]}
    return {"estimates": est, "headline": headline, "lines": lines, "plots": plots}


# --------------------------------------------------------------------------- direct

def direct(col, study) -> dict:
    a = study.analysis
    seeds = seeds_of(col)
    size_f, arm_f = a.size, a.arm
    arms = list(a.arms)
    sizes = sorted(levels_of(col, size_f), key=lambda s: _size(s, a.full_size))
    sc = cell_scores(col)
    other = {f: levels_of(col, f)[0] for f in col.factors if f not in (size_f, arm_f)}
    # x: total target training examples of the point (n per language x its training languages)
    examples, hours = {}, {}
    for r in col.rows:
        examples[(r[arm_f], r[size_f])] = col.train_examples.get(r["point"], math.nan)
        hours.setdefault((r[arm_f], r[size_f]), []).append(r["accelerator_hours"])
    est, lines, plots, curves = {}, [], {}, {}
    for arm in arms:
        Y = matrix(sc, col, {**other, arm_f: arm}, size_f, sizes, seeds)
        xs = np.array([examples.get((arm, s), math.nan) for s in sizes], float)
        hs = np.array([np.mean(hours.get((arm, s), [math.nan])) for s in sizes], float)
        est[arm] = {
            "score_by_size": {s: stats.mean_estimate(Y[:, j]) for j, s in enumerate(sizes)},
            "examples": {s: float(xs[j]) for j, s in enumerate(sizes)},
            "accelerator_hours": {s: float(hs[j]) for j, s in enumerate(sizes)},
            "vs_examples": {"loglinear": fits.fit_with_ci(xs, Y, fits.loglinear),
                            "powerlaw_error": fits.fit_with_ci(xs, 100 - Y, fits.powerlaw)},
            "vs_compute": {"loglinear": fits.fit_with_ci(hs, Y, fits.loglinear),
                           "powerlaw_error": fits.fit_with_ci(hs, 100 - Y, fits.powerlaw)}}
        curves[arm] = (xs, hs, Y)
    (xa, ha, Ya), (xb, hb, Yb) = curves[arms[0]], curves[arms[1]]

    def crossover(x1, x2):
        n1 = len(x1)
        return lambda xx, yy: {"x": fits.loglinear_crossover(fits.loglinear(x1, yy[:n1]), fits.loglinear(x2, yy[n1:]))}
    both = np.concatenate([Ya, Yb], 1)
    est["crossover_examples"] = fits.fit_with_ci(np.concatenate([xa, xb]), both, crossover(xa, xb))["x"]
    est["crossover_compute_hours"] = fits.fit_with_ci(np.concatenate([ha, hb]), both, crossover(ha, hb))["x"]
    lo_x, hi_x = np.nanmin(np.concatenate([xa, xb])), np.nanmax(np.concatenate([xa, xb]))
    cx = est["crossover_examples"]["value"]
    est["crossover_examples"]["within_measured_range"] = bool(cx is not None and lo_x <= cx <= hi_x)
    lines += ["| arm | n per language | training examples | acc-hours | zero-shot score |", "|---|---:|---:|---:|---:|"]
    for arm in arms:
        for s in sizes:
            lines.append(f"| {arm} | {s} | {est[arm]['examples'][s]:.0f} | {est[arm]['accelerator_hours'][s]:.3g} | "
                         f"{_fmt(est[arm]['score_by_size'][s], 1)} |")
    lines += ["", "| arm | slope b of score = a + b ln(examples) | error power law exponent alpha (examples) | "
              "alpha (compute) |", "|---|---:|---:|---:|"]
    for arm in arms:
        lines.append(f"| {arm} | {_fmt(est[arm]['vs_examples']['loglinear']['b'], 3)} | "
                     f"{_fmt(est[arm]['vs_examples']['powerlaw_error']['alpha'], 3)} | "
                     f"{_fmt(est[arm]['vs_compute']['powerlaw_error']['alpha'], 3)} |")
    c = est["crossover_examples"]
    lines += ["", f"Crossover of the two log-linear fits: {_fmt(c, 0)} training examples "
              f"({'inside' if c['within_measured_range'] else 'outside'} the measured range {lo_x:.0f}-{hi_x:.0f}; "
              f"defined in {100 * (c.get('defined') or 0):.0f}% of bootstrap resamples); in compute: "
              f"{_fmt(est['crossover_compute_hours'], 4)} accelerator-hours.", ""]

    def plot_x(ax, which):
        for k, arm in enumerate(arms):
            xs, hs, Y = curves[arm]
            xv = xs if which == "examples" else hs
            _errorbars(ax, xv, [est[arm]["score_by_size"][s] for s in sizes], color=f"C{k}", label=arm)
            p = fits.loglinear(xv, np.nanmean(Y, 0))
            g = np.geomspace(np.nanmin(xv), np.nanmax(xv), 100)
            ax.plot(g, fits.predict_loglinear(p, g), color=f"C{k}", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("target training examples" if which == "examples" else "accelerator-hours (whole chain)")
        ax.set_ylabel("zero-shot score (avg over non-English languages)")
        ax.legend(fontsize=8)
    plots["score_vs_examples.png"] = lambda ax: plot_x(ax, "examples")
    plots["score_vs_compute.png"] = lambda ax: plot_x(ax, "compute")
    headline = {f"alpha_{arm}": est[arm]["vs_examples"]["powerlaw_error"]["alpha"] for arm in arms}
    headline["crossover_examples"] = est["crossover_examples"]
    return {"estimates": est, "headline": headline, "lines": lines, "plots": plots}


# --------------------------------------------------------------------------- difficulty

def chance(task_name: str, heads: dict) -> float:
    from xtreme_jax.tasks import get_task
    t = get_task(task_name)
    if t.kind == "classification":
        n = len(t.labels) if t.labels else heads.get(t.name, [None, 2])[1]
        return 1.0 / n
    if t.kind == "multiple_choice":
        return 1.0 / max(t.num_choices, 1)
    return 0.0


def difficulty_of(curve: list, p_chance: float) -> float:
    """Mean over the intermediate phase's dev evaluations of the error normalized by the error of
    chance: 1 = never better than chance, 0 = perfect from the first evaluation (an area above the
    learning curve, so a task learnt late counts as harder than one learnt early)."""
    if not curve:
        return math.nan
    s = np.array([v for _, v in curve], float)
    return float(np.mean(np.clip((1 - s) / max(1 - p_chance, 1e-9), 0, None)))


def difficulty(col, study) -> dict:
    a = study.analysis
    seeds = seeds_of(col)
    enc_f, task_f, base = a.encoder, a.task, a.baseline
    encoders = levels_of(col, enc_f)
    tasks = [t for t in levels_of(col, task_f) if t != base]
    sc = cell_scores(col)
    point = _point_of(col)
    other = {f: levels_of(col, f)[0] for f in col.factors if f not in (enc_f, task_f)}
    est, lines, plots, data = {}, [], {}, {}
    for enc in encoders:
        S = matrix(sc, col, {**other, enc_f: enc}, task_f, tasks + [base], seeds)
        gain = S[:, :-1] - S[:, -1:]
        diff = np.full_like(gain, np.nan)
        for i, sd in enumerate(seeds):
            for j, t in enumerate(tasks):
                p = point.get((key_of(col, {**other, enc_f: enc, task_f: t}), sd))
                if p is None:
                    continue
                curve = col.curves.get(p, {})
                heads = curve.get("intermediate_heads", {})
                names = col.points.get(p, {}).get("intermediate_tasks", [])
                p_chance = float(np.mean([chance(n, heads) for n in names])) if names else 0.0
                diff[i, j] = difficulty_of(curve.get("intermediate", []), p_chance)
        data[enc] = (diff, gain)
        est[enc] = {"difficulty": {t: stats.mean_estimate(diff[:, j]) for j, t in enumerate(tasks)},
                    "gain": {t: stats.mean_estimate(gain[:, j]) for j, t in enumerate(tasks)},
                    "spearman_difficulty_gain": stats.spearman_estimate(diff, gain),
                    "gain_ranking_stability": stats.ranking_stability(gain)}
    if len(encoders) >= 2:
        (d0, g0), (d1, g1) = data[encoders[0]], data[encoders[1]]
        stat = lambda a0, b0, a1, b1: (stats.spearman(np.nanmean(a1, 0), np.nanmean(b1, 0))  # noqa: E731
                                       - stats.spearman(np.nanmean(a0, 0), np.nanmean(b0, 0)))
        v, ci, dist = stats.bootstrap([d0, g0, d1, g1], stat)
        est["spearman_difference"] = stats.estimate(v, ci, len(seeds), "seed", of=f"{encoders[1]} - {encoders[0]}",
                                                    defined=stats.defined_fraction(dist))
    lines += ["Difficulty = mean normalized dev error over the intermediate phase's evaluations (1 = chance "
              "throughout, 0 = perfect from the first evaluation). Gain = zero-shot score minus the run "
              "without intermediate training, same encoder and seed.", "",
              "| encoder | task | difficulty | zero-shot gain |", "|---|---|---:|---:|"]
    for enc in encoders:
        for t in tasks:
            lines.append(f"| {enc} | {t} | {_fmt(est[enc]['difficulty'][t], 3)} | {_fmt(est[enc]['gain'][t], 2)} |")
    lines += ["", "| encoder | Spearman(difficulty, gain) | gain ranking stability across seeds (leave-one-out "
              "Spearman) | Kendall's W |", "|---|---:|---:|---:|"]
    for enc in encoders:
        r, s = est[enc]["spearman_difficulty_gain"], est[enc]["gain_ranking_stability"]
        lines.append(f"| {enc} | {_fmt(r)} | {_fmt(s)} | {s['kendall_w'] if s['kendall_w'] is None else round(s['kendall_w'], 3)} |")
    if "spearman_difference" in est:
        lines += ["", f"Difference of the Spearman correlations ({est['spearman_difference']['of']}): "
                  f"{_fmt(est['spearman_difference'])}"]
    lines.append("")

    def plot(ax):
        for k, enc in enumerate(encoders):
            dv = [est[enc]["difficulty"][t]["value"] or np.nan for t in tasks]
            _errorbars(ax, dv, [est[enc]["gain"][t] for t in tasks], color=f"C{k}", ls="none", label=enc)
            for t, xx, e in zip(tasks, dv, [est[enc]["gain"][t] for t in tasks]):
                ax.annotate(t, (xx, e["value"] or 0), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("intermediate-task difficulty (normalized dev error, area)")
        ax.set_ylabel("zero-shot gain (points)")
        ax.legend(fontsize=8)
    plots["gain_vs_difficulty.png"] = plot
    headline = {enc: est[enc]["spearman_difficulty_gain"] for enc in encoders}
    return {"estimates": est, "headline": headline, "lines": lines, "plots": plots}


# --------------------------------------------------------------------------- model_size

def model_size(col, study) -> dict:
    a = study.analysis
    seeds = seeds_of(col)
    size_f, task_f, base = a.size, a.task, a.baseline
    params = {}
    for r in col.rows:
        params.setdefault(r[size_f], col.points.get(r["point"], {}).get("params", math.nan))
    sizes = sorted(levels_of(col, size_f), key=lambda s: params.get(s, 0))
    groups = {"syntactic": list(a.syntactic), "semantic": list(a.semantic)}
    sc = cell_scores(col)
    other = {f: levels_of(col, f)[0] for f in col.factors if f not in (size_f, task_f)}
    G = {}
    for g, tasks in groups.items():
        per = []
        for t in tasks:
            w = matrix(sc, col, {**other, task_f: t}, size_f, sizes, seeds)
            wo = matrix(sc, col, {**other, task_f: base}, size_f, sizes, seeds)
            per.append(w - wo)
        G[g] = fits._colmean(np.stack(per))   # seeds x sizes: mean gain of the group (NaN where none)
    diff = G["semantic"] - G["syntactic"]
    est = {g: {s: stats.mean_estimate(G[g][:, j]) for j, s in enumerate(sizes)} for g in G}
    est["semantic_minus_syntactic"] = {s: stats.mean_estimate(diff[:, j]) for j, s in enumerate(sizes)}
    v, ci, _ = stats.bootstrap([diff], lambda d: fits._colmean(d[:, [0, -1]]) @ [-1, 1])  # NaN where a size has no gain
    est["difference_in_differences"] = stats.estimate(v, ci, len(seeds), "seed",
                                                      of=f"(semantic - syntactic gain) at {sizes[-1]} minus at {sizes[0]}")
    if all(math.isfinite(params.get(s, math.nan)) for s in sizes):
        lp = np.log10([float(params[s]) for s in sizes])
        est["slope_per_decade_of_parameters"] = fits.fit_with_ci(
            lp, diff, lambda x, y: {"slope": np.polyfit(x[np.isfinite(y)], y[np.isfinite(y)], 1)[0]
                                    if np.isfinite(y).sum() >= 2 else math.nan})["slope"]
    lines = ["Gain = zero-shot score with the intermediate task minus without, same size and seed; each group "
             "averages its tasks (syntactic: " + ", ".join(groups["syntactic"]) + "; semantic: " +
             ", ".join(groups["semantic"]) + ").", "",
             "| size | syntactic gain | semantic gain | semantic - syntactic |", "|---|---:|---:|---:|"]
    for s in sizes:
        lines.append(f"| {s} | {_fmt(est['syntactic'][s])} | {_fmt(est['semantic'][s])} | "
                     f"{_fmt(est['semantic_minus_syntactic'][s])} |")
    lines += ["", f"Difference in differences ({est['difference_in_differences']['of']}): "
              f"{_fmt(est['difference_in_differences'])}"]
    if "slope_per_decade_of_parameters" in est:
        lines[-1] += (f"; slope of (semantic - syntactic) per decade of parameters: "
                      f"{_fmt(est['slope_per_decade_of_parameters'])}")
    lines.append("")

    def plot(ax):
        xs = np.arange(len(sizes))
        for k, g in enumerate(("syntactic", "semantic")):
            _errorbars(ax, xs + 0.05 * k, [est[g][s] for s in sizes], color=f"C{k}", label=f"{g} gain")
        _errorbars(ax, xs + 0.1, [est["semantic_minus_syntactic"][s] for s in sizes], color="C2", ls="--",
                   label="semantic - syntactic")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(xs, [f"{s}\n{params[s]:.2g}" for s in sizes])
        ax.set_xlabel("model size (parameters)")
        ax.set_ylabel("zero-shot gain (points)")
        ax.legend(fontsize=8)
    return {"estimates": est, "headline": {"difference_in_differences": est["difference_in_differences"]},
            "lines": lines, "plots": {"gain_vs_model_size.png": plot}}


# --------------------------------------------------------------------------- languages

def languages_added(col, study) -> dict:
    a = study.analysis
    seeds = seeds_of(col)
    order_f, count_f = study.prefix.order, study.prefix.count
    orders = levels_of(col, order_f)
    ks = sorted(levels_of(col, count_f), key=int)
    x = np.array([int(k) for k in ks], float)
    reserved = [l for l in str(study.unseen).replace("+", ",").split(",") if l]
    est, lines, plots, rows_by, knee_dist = {}, [], {}, {}, {}
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
            M = matrix(sc, col, {order_f: o}, count_f, ks, seeds)
            units.extend(M)
        Y = np.array(units)   # (orders x seeds) x k
        rows_by[name] = Y
        e = {"by_k": {k: stats.mean_estimate(Y[:, j], unit="seed x order") for j, k in enumerate(ks)}}
        if np.isfinite(Y).sum() >= 3 and name != "seen (added so far)":
            knee_dist[name] = {}
            e["segmented"] = fits.fit_with_ci(x, Y, fits.segmented, unit="seed x order", dists=knee_dist[name])
            e["saturating"] = fits.fit_with_ci(x, Y, fits.saturating, unit="seed x order")
            e["gain_per_language_first"] = stats.mean_estimate(Y[:, 1] - Y[:, 0], unit="seed x order") if len(ks) > 1 else None
        est[name] = e
    head = est["unseen (reserved)"] if reserved else est["zero-shot"]
    lines += [f"Units: {len(orders)} language orders x {len(seeds)} seeds. Languages reserved as unseen: "
              f"{', '.join(reserved) or 'none'}.", "",
              "| k added | " + " | ".join(sets) + " |", "|---:|" + "---:|" * len(sets)]
    for k in ks:
        lines.append(f"| {k} | " + " | ".join(_fmt(est[n]["by_k"][k], 1) for n in sets) + " |")
    for n in ("zero-shot", "unseen (reserved)"):
        if "segmented" in est[n]:
            s, t = est[n]["segmented"], est[n]["saturating"]
            lines += ["", f"{n}: segmented fit knee at k = {_fmt(s['knee'])} (slope before {_fmt(s['slope_before'])}, "
                      f"after {_fmt(s['slope_after'])}); saturating fit reaches 90% of its rise at k = {_fmt(t['x90'])}"]
    lines.append("")

    def plot(ax):
        for k, (n, Y) in enumerate(rows_by.items()):
            _errorbars(ax, x + 0.05 * k, [est[n]["by_k"][kk] for kk in ks], color=f"C{k}", label=n)
            if "segmented" in est[n]:
                p = fits.segmented(x, np.nanmean(Y, 0))
                g = np.linspace(x.min(), x.max(), 100)
                ax.plot(g, p["a"] + p["slope_before"] * g + (p["slope_after"] - p["slope_before"]) *
                        np.maximum(g - p["knee"], 0), color=f"C{k}", lw=0.8, ls="--")
        ax.set_xlabel("non-English languages added to intermediate training")
        ax.set_ylabel("zero-shot score")
        ax.legend(fontsize=8)

    def knee_hist(ax):
        dist = np.asarray(knee_dist.get("unseen (reserved)" if reserved else "zero-shot", {}).get("knee", []), float)
        ax.hist(dist[np.isfinite(dist)], bins=30, color="C0")
        ax.set_xlabel("knee k (bootstrap resamples of seed x order units)")
        ax.set_ylabel("count")
    plots["score_vs_languages.png"] = plot
    plots["knee_bootstrap.png"] = knee_hist
    headline = {"knee": head.get("segmented", {}).get("knee"), "x90": head.get("saturating", {}).get("x90")}
    return {"estimates": est, "headline": headline, "lines": lines, "plots": plots}


def run(col, study) -> dict:
    a = study.analysis
    col = collect.average_over(col, list(a.get("average_over", ()) or ()))
    return ANALYSES[a.kind](col, study)


ANALYSES = {"target_size": target_size, "direct": direct, "difficulty": difficulty, "model_size": model_size,
            "languages": languages_added}
