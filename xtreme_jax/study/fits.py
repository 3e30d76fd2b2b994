"""Curve fits of a study's results, each with bootstrap CIs on its parameters.

Data are a matrix Y (units x levels): one row per resampling unit (a seed; a seed x order chain),
one column per x level, NaN where a run is missing. A fit is made on the column means; the
bootstrap resamples rows (units keep their whole curve: runs of one seed share an intermediate
checkpoint, so their errors are correlated) and refits.

  loglinear    y = a + b ln x
  powerlaw     err = A x^-alpha          (err = 100 - score, in percent: a scaling law of the error)
  segmented    y = a + b1 x, slope b2 after the knee (continuous, knee by grid search; no knee,
               NaN, where two segments fit no better than one line)
  saturating   y = c - d exp(-x / tau)   (90% of the total rise reached at x = tau ln 10; NaN when
               the curve is flat or falls, and when that point lies beyond the largest x tested:
               a curve still rising at the end shows no saturation, and an extrapolated x90
               would be a threshold the data never saw)
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.optimize

from xtreme_jax.study import stats

# --------------------------------------------------------------------------- single fits


def _ok(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def loglinear(x, y) -> dict:
    x, y = _ok(x, y)
    if len(np.unique(x)) < 2:
        return {"a": math.nan, "b": math.nan}
    b, a = np.polyfit(np.log(x), y, 1)
    return {"a": float(a), "b": float(b)}


def powerlaw(x, err, floor: float = 1e-3) -> dict:
    """err = A x^-alpha by least squares in log-log space; errors at or below 0 are floored."""
    x, err = _ok(x, err)
    if len(np.unique(x)) < 2:
        return {"A": math.nan, "alpha": math.nan}
    slope, intercept = np.polyfit(np.log(x), np.log(np.maximum(err, floor)), 1)
    return {"A": float(math.exp(intercept)), "alpha": float(-slope)}


def loglinear_crossover(f1: dict, f2: dict) -> float:
    """x where two log-linear fits meet (NaN when parallel)."""
    db = f1["b"] - f2["b"]
    if not math.isfinite(db) or abs(db) < 1e-12:
        return math.nan
    with np.errstate(over="ignore"):
        return float(np.exp((f2["a"] - f1["a"]) / db))


def zero_crossing(f: dict) -> float:
    """x where a log-linear fit reaches 0 (NaN when flat)."""
    return loglinear_crossover(f, {"a": 0.0, "b": 0.0})


def segmented(x, y, grid: int = 100) -> dict:
    """Two straight lines meeting at the knee; knee searched over the interior of [min x, max x]
    (every candidate knee solved at once through its 3x3 normal equations)."""
    x, y = _ok(x, y)
    xs = np.unique(x)
    if len(xs) < 3:
        return {"knee": math.nan, "a": math.nan, "slope_before": math.nan, "slope_after": math.nan}
    knees = np.linspace(xs[0], xs[-1], grid + 2)[1:-1]
    design = np.stack([np.ones((len(knees), len(x))), np.broadcast_to(x, (len(knees), len(x))),
                       np.maximum(x[None] - knees[:, None], 0)], -1)           # (knees, n, 3)
    gram = np.einsum("kni,knj->kij", design, design) + 1e-9 * np.eye(3)
    coef = np.linalg.solve(gram, np.einsum("kni,n->ki", design, y)[..., None])[..., 0]
    sse = (((design @ coef[..., None])[..., 0] - y) ** 2).sum(1)
    i = int(np.argmin(sse))
    a, b, c = coef[i]
    # A straight (or flat) curve has no knee: every candidate fits it equally well, and the one the
    # search happens to return would be reported as a threshold that is not there.
    slope, intercept = np.polyfit(x, y, 1)
    sse_line = float(((intercept + slope * x - y) ** 2).sum())
    if sse_line - sse[i] <= 1e-9 * float(((y - y.mean()) ** 2).sum()) + 1e-12:
        return {"knee": math.nan, "a": float(intercept), "slope_before": float(slope), "slope_after": float(slope)}
    return {"knee": float(knees[i]), "a": float(a), "slope_before": float(b), "slope_after": float(b + c)}


def saturating(x, y, grid: int = 60) -> dict:
    """y = c - d exp(-x / tau). For a fixed tau, c and d are a linear least-squares problem, so
    tau is searched (log grid over [span/100, 100 span], every candidate solved at once, then
    refined by a bounded scalar minimization around the best); NaN with fewer than 3 x levels."""
    x, y = _ok(x, y)
    nan = {"c": math.nan, "d": math.nan, "tau": math.nan, "x90": math.nan}
    if len(np.unique(x)) < 3:
        return nan
    if float(((y - y.mean()) ** 2).sum()) <= 1e-12:  # flat: no rise, so no point where 90% of it is reached
        return dict(nan, c=float(y.mean()), d=0.0)
    span = max(float(np.ptp(x)), 1e-9)

    def solve(taus):
        taus = np.atleast_1d(taus)
        design = np.stack([np.ones((len(taus), len(x))), -np.exp(-x[None] / taus[:, None])], -1)
        gram = np.einsum("kni,knj->kij", design, design) + 1e-12 * np.eye(2)
        coef = np.linalg.solve(gram, np.einsum("kni,n->ki", design, y)[..., None])[..., 0]
        return coef, (((design @ coef[..., None])[..., 0] - y) ** 2).sum(1)

    taus = np.geomspace(span / 100, span * 100, grid)
    _, sse = solve(taus)
    i = int(np.argmin(sse))
    lo, hi = taus[max(i - 1, 0)], taus[min(i + 1, grid - 1)]
    best = scipy.optimize.minimize_scalar(lambda t: float(solve(t)[1][0]), bounds=(lo, hi), method="bounded",
                                          options={"xatol": 1e-6 * span})
    tau = float(best.x)
    (c, d), = solve(tau)[0]
    x90 = tau * math.log(10)
    within = d > 0 and x90 <= x.max() + 1e-9 * span  # rises, and saturates inside the data
    return {"c": float(c), "d": float(d), "tau": tau, "x90": x90 if within else math.nan}


# --------------------------------------------------------------------------- with bootstrap CIs

def fit_with_ci(x, Y, fit, *, unit: str = "seed", n_boot: int = stats.N_BOOT, seed: int = stats.SEED,
                derived=None, dists: dict | None = None) -> dict:
    """Fits `fit(x, column means of Y)` and bootstraps every parameter (and `derived`: extra
    name -> f(params) quantities such as a crossover) over the rows of Y. `dists`, if given, is
    filled with each parameter's bootstrap distribution (for plots)."""
    x = np.asarray(x, float)
    Y = np.atleast_2d(np.asarray(Y, float))
    names = list(fit(x, _colmean(Y)))
    derived = derived or {}

    def stat(rows):
        p = fit(x, _colmean(rows))
        return [p[n] for n in names] + [f(p) for f in derived.values()]

    value, (lo, hi), dist = stats.bootstrap([Y], stat, n_boot=n_boot, seed=seed)
    value, lo, hi = np.atleast_1d(value), np.atleast_1d(lo), np.atleast_1d(hi)
    out = {}
    for i, name in enumerate(names + list(derived)):
        col = dist[:, i] if dist.size else dist
        if dists is not None:
            dists[name] = col
        out[name] = stats.estimate(value[i], (lo[i], hi[i]), len(Y), unit,
                                   defined=stats.defined_fraction(col) if len(col) else None)
    return out


