"""Curve fits of a study's results, each with an interval on its parameters.

Data are a matrix Y (units x levels): one row per unit (a seed; a seed x order chain), one column
per x level, NaN where a run is missing. A fit is made on the column means; its intervals are
jackknife-t over rows (units keep their whole curve: runs of one seed share an intermediate
checkpoint, so their errors are correlated), on the log scale for sizes (a crossover, a zero
crossing). For the linear fits the jackknife-t interval is the exact t interval of the slope.

  loglinear      y = a + b ln x
  powerlaw       err = A x^-alpha          (err = 100 - score, in percent: a scaling law of the error)
  powerlaw_floor err = E + A x^-alpha      (E: the error no amount of x removes; >= 4 levels)
  segmented      y = a + b1 x, slope b2 after the knee (continuous, knee by grid search)
  knee_test      segmented vs one straight line: a knee is reported only when the line is rejected
                 (sup-F over the knee grid, null distribution simulated; "no knee" otherwise), with
                 the knees the data do not reject as its interval (profile F)
  saturating     y = c - d exp(-x / tau)   (90% of the total rise reached at x = tau ln 10; NaN when
                 the curve is flat or falls, and when that point lies beyond the largest x tested:
                 a curve still rising at the end shows no saturation, and an extrapolated x90
                 would be a threshold the data never saw)
"""
from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import scipy.optimize
import scipy.stats

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


def powerlaw_floor(x, err, grid: int = 60) -> dict:
    """err = E + A x^-alpha: for a fixed floor E the rest is a log-log line, so E is searched over
    [0, min err) and the least-squares fit (in err, not in log err) kept."""
    x, err = _ok(x, err)
    if len(np.unique(x)) < 4 or np.min(err) <= 0:
        return {"A": math.nan, "alpha": math.nan, "floor": math.nan}
    best = None
    for E in np.linspace(0, np.min(err), grid, endpoint=False):
        slope, intercept = np.polyfit(np.log(x), np.log(err - E), 1)
        sse = float(((E + np.exp(intercept) * x ** slope - err) ** 2).sum())
        if best is None or sse < best[0]:
            best = (sse, E, math.exp(intercept), -slope)
    return {"A": float(best[2]), "alpha": float(best[3]), "floor": float(best[1])}


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


# --------------------------------------------------------------------------- knee by model comparison

def _hat(design):
    return design @ np.linalg.pinv(design)


@functools.lru_cache(maxsize=32)
def _null_sup_f(x: tuple, df: int, grid: int, n_null: int, seed: int) -> np.ndarray:
    """sup-F over the knee grid for noise on a straight line (depends on the design only: cached)."""
    x = np.asarray(x, float)
    L = len(x)
    ones = np.ones(L)
    h_line = _hat(np.stack([ones, x], 1))
    knees = np.linspace(x.min(), x.max(), grid + 2)[1:-1]
    M = np.stack([_hat(np.stack([ones, x, np.maximum(x - k, 0)], 1)) - h_line for k in knees])
    rng = np.random.Generator(np.random.PCG64(seed))
    z = rng.standard_normal((n_null, L))
    chi = rng.chisquare(df, n_null) / df
    return np.einsum("sl,klm,sm->sk", z, M, z).max(1) / (2 * chi)


