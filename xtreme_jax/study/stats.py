"""Statistics of a study: intervals over seeds, over seeds and test items, multiple comparisons,
equivalence, rank correlation and its stability.

Every estimate is a dict {"value", "ci95": [lo, hi], "n", "unit", "method", ...}: `n` is the number
of units and `unit` says what they are (seeds, seed x order chains, test items). The intervals are
the ones whose coverage tests/test_study_calibration.py measures at the studies' unit counts:

- a mean over seeds: Student's t interval, mean +- t(n-1) s / sqrt(n). A percentile bootstrap over
  2-5 seeds covers the mean 50-84% of the time at "95%" (at 3 seeds it is about [min, max]);
- any other statistic of units (a fitted slope, an exponent, a crossover): a jackknife-t interval,
  value +- t(n-1) se_jackknife, on the log scale for positive quantities; for a mean or a linear
  least-squares fit it equals the exact t interval;
- a gain measured on test items (per-example predictions): two levels, seeds and items (items are
  clustered across languages: translations share item ids, so an item id is resampled once for
  every language), see `two_level_gain`;
- p-values are two-sided t tests against 0; `holm` adjusts a family of them (Holm 1979: family-wise
  error at 5%); `tost` tests equivalence to 0 within a stated margin (two one-sided t tests).
The item-level bootstrap uses numpy's Generator(PCG64(SEED)), so every number in a report is
reproducible.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.stats

N_BOOT = 2000
SEED = 0
LEVEL = 0.95


def estimate(value, ci, n: int, unit: str, **extra) -> dict:
    return {"value": _num(value), "ci95": [_num(ci[0]), _num(ci[1])], "n": int(n), "unit": unit, **extra}


def _num(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def t_quantile(df, level: float = LEVEL) -> float:
    return float(scipy.stats.t.ppf(0.5 + level / 2, df))


def t_pvalue(value, se, df) -> float:
    """Two-sided p of a t test of value = 0 (se = 0: 0 unless the value is 0 itself)."""
    if not (math.isfinite(value) and math.isfinite(se) and df and df > 0):
        return math.nan
    if se == 0:
        return 1.0 if value == 0 else 0.0
    return float(2 * scipy.stats.t.sf(abs(value) / se, df))


# --------------------------------------------------------------------------- over seeds

def mean_estimate(values, unit: str = "seed", level: float = LEVEL) -> dict:
    """Mean over units (NaN units, e.g. a failed run, left out) with its t interval, std, se, df and
    the p of a t test against 0."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    n = len(v)
    if not n:
        return estimate(math.nan, (math.nan, math.nan), 0, unit, std=None, se=None, df=None, p=None, method="t")
    m = float(v.mean())
    if n < 2:
        return estimate(m, (math.nan, math.nan), 1, unit, std=None, se=None, df=None, p=None, method="t")
    s = float(v.std(ddof=1))
    se = s / math.sqrt(n)
    h = t_quantile(n - 1, level) * se
    return estimate(m, (m - h, m + h), n, unit, std=s, se=se, df=n - 1, p=_num(t_pvalue(m, se, n - 1)), method="t")


