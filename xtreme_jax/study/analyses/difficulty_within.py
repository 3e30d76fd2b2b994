"""Study 2 at full scale: difficulty varied within one task format (analysis.within_format: groups of
intermediate tasks, each ordered easy -> hard a priori: ANLI R1/R2/R3, SWAG/HellaSwag, MNLI easy/hard).

Per encoder and group: (a) each harder member's zero-shot gain minus the easiest member's, paired by
seed; (b) the manipulation check: the measured difficulty of each member and the share of seeds in
which it rises along the a-priori order; (c) English-only minus multilingual encoders' contrasts,
paired by seed. Beside them, per encoder, the within-group slope of gain on measured difficulty
pooled over the groups (each group centred on its own means: group fixed effects), jackknife-t over
seeds, and its English-only minus multilingual difference. Within a group the format is fixed, so a contrast is about difficulty (and whatever
else differs between the members: see CAVEAT), not about the format.
"""
from __future__ import annotations

import numpy as np

from xtreme_jax.study import stats
from xtreme_jax.study.analyses.common import fmt, significance

CAVEAT = ("What this does not show: an effect of difficulty alone. ANLI's rounds also differ in size, in the "
          "model their examples were written against and (R3) in text domains; SWAG and HellaSwag differ in "
          "domain (video captions vs ActivityNet captions and WikiHow) and in the length of their endings; the MNLI split is made by a hypothesis-only classifier, so "
          "\"hard\" also means \"fewer annotation artifacts\", not only harder. A member whose measured difficulty "
          "does not follow the a-priori order (order holds < 1) is no test of that order.")


def _order_share(D: np.ndarray) -> dict:
    """Share of seeds (rows) whose measured difficulty strictly rises along the members (columns);
    seeds missing a member's difficulty are left out."""
    ok = np.isfinite(D).all(1)
    share = float((np.diff(D[ok], axis=1) > 0).all(1).mean()) if ok.any() else None
    return {"share": share, "n": int(ok.sum()), "unit": "seed",
            "of": "seeds where each member's measured difficulty exceeds the previous member's"}


def _pooled_slope(cuts: list):
    """statistic(B) for stats.jackknife, B = one encoder's seeds x [difficulty of group 1's members,
    their gains, group 2's difficulty, gains, ...]; `cuts` = the members per group. The least-squares
    slope of the seed-mean gain on the seed-mean difficulty, each group's means taken out."""
    def slope(B):
        x, y, at = [], [], 0
        for m in cuts:
            d, g = stats._nanmean0(B[:, at:at + m]), stats._nanmean0(B[:, at + m:at + 2 * m])
            x.append(d - np.nanmean(d))
            y.append(g - np.nanmean(g))
            at += 2 * m
        x, y = np.concatenate(x), np.concatenate(y)
        keep = np.isfinite(x) & np.isfinite(y)
        sxx = float((x[keep] ** 2).sum())
        return float((x[keep] * y[keep]).sum() / sxx) if sxx > 0 else np.nan
    return slope


def _slopes(data: dict, at: dict, groups: dict, english: list, multi: list) -> dict:
    """Pooled within-group slope per encoder (gain points per unit of measured difficulty) and the
    English-only minus multilingual difference; jackknife-t over seeds (exact t for a difference of
    means, approximate for a ratio)."""
    members = [m for m in groups.values() if len(m) >= 2]
    if not members:
        return {}
    cuts = [len(m) for m in members]
    block = {e: np.concatenate([np.concatenate([D[:, [at[t] for t in m]], G[:, [at[t] for t in m]]], 1)
                                for m in members], 1) for e, (D, G) in data.items()}
    slope = _pooled_slope(cuts)
    width = 2 * sum(cuts)

    def est(B, stat, of):
        v, lo, hi, se, defined = stats.jackknife(B, stat)
        return stats.estimate(v[0], (lo[0], hi[0]), len(B), "seed", se=stats._num(se[0]), method="jackknife t",
                              defined=stats._num(defined[0]), of=of)
    out = {e: est(B, slope, "gain points per unit of difficulty within a group, pooled over "
                  f"{', '.join(g for g, m in groups.items() if len(m) >= 2)}") for e, B in block.items()}
    if english and multi:
        order = english + multi

        def contrast(B):
            r = [slope(B[:, i * width:(i + 1) * width]) for i in range(len(order))]
            return np.mean(r[:len(english)]) - np.mean(r[len(english):])
        out["english_only_minus_multilingual"] = est(
            np.concatenate([block[e] for e in order], 1), contrast,
            f"mean over English-only ({', '.join(english)}) - multilingual ({', '.join(multi)})")
    return out


