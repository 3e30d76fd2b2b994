"""Study 2 at full scale: difficulty varied within one task format (analysis.within_format: groups of
intermediate tasks, each ordered easy -> hard a priori: ANLI R1/R2/R3, SWAG/HellaSwag, MNLI easy/hard).

Per encoder and group: (a) each harder member's zero-shot gain minus the easiest member's, paired by
seed; (b) the manipulation check: the measured difficulty of each member and the share of seeds in
which it rises along the a-priori order; (c) English-only minus multilingual encoders' contrasts,
paired by seed. Within a group the format is fixed, so a contrast is about difficulty (and whatever
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


def within_format(data: dict, tasks: list, groups: dict, english: list, multi: list) -> tuple[dict, list]:
    """data: {encoder: (difficulty, gain)}, each seeds x `tasks`; groups: {name: members easy -> hard}.
    Returns the record for analysis.json and the report's Markdown lines."""
    at = {t: j for j, t in enumerate(tasks)}
    groups = {g: [t for t in members if t in at] for g, members in groups.items()}
    out = {"groups": {g: {"members": m, "reference": m[0] if m else None} for g, m in groups.items()},
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
    return lines + ["", "\\* = different from 0 at 5% after Holm's adjustment over the gain − easiest contrasts of "
                    "every (encoder, group, member) (and, apart, over the English-only − multilingual differences).",
                    "", CAVEAT, ""]