def paired_delta(a, b, unit: str = "seed") -> dict:
    """Mean of a - b over paired units (rows with a NaN on either side are dropped)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    keep = np.isfinite(a) & np.isfinite(b)
    return mean_estimate(a[keep] - b[keep], unit)


def jackknife(Y, statistic, *, log: bool = False, level: float = LEVEL):
    """(value, lo, hi, se, defined) of statistic(Y) over the rows (units) of Y: leave-one-unit-out
    values give the jackknife standard error, the interval is value +- t(n-1) se (log scale when
    `log`, a bool or one per component: positive quantities such as a crossover size). The
    statistic may return a vector."""
    Y = np.asarray(Y, float)
    value = np.atleast_1d(np.asarray(statistic(Y), float))
    n = len(Y)
    nan = np.full(value.shape, math.nan)
    if n < 2:
        return value, nan, nan, nan, nan
    loo = np.array([np.atleast_1d(np.asarray(statistic(np.delete(Y, i, 0)), float)) for i in range(n)])
    mask = np.broadcast_to(np.asarray(log, bool), value.shape)
    with np.errstate(all="ignore"):
        tv = np.where(mask, np.log(np.where(value > 0, value, math.nan)), value)
        tl = np.where(mask, np.log(np.where(loo > 0, loo, math.nan)), loo)
        defined = np.isfinite(tl).mean(0)
        se = np.sqrt((n - 1) / n * ((tl - tl.mean(0)) ** 2).sum(0))
        h = t_quantile(n - 1, level) * se
        lo = np.where(mask, np.exp(tv - h), tv - h)
        hi = np.where(mask, np.exp(tv + h), tv + h)
        se = np.where(mask, se * value, se)     # on the value's own scale (delta method)
    return value, lo, hi, se, defined


# --------------------------------------------------------------------------- seeds x test items

def two_level_gain(correct_a, correct_b, *, n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL) -> dict:
    """Score difference (points) of two systems on the same test items, with an interval over seeds
    and over items. correct_*: one array (seeds, items) per language of 0/1 (or per-item scores);
    seed s of A is paired with seed s of B (same seed, same encoder).

    Two variance terms: seeds, the spread of the per-seed gains (s^2 / S; the items are the same for
    every seed, so this is the run-to-run variance the old per-example interval left out), and items,
    a cluster bootstrap of the seed-averaged per-item gains. When every language has the same number
    of items (XNLI, PAWS-X, XCOPA: translations of one item list, aligned by position) an item id is
    one cluster, resampled once for all languages; otherwise (language, item) is. The interval is
    value +- t(seeds - 1) sqrt(var_seeds + var_items): conservative where the item term is large
    (df of the seed term alone; Welch-Satterthwaite's df, estimated from 2-3 seeds, covered 89-91%
    in tests/test_study_calibration.py when the seed term dominates), and the seed x item
    interaction enters both terms. With one seed there is no seed
    term: no interval, the item-only one is given apart (`ci95_items_only`)."""
    a = [np.atleast_2d(np.asarray(x, float)) for x in correct_a]
    b = [np.atleast_2d(np.asarray(x, float)) for x in correct_b]
    if [x.shape for x in a] != [x.shape for x in b] or not a:
        raise ValueError(f"paired items need the same seeds and items per language, got "
                         f"{[x.shape for x in a]} vs {[x.shape for x in b]}")
    seeds = a[0].shape[0]
    if any(x.shape[0] != seeds for x in a):
        raise ValueError("every language needs the same seeds")
    D = [100 * (x - y) for x, y in zip(a, b)]                      # (seeds, items) per language
    aligned = len({d.shape[1] for d in D}) == 1
    per_seed = np.mean([d.mean(1) for d in D], 0) if aligned else np.concatenate(D, 1).mean(1)
    value = float(per_seed.mean())
    items = np.mean(D, 0).mean(0) if aligned else np.concatenate(D, 1).mean(0)  # seed-averaged, per cluster
    rng = np.random.Generator(np.random.PCG64(seed))
    k = len(items)
    var_items = float(np.var(items[rng.integers(0, k, (n_boot, k))].mean(1), ddof=1))
    extra = dict(unit="seed x test item", languages=len(D), items=k, seeds=seeds,
                 clusters="item id across languages" if aligned else "language x item",
                 method="two-level: t(seeds - 1) over seeds + cluster bootstrap over items")
    z = t_quantile(k - 1, level) * math.sqrt(var_items)
    if seeds < 2:
        return estimate(value, (math.nan, math.nan), seeds, se=None, df=None, p=None,
                        ci95_items_only=[value - z, value + z], **extra)
    var_seeds = float(per_seed.var(ddof=1)) / seeds
    se = math.sqrt(var_seeds + var_items)
    df = seeds - 1   # the Welch lower bound: Satterthwaite's df from 2-3 seeds under-covers (0.89-0.91 measured)
    h = t_quantile(df, level) * se
    return estimate(value, (value - h, value + h), seeds, se=se, df=df, p=_num(t_pvalue(value, se, df)),
                    se_seeds=math.sqrt(var_seeds), se_items=math.sqrt(var_items), **extra)


# --------------------------------------------------------------------------- families, equivalence

def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and does not count in the family)."""
    p = np.asarray(pvalues, float)
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def adjust(estimates: list, family: str) -> list:
    """Adds Holm-adjusted p (`p_holm`) and the family's name and size to each estimate, in place."""
    ps = [e.get("p") if e.get("p") is not None else math.nan for e in estimates]
    m = int(np.isfinite(ps).sum())
    for e, q in zip(estimates, holm(ps)):
        e["p_holm"] = _num(q)
        e["family"] = f"{family} ({m} tests, Holm)"
    return estimates