def within_format(data: dict, tasks: list, groups: dict, english: list, multi: list) -> tuple[dict, list]:
    """data: {encoder: (difficulty, gain)}, each seeds x `tasks`; groups: {name: members easy -> hard}.
    Returns the record for analysis.json and the report's Markdown lines."""
    at = {t: j for j, t in enumerate(tasks)}
    named, groups = groups, {g: [t for t in members if t in at] for g, members in groups.items()}
    # a group whose easiest member was not collected is referred to its easiest collected one
    out = {"groups": {g: {"members": m, "reference": m[0] if m else None,
                          "missing": [t for t in named[g] if t not in at]} for g, m in groups.items()},
           "encoders": {}, "english_only_minus_multilingual": {}}
    contrasts, per_seed = [], {}
    for enc, (diff, gain) in data.items():
        per = out["encoders"][enc] = {}
        for g, members in groups.items():
            if len(members) < 2:
                continue
            J = [at[t] for t in members]
            G, D = gain[:, J], diff[:, J]
            rec = per[g] = {"difficulty": {t: stats.mean_estimate(D[:, k]) for k, t in enumerate(members)},
                            "difficulty_minus_reference": {}, "gain_minus_reference": {},
                            "order_holds": _order_share(D)}
            for k, t in enumerate(members[1:], 1):
                rec["difficulty_minus_reference"][t] = stats.paired_delta(D[:, k], D[:, 0])
                rec["gain_minus_reference"][t] = stats.paired_delta(G[:, k], G[:, 0])
                contrasts.append(rec["gain_minus_reference"][t])
                per_seed[(enc, g, t)] = G[:, k] - G[:, 0]
    n_members = sum(len(m) - 1 for m in groups.values() if len(m) >= 2)
    stats.adjust(contrasts, f"within-format gain contrasts, {len(data)} encoders x {n_members} harder members")
    diffs = []
    if english and multi:
        of = f"mean over English-only ({', '.join(english)}) - multilingual ({', '.join(multi)})"
        for (g, t) in dict.fromkeys((g, t) for (_, g, t) in per_seed):
            eng = np.mean([per_seed[(e, g, t)] for e in english], 0)   # a seed missing on one side: dropped
            mul = np.mean([per_seed[(e, g, t)] for e in multi], 0)
            d = out["english_only_minus_multilingual"].setdefault(g, {})[t] = {**stats.paired_delta(eng, mul), "of": of}
            diffs.append(d)
        stats.adjust(diffs, f"English-only - multilingual within-format gain contrasts, {len(diffs)} members")
    out["pooled_slope"] = _slopes(data, at, groups, english, multi)
    return out, _lines(out, groups)


def _lines(out: dict, groups: dict) -> list:
    lines = ["### Difficulty within a task format", "",   # after the script section's closing blank line
             "Each group's members share one task format, ordered easy → hard a priori (analysis.within_format). "
             "Gain − easiest = a member's zero-shot gain minus the group's easiest member's, same encoder and "
             "seed; difficulty − easiest likewise for the measured difficulty; 95% t intervals over seeds. Order "
             "holds = share of seeds in which the measured difficulty rises along the a-priori order (the "
             "manipulation check).", "",
             "| encoder | group | member | measured difficulty | difficulty − easiest | order holds | gain − easiest |",
             "|---|---|---|---:|---:|---:|---:|"]
    for enc, per in out["encoders"].items():
        for g, rec in per.items():
            o = rec["order_holds"]
            share = "–" if o["share"] is None else f"{o['share']:.2f} ({o['n']} seeds)"
            for k, t in enumerate(groups[g]):
                d = fmt(rec["difficulty"][t], 3)
                if k == 0:
                    lines.append(f"| {enc} | {g} | {t} (easiest) | {d} | | {share} | |")
                    continue
                gm = rec["gain_minus_reference"][t]
                lines.append(f"| {enc} | {g} | {t} | {d} | {fmt(rec['difficulty_minus_reference'][t], 3)} | "
                             f"| {fmt(gm)}{significance(gm)} |")
    diff = out["english_only_minus_multilingual"]
    if diff:
        of = next(iter(next(iter(diff.values())).values()))["of"]
        lines += ["", f"English-only − multilingual encoders' gain − easiest ({of}), paired by seed:", "",
                  "| group | member | English-only − multilingual |", "|---|---|---:|"]
        lines += [f"| {g} | {t} | {fmt(d)}{significance(d)} |" for g, per in diff.items() for t, d in per.items()]
    slopes = out["pooled_slope"]
    if slopes:
        lines += ["", f"Slope of gain on measured difficulty ({next(iter(slopes.values()))['of']}; each group "
                  "centred on its own means), jackknife-t over seeds: " +
                  "; ".join(f"{e.replace('_', ' ')} {fmt(v)}" for e, v in slopes.items()) + "."]
    return lines + ["", "\\* = different from 0 at 5% after Holm's adjustment over the gain − easiest contrasts of "
                    "every (encoder, group, member) (and, apart, over the English-only − multilingual differences).",
                    "", CAVEAT, ""]
