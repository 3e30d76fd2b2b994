"""Statistics of a study: percentile bootstrap, paired deltas, rank correlation and its stability.

Every estimate is a dict {"value", "ci95": [lo, hi], "n", "unit", ...}: `n` is the number of
resampled units and `unit` says what was resampled (seeds, test examples, seed x order chains).
One resampler serves every estimate: indices drawn with numpy's Generator(PCG64(seed)), the
statistic recomputed on each resample, the CI the 2.5 / 97.5 percentiles of the resamples
(resamples where the statistic is undefined, NaN, are dropped and counted in "defined").
A fixed seed makes every number in a report reproducible.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.stats

N_BOOT = 2000
SEED = 0
LEVEL = 0.95


def estimate(value, ci, n: int, unit: str, **extra) -> dict:
    return {"value": _num(value), "ci95": [_num(ci[0]), _num(ci[1])], "n": int(n), "unit": unit, **extra}


def _num(x):
    x = float(x)
    return x if math.isfinite(x) else None


def bootstrap(samples, statistic, *, n_boot: int = N_BOOT, seed: int = SEED, paired: bool = True,
              vectorized: bool = False):
    """(value, (lo, hi), distribution) of statistic(*samples) under resampling along axis 0.

    samples: arrays whose first axis is the resampling unit. paired=True draws one index set for
    all of them (units shared across samples: the same seeds, the same test examples); False
    resamples each on its own (independent groups). The statistic may return a scalar or a
    vector (then lo, hi and each row of the distribution are vectors). Fewer than 2 units: no
    interval (NaN). vectorized=True (paired only): statistic takes samples with a leading
    resample axis (B, units, ...) and returns B values; resamples go through it in chunks.
    """
    samples = [np.asarray(s, float) for s in samples]
    value = np.asarray(statistic(*samples), float)
    sizes = [len(s) for s in samples]
    if min(sizes) < 2:
        nan = np.full(value.shape, math.nan)
        return _scalar(value), (_scalar(nan), _scalar(nan)), np.empty((0,) + value.shape)
    if paired and len(set(sizes)) != 1:
        raise ValueError(f"paired bootstrap needs equal unit counts, got {sizes}")
    rng = np.random.Generator(np.random.PCG64(seed))
    dist = np.empty((n_boot,) + value.shape)
    if vectorized and paired:
        n = sizes[0]
        chunk = max(1, min(n_boot, 2 ** 22 // max(1, samples[0].size)))  # bounded memory per chunk
        for b in range(0, n_boot, chunk):
            idx = rng.integers(0, n, (min(chunk, n_boot - b), n))
            dist[b:b + len(idx)] = statistic(*(s[idx] for s in samples))
        lo, hi = percentile_ci(dist)
        return _scalar(value), (_scalar(lo), _scalar(hi)), dist
    for b in range(n_boot):
        if paired:
            idx = rng.integers(0, sizes[0], sizes[0])
            dist[b] = statistic(*(s[idx] for s in samples))
        else:
            dist[b] = statistic(*(s[rng.integers(0, len(s), len(s))] for s in samples))
    lo, hi = percentile_ci(dist)
    return _scalar(value), (_scalar(lo), _scalar(hi)), dist


def _scalar(x):
    x = np.asarray(x, float)
    return float(x) if x.ndim == 0 else x


def percentile_ci(dist, level: float = LEVEL):
    """Percentile interval along axis 0, ignoring NaN resamples (NaN where none is defined)."""
    d = np.asarray(dist, float)
    a = (1 - level) / 2
    lo, hi = np.full(d.shape[1:], math.nan), np.full(d.shape[1:], math.nan)
    ok = np.isfinite(d).any(0)
    if np.any(ok):
        with np.errstate(all="ignore"):
            q = np.nanpercentile(d[:, ok] if d.ndim > 1 else d, [100 * a, 100 * (1 - a)], axis=0)
        lo[ok], hi[ok] = q[0], q[1]
    return _scalar(lo), _scalar(hi)


def defined_fraction(dist) -> float:
    """Share of resamples where the statistic was defined (finite)."""
    d = np.asarray(dist, float)
    return float(np.mean(np.isfinite(d))) if d.size else math.nan


# --------------------------------------------------------------------------- means and deltas

def mean_estimate(values, unit: str = "seed", **kw) -> dict:
    """Mean over units (NaN units, e.g. a failed run, left out) with its bootstrap CI and std."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if not len(v):
        return estimate(math.nan, (math.nan, math.nan), 0, unit, std=None)
    value, ci, _ = bootstrap([v], lambda x: x.mean(axis=-1), vectorized=True, **kw)
    return estimate(value, ci, len(v), unit, std=_num(np.std(v, ddof=1)) if len(v) > 1 else None)