def tost(e: dict, margin: float, alpha: float = 0.05) -> dict:
    """Equivalence of an estimate to 0 within +-margin by two one-sided t tests (Schuirmann 1987):
    equivalent at level alpha when the (1 - 2 alpha) t interval lies inside (-margin, margin).
    An interval that merely includes 0 says nothing of the kind (few seeds: wide, includes 0)."""
    v, se, df = e.get("value"), e.get("se"), e.get("df")
    if v is None or se is None or not df:
        return {"equivalent": None, "p": None, "margin": margin, "ci90": [None, None]}
    if se == 0:
        return {"equivalent": abs(v) < margin, "p": 0.0 if abs(v) < margin else 1.0, "margin": margin,
                "ci90": [v, v]}
    p = max(float(scipy.stats.t.sf((v + margin) / se, df)), float(scipy.stats.t.cdf((v - margin) / se, df)))
    h = float(scipy.stats.t.ppf(1 - alpha, df)) * se
    return {"equivalent": bool(p < alpha), "p": p, "margin": margin, "ci90": [v - h, v + h]}


# --------------------------------------------------------------------------- ranks

def spearman(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return math.nan
    return float(scipy.stats.spearmanr(x[keep], y[keep]).statistic)


def _nanmean0(a):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # an all-NaN column stays NaN
        return np.nanmean(a, 0)


def _z(r):
    return np.arctanh(np.clip(r, -0.995, 0.995))


def spearman_estimate(x_units, y_units, unit: str = "seed") -> dict:
    """Spearman correlation across items of the unit-averaged x and y; x_units, y_units:
    (units, items). Jackknife-t over units on Fisher's z (r clipped to +-0.995), so the interval
    is about the seeds' noise; the items (tasks) are the fixed set the study chose."""
    x, y = np.asarray(x_units, float), np.asarray(y_units, float)
    both = np.concatenate([x, y], 1)
    k = x.shape[1]
    r = spearman(_nanmean0(x), _nanmean0(y))
    _, lo, hi, se, defined = jackknife(both, lambda B: _z(spearman(_nanmean0(B[:, :k]), _nanmean0(B[:, k:]))))
    ci = (r, r) if not se[0] > 1e-9 else (np.tanh(lo[0]), np.tanh(hi[0]))   # every seed agrees: no spread
    return estimate(r, ci, len(x), unit, items=k, defined=_num(defined[0]),
                    method="jackknife t on Fisher z")


def kendall_w(scores) -> float:
    """Kendall's coefficient of concordance of the item rankings given by each row (rater):
    1 = every row ranks the items the same way, 0 = no agreement. No tie correction."""
    s = np.asarray(scores, float)
    m, n = s.shape
    if m < 2 or n < 2:
        return math.nan
    ranks = np.vstack([scipy.stats.rankdata(r) for r in s])
    total = ranks.sum(0)
    return float(12 * ((total - total.mean()) ** 2).sum() / (m ** 2 * (n ** 3 - n)))


def ranking_stability(scores, unit: str = "seed") -> dict:
    """How stable the ranking of items (columns) is across units (rows, e.g. seeds).

    Headline: leave-one-unit-out agreement, the Spearman correlation between one unit's scores
    and the mean of the other units' scores, averaged over units (t interval over those per-unit
    values). Kendall's W over all units and Friedman's p (are the items ranked consistently at
    all?) are reported beside it.
    """
    s = np.asarray(scores, float)
    m = len(s)
    loo = [spearman(s[i], _nanmean0(np.delete(s, i, 0))) for i in range(m)] if m > 1 else []
    # the t interval on Fisher's z, back-transformed: a correlation's interval stays in [-1, 1]
    # (on r itself, 3 seeds gave 0.87 [0.58, 1.15])
    r = np.asarray(loo, float)
    est = mean_estimate(_z(r), unit)                 # its std / se / p are on the z scale
    value = float(np.nanmean(r)) if np.isfinite(r).any() else math.nan
    lo, hi = est["ci95"]
    if lo is not None and est["se"] > 1e-12:
        ci = [np.tanh(lo), np.tanh(hi)]
    else:                                            # one unit: none; every unit agrees: no spread
        ci = [math.nan, math.nan] if lo is None and est["n"] < 2 else [value, value]
    est.update(value=_num(value), ci95=[_num(c) for c in ci], method="t on Fisher z")
    w = kendall_w(s) if np.isfinite(s).all() else math.nan
    p = math.nan
    if m >= 2 and s.shape[1] >= 3 and np.isfinite(s).all():
        p = float(scipy.stats.friedmanchisquare(*s.T).pvalue)
    return {**est, "measure": "leave-one-out Spearman", "kendall_w": _num(w), "friedman_p": _num(p)}