def _colmean(Y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column stays NaN
        return np.nanmean(Y, 0)


def band(x, Y, fit, predict, grid, *, n_boot: int = stats.N_BOOT, seed: int = stats.SEED):
    """Pointwise bootstrap band of a fitted curve on `grid`: (value, lo, hi) arrays."""
    x = np.asarray(x, float)
    Y = np.atleast_2d(np.asarray(Y, float))
    grid = np.asarray(grid, float)
    stat = lambda rows: predict(fit(x, _colmean(rows)), grid)  # noqa: E731
    value, (lo, hi), _ = stats.bootstrap([Y], stat, n_boot=n_boot, seed=seed)
    return np.atleast_1d(value), np.atleast_1d(lo), np.atleast_1d(hi)


def predict_loglinear(p, x):
    return p["a"] + p["b"] * np.log(np.asarray(x, float))


def predict_powerlaw(p, x):
    return p["A"] * np.asarray(x, float) ** -p["alpha"]


def first_where_ci_includes_zero(grid, lo, hi) -> float:
    """Smallest grid x whose interval [lo, hi] contains 0 (NaN if none)."""
    for g, l, h in zip(grid, lo, hi):
        if math.isfinite(l) and math.isfinite(h) and l <= 0 <= h:
            return float(g)
    return math.nan
