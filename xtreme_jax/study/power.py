"""Power before compute: what the planned seeds can detect in a study's headline estimand.

A study config names (config.power) the seed standard deviation of one run's zero-shot score
(`seed_sd`, points, with its `source`: the literature or a pilot point), how the headline contrast
is built from runs (`contrast_sd`: the contrast's SD per unit in units of seed_sd, e.g. sqrt(2)
for a with-minus-without gain of two runs; `units_per_seed`), and the effect it must detect
(`effect`, points). The test is the one the report makes: a two-sided t test over units at
`alpha`, so the numbers come from the noncentral t distribution, integrated (no normal approximation, which
is optimistic at 2-5 seeds).
"""
from __future__ import annotations

import math

import scipy.integrate
import scipy.optimize
import scipy.stats


# The seed SD the full-scale plans assume until a pilot measures one, and the tiny runs' order.
LITERATURE_SD = (1.0, "assumed: ~1 point of zero-shot accuracy between fine-tuning seeds, the order Keung et al. "
                      "2020 ('Don't Use English Dev') describe for XNLI/MLQA; measure a pilot and pass "
                      "--config.power.seed_sd=")
TINY_SD = (2.0, "assumed: the order of the seed spread in the tiny runs of 2026-12-02 (docs/studies.md)")


def configure(c, estimand: str, contrast_sd: float, *, effect: float, seeds: int, tiny_effect: float = 5.0):
    """A study config's power block: full scale gets `seeds`, what `effect` needs at LITERATURE_SD
    (plan prints the analysis, and warns when a changed SD or effect needs more)."""
    p = c.power
    p.estimand, p.contrast_sd = estimand, float(contrast_sd)
    if c.scale == "tiny":
        (p.seed_sd, p.source), p.effect = TINY_SD, tiny_effect
    else:
        (p.seed_sd, p.source), p.effect = LITERATURE_SD, effect
        c.seeds = tuple(range(seeds))


def power_of(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided one-sample t test over n units with SD sd against a true `effect`."""
    if n < 2 or sd <= 0:
        return math.nan
    df = n - 1
    nc = effect * math.sqrt(n) / sd
    crit = scipy.stats.t.ppf(1 - alpha / 2, df)
    # T = (Z + nc) / sqrt(V / df), V ~ chi2(df): integrated over V (scipy's nct is NaN at df = 1)
    def reject(v):
        c = crit * math.sqrt(v / df)
        return (scipy.stats.norm.sf(c - nc) + scipy.stats.norm.cdf(-c - nc)) * scipy.stats.chi2.pdf(v, df)
    return float(min(1.0, scipy.integrate.quad(reject, 0, math.inf, limit=200)[0]))


def mde(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable effect: the smallest true effect found with probability `power`."""
    if n < 2 or sd <= 0:
        return math.inf
    hi = sd
    while power_of(hi, sd, n, alpha) < power:   # bracket it (the noncentral t is NaN far out)
        hi *= 2
    return float(scipy.optimize.brentq(lambda d: power_of(d, sd, n, alpha) - power, 1e-9 * sd, hi))


def units_needed(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8, most: int = 1000) -> int:
    """Smallest number of units (>= 2) whose t test detects `effect` with probability `power`."""
    for n in range(2, most + 1):
        if power_of(effect, sd, n, alpha) >= power:
            return n
    return most


def analysis(study, hours: float) -> dict | None:
    """The headline's power at the planned seeds, or None when the study names no seed SD."""
    p = study.get("power")
    if p is None or not float(p.seed_sd):
        return None
    seeds, per = len(study.seeds), int(p.units_per_seed)
    sd = float(p.seed_sd) * float(p.contrast_sd)
    need = math.ceil(units_needed(float(p.effect), sd, p.alpha, p.power) / per)
    return {"estimand": p.estimand, "seed_sd": float(p.seed_sd), "source": p.source, "contrast_sd": sd,
            "units": seeds * per, "seeds": seeds, "effect": float(p.effect), "alpha": p.alpha, "power": p.power,
            "mde": mde(sd, seeds * per, p.alpha, p.power), "power_at_effect": power_of(float(p.effect), sd, seeds * per, p.alpha),
            "seeds_needed": need, "hours_at_needed": hours * need / seeds}


def lines(study, hours: float, accelerator: str) -> list[str]:
    a = analysis(study, hours)
    if a is None:
        return ["power: not computed (config.power.seed_sd is 0: name one, from the literature or a pilot)"]
    out = [f"power: headline {a['estimand']}: seed SD {a['seed_sd']:g} points ({a['source']}); contrast SD "
           f"{a['contrast_sd']:.3g} per unit; {a['units']} units ({a['seeds']} seeds); two-sided t test at "
           f"{a['alpha']:g}, {100 * a['power']:.0f}% power",
           f"  minimum detectable effect at the planned seeds: {a['mde']:.2f} points; power against the named effect "
           f"of {a['effect']:g} points: {100 * a['power_at_effect']:.0f}%",
           f"  seeds needed for {a['effect']:g} points: {a['seeds_needed']} (cost at that count: "
           f"{a['hours_at_needed']:.3g} {accelerator} accelerator-hours, the plan's cost scaled by seeds: an upper "
           "bound where a pretraining run is shared by every seed)"]
    if a["mde"] > a["effect"]:
        out.append(f"warning: the headline cannot detect the named effect: minimum detectable {a['mde']:.2f} > "
                   f"{a['effect']:g} points with {a['seeds']} seeds; {a['seeds_needed']} seeds are needed "
                   "(--config.seeds=, or name a larger effect with --config.power.effect=)")
    return out