def knee_test(x, Y, *, grid: int = 100, n_null: int = 4000, seed: int = stats.SEED, alpha: float = 0.05) -> dict:
    """Is there a knee? Segmented (two slopes) against one straight line on the units x levels Y.

    Unit offsets are removed (two-way residuals), which gives the noise of the mean curve from the
    units themselves: s^2 = residual mean square / units, df = (units - 1)(levels - 1). The test
    statistic is the largest F = (RSS_line - RSS_segmented(knee)) / (2 s^2) over the knee grid; a
    grid search makes it larger than an F(2, df), so its null distribution is simulated (Gaussian
    noise on a line: F does not depend on the line or on the noise level). A knee is reported only
    when p < alpha; its interval is the set of knees whose RSS the data do not reject against the
    best one (profile F(1, df) at 95%, the hull of that set)."""
    x = np.asarray(x, float)
    Y = np.atleast_2d(np.asarray(Y, float))
    Y = Y[np.isfinite(Y).all(1)]
    U, L = Y.shape
    out = {"tested": False, "knee": stats.estimate(math.nan, (math.nan, math.nan), U, "seed x order"),
           "p_line": None, "units": U}
    if U < 2 or L < 4:
        return dict(out, reason=f"needs >= 2 complete units and >= 4 levels (have {U} x {L})")
    ybar = Y.mean(0)
    resid = Y - Y.mean(1, keepdims=True) - ybar + Y.mean()
    df = (U - 1) * (L - 1)
    s2 = float((resid ** 2).sum()) / df / U
    knees = np.linspace(x.min(), x.max(), grid + 2)[1:-1]
    ones = np.ones(L)
    h_line = _hat(np.stack([ones, x], 1))
    M = np.stack([_hat(np.stack([ones, x, np.maximum(x - k, 0)], 1)) - h_line for k in knees])   # (K, L, L)
    gain = np.einsum("l,klm,m->k", ybar, M, ybar)                 # RSS_line - RSS_segmented, per knee
    scale = float(((ybar - ybar.mean()) ** 2).sum()) + 1e-300
    best = int(np.argmax(gain))
    if s2 <= 1e-12 * scale:   # no noise at all (a noise-free curve): the data decide exactly
        p = 0.0 if gain[best] > 1e-9 * scale else 1.0
        inside = knees[gain >= gain[best] - 1e-9 * scale]
    else:
        f_null = _null_sup_f(tuple(x), df, grid, n_null, seed)
        f_obs = gain[best] / (2 * s2)
        p = float((1 + np.sum(f_null >= f_obs)) / (n_null + 1))
        inside = knees[(gain[best] - gain) / s2 <= scipy.stats.f.ppf(0.95, 1, df)]
    seg = segmented(x, ybar, grid)
    out.update(tested=True, p_line=p, df=df, statistic="sup-F, simulated null",
               slope_line=float(np.polyfit(x, ybar, 1)[0]))
    if p >= alpha:
        return dict(out, verdict=f"no knee: one straight line is not rejected (p = {p:.3g})")
    k = float(knees[best])
    return dict(out, knee=stats.estimate(k, (inside.min(), inside.max()), U, "seed x order", method="profile F"),
                slope_before=seg["slope_before"], slope_after=seg["slope_after"],
                verdict=f"knee at {k:.3g} (line rejected, p = {p:.3g})")


# --------------------------------------------------------------------------- with intervals

def fit_with_ci(x, Y, fit, *, unit: str = "seed", derived=None, positive=()) -> dict:
    """Fits `fit(x, column means of Y)`; every parameter (and `derived`: extra name -> f(params)
    quantities such as a crossover) gets a jackknife-t interval over the rows of Y, on the log
    scale for the names in `positive`."""
    x = np.asarray(x, float)
    Y = np.atleast_2d(np.asarray(Y, float))
    names = list(fit(x, _colmean(Y)))
    derived = derived or {}
    every = names + list(derived)

    def stat(rows):
        p = fit(x, _colmean(rows))
        return [p[n] for n in names] + [f(p) for f in derived.values()]

    value, lo, hi, se, defined = stats.jackknife(Y, stat, log=[n in positive for n in every])
    return {name: stats.estimate(value[i], (lo[i], hi[i]), len(Y), unit, se=stats._num(se[i]),
                                 df=len(Y) - 1 if len(Y) > 1 else None, defined=stats._num(defined[i]),
                                 method="jackknife t" + (" (log scale)" if name in positive else ""))
            for i, name in enumerate(every)}


def _colmean(Y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column stays NaN
        return np.nanmean(Y, 0)


def band(x, Y, fit, predict, grid, *, level: float = stats.LEVEL):
    """Pointwise jackknife-t band of a fitted curve on `grid`: (value, lo, hi, se) arrays."""
    x = np.asarray(x, float)
    Y = np.atleast_2d(np.asarray(Y, float))
    grid = np.asarray(grid, float)
    value, lo, hi, se, _ = stats.jackknife(Y, lambda rows: predict(fit(x, _colmean(rows)), grid), level=level)
    return value, lo, hi, se


def predict_loglinear(p, x):
    return p["a"] + p["b"] * np.log(np.asarray(x, float))