def paired_delta(a, b, unit: str = "seed", **kw) -> dict:
    """Mean of a - b over paired units (rows with a NaN on either side are dropped)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    keep = np.isfinite(a) & np.isfinite(b)
    return mean_estimate(a[keep] - b[keep], unit, **kw)


def paired_examples(correct_a, correct_b, **kw) -> dict:
    """Score difference (percent) of two systems on the same test examples, CI by resampling
    examples. correct_*: (examples,) or (seeds, examples) 0/1 (or per-example scores); with
    several seeds each resample keeps all seeds and averages them (the examples are the unit)."""
    a = np.atleast_2d(np.asarray(correct_a, float)).T  # (examples, seeds)
    b = np.atleast_2d(np.asarray(correct_b, float)).T
    if a.shape != b.shape:
        raise ValueError(f"paired examples need the same examples and seeds, got {a.shape} vs {b.shape}")
    value, ci, _ = bootstrap([a, b], lambda x, y: 100 * (x.mean(axis=(-2, -1)) - y.mean(axis=(-2, -1))),
                             vectorized=True, **kw)
    return estimate(value, ci, a.shape[0], "test example", seeds=a.shape[1])


# --------------------------------------------------------------------------- ranks

def spearman(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return math.nan
    return float(scipy.stats.spearmanr(x[keep], y[keep]).statistic)


def spearman_estimate(x_units, y_units, unit: str = "seed", **kw) -> dict:
    """Spearman correlation across items of the unit-averaged x and y; x_units, y_units:
    (units, items). The CI resamples units (seeds), keeping each unit's items together."""
    x, y = np.asarray(x_units, float), np.asarray(y_units, float)
    stat = lambda a, b: spearman(np.nanmean(a, 0), np.nanmean(b, 0))  # noqa: E731
    value, ci, dist = bootstrap([x, y], stat, **kw)
    return estimate(value, ci, len(x), unit, items=x.shape[1], defined=defined_fraction(dist))


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


def ranking_stability(scores, unit: str = "seed", **kw) -> dict:
    """How stable the ranking of items (columns) is across units (rows, e.g. seeds).

    Headline: leave-one-unit-out agreement, the Spearman correlation between one unit's scores
    and the mean of the other units' scores, averaged over units (CI: bootstrap of those
    per-unit values). Kendall's W over all units and Friedman's p (are the items ranked
    consistently at all?) are reported beside it. Bootstrapping W itself over units would count
    a unit drawn twice as perfect agreement, so it gets no interval.
    """
    s = np.asarray(scores, float)
    m = len(s)
    loo = [spearman(s[i], np.nanmean(np.delete(s, i, 0), 0)) for i in range(m)] if m > 1 else []
    est = mean_estimate(loo, unit, **kw)
    w = kendall_w(s) if np.isfinite(s).all() else math.nan
    p = math.nan
    if m >= 2 and s.shape[1] >= 3 and np.isfinite(s).all():
        p = float(scipy.stats.friedmanchisquare(*s.T).pvalue)
    return {**est, "measure": "leave-one-out Spearman", "kendall_w": _num(w), "friedman_p": _num(p)}
