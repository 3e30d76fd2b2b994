"""Study statistics and fits against hand-computed cases and synthetic data with known answers."""
import math

import numpy as np
import pytest
import scipy.stats

from xtreme_jax.study import fits, stats


def test_mean_estimate_constant_single_and_missing():
    assert stats.mean_estimate([2.0, 2.0, 2.0]) == {"value": 2.0, "ci95": [2.0, 2.0], "n": 3, "unit": "seed",
                                                     "std": 0.0, "se": 0.0, "df": 2, "p": 0.0, "method": "t"}
    one = stats.mean_estimate([5.0])
    assert one["value"] == 5.0 and one["ci95"] == [None, None] and one["n"] == 1
    # a failed run (NaN) is left out, not averaged as 0
    assert stats.mean_estimate([1.0, float("nan"), 3.0])["value"] == 2.0
    # the t interval of [1, 2, 3, 4]: 2.5 +- t(3, 0.975) * s / 2
    e = stats.mean_estimate([1.0, 2.0, 3.0, 4.0])
    h = 3.182446305284263 * np.std([1, 2, 3, 4], ddof=1) / 2
    assert e["value"] == 2.5 and e["ci95"] == pytest.approx([2.5 - h, 2.5 + h])
    assert e["std"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1)) and e["p"] == pytest.approx(scipy.stats.ttest_1samp([1, 2, 3, 4], 0).pvalue)


def test_paired_delta_jackknife_and_equivalence():
    d = stats.paired_delta([3.0, 5.0, float("nan")], [1.0, 2.0, 0.0])
    assert d["value"] == 2.5 and d["n"] == 2
    # the jackknife-t interval of a mean is the t interval itself
    Y = np.array([[1.0, 4.0], [2.0, 7.0], [6.0, 5.0]])
    v, lo, hi, se, defined = stats.jackknife(Y, lambda r: r.mean(0))
    t = [stats.mean_estimate(Y[:, j]) for j in range(2)]
    assert lo == pytest.approx([e["ci95"][0] for e in t]) and hi == pytest.approx([e["ci95"][1] for e in t])
    assert defined.tolist() == [1.0, 1.0]
    # positive quantities on the log scale: the interval of a constant ratio collapses on it
    v, lo, hi, _, _ = stats.jackknife(np.array([[2.0], [2.0]]), lambda r: r.mean(0), log=True)
    assert (lo[0], hi[0]) == pytest.approx((2.0, 2.0))
    # TOST: equivalence needs the 90% interval inside the margin, not an interval that includes 0
    wide = stats.mean_estimate([-3.0, 3.0, 0.5])
    assert wide["ci95"][0] < 0 < wide["ci95"][1] and stats.tost(wide, 1.0)["equivalent"] is False
    tight = stats.mean_estimate([0.1, -0.1, 0.05, 0.0, -0.05])
    q = stats.tost(tight, 1.0)
    assert q["equivalent"] is True and q["p"] < 0.001 and -1 < q["ci90"][0] < q["ci90"][1] < 1
    assert stats.tost(stats.mean_estimate([1.0]), 1.0)["equivalent"] is None


def test_rank_statistics():
    assert stats.kendall_w([[1, 2, 3], [1, 2, 3], [1, 2, 3]]) == pytest.approx(1.0)
    assert stats.kendall_w([[1, 2, 3], [3, 2, 1]]) == pytest.approx(0.0)
    same = stats.ranking_stability([[1, 2, 3, 4]] * 3)
    assert same["value"] == pytest.approx(1.0) and same["ci95"] == pytest.approx([1.0, 1.0])
    assert same["kendall_w"] == pytest.approx(1.0)
    x = [[1, 2, 3, 4, 5]] * 3
    e = stats.spearman_estimate(x, [[2, 4, 6, 8, 10], [1, 3, 5, 7, 9], [0, 5, 6, 7, 20]])
    assert e["value"] == pytest.approx(1.0) and e["ci95"] == pytest.approx([1.0, 1.0]) and e["items"] == 5
    e = stats.spearman_estimate(x, [[5, 4, 3, 2, 1]] * 3)
    assert e["value"] == pytest.approx(-1.0)
    assert math.isnan(stats.spearman([1, 1, 1], [1, 2, 3]))  # undefined, not 0


def test_fits_recover_known_parameters():
    x = np.array([100, 300, 1000, 3000, 10000, 30000.0])
    p = fits.powerlaw(x, 40 * x ** -0.3)
    assert p["alpha"] == pytest.approx(0.3) and p["A"] == pytest.approx(40)
    f1, f2 = fits.loglinear(x, 10 + 5 * np.log(x)), fits.loglinear(x, 40 + 2 * np.log(x))
    assert (f1["a"], f1["b"]) == pytest.approx((10, 5))
    assert fits.loglinear_crossover(f1, f2) == pytest.approx(math.exp(10))  # 10 + 5l = 40 + 2l
    assert fits.zero_crossing(fits.loglinear(x, 6 - 2 * np.log(x))) == pytest.approx(math.exp(3))
    k = np.arange(0, 7.0)
    s = fits.segmented(k, 50 + 4 * np.minimum(k, 2.5) + 0.5 * np.maximum(k - 2.5, 0))
    assert s["knee"] == pytest.approx(2.5, abs=0.04)
    assert (s["slope_before"], s["slope_after"]) == pytest.approx((4, 0.5), abs=0.05)
    sat = fits.saturating(k, 70 - 20 * np.exp(-k / 1.5))
    assert sat["tau"] == pytest.approx(1.5, rel=1e-3) and sat["x90"] == pytest.approx(1.5 * math.log(10), rel=1e-3)
    # no knee in a straight line or a flat curve (segmented alone; knee_test decides whether there is one), and no 90% point of a rise that is not there
    for y in (50 + 2 * k, np.full_like(k, 33.3)):
        s = fits.segmented(k, y)
        assert math.isnan(s["knee"]) and s["slope_before"] == s["slope_after"] == pytest.approx(y[1] - y[0])
    assert math.isnan(fits.saturating(k, np.full_like(k, 33.3))["x90"])
    # a saturation point beyond the data (tau ln 10 = 9.2 > 6) or a falling curve: none reported
    assert math.isnan(fits.saturating(k, 70 - 20 * np.exp(-k / 4))["x90"])
    assert fits.saturating(k, 70 - 20 * np.exp(-k / 4))["tau"] == pytest.approx(4, rel=1e-3)
    assert math.isnan(fits.saturating(k, 50 + 20 * np.exp(-k / 1.5))["x90"])


def test_fits_with_intervals_cover_the_true_exponent_knee_and_crossover():
    rng = np.random.default_rng(0)
    x = np.array([100, 300, 1000, 3000, 10000, 30000.0])
    err = 40 * x ** -0.3 * np.exp(rng.normal(0, 0.05, (8, len(x))))   # 8 seeds, 5% noise
    out = fits.fit_with_ci(x, err, fits.powerlaw)
    lo, hi = out["alpha"]["ci95"]
    assert lo < 0.3 < hi and hi - lo < 0.1 and out["alpha"]["n"] == 8 and out["alpha"]["method"] == "jackknife t"
    fl = fits.powerlaw_floor(x, 5 + 40 * x ** -0.3)
    assert fl["floor"] == pytest.approx(5, abs=0.2) and fl["alpha"] == pytest.approx(0.3, abs=0.02)
    k = np.arange(0, 7.0)
    y = 50 + 4 * np.minimum(k, 3) + rng.normal(0, 0.5, (8, len(k)))
    kt = fits.knee_test(k, y)
    assert kt["p_line"] < 0.01 and kt["knee"]["ci95"][0] <= 3 <= kt["knee"]["ci95"][1]
    assert kt["slope_before"] == pytest.approx(4, abs=0.3) and kt["slope_after"] == pytest.approx(0, abs=0.3)
    line = fits.knee_test(k, 50 + 2 * k + rng.normal(0, 0.5, (8, len(k))))
    assert line["knee"]["value"] is None and line["verdict"].startswith("no knee: one straight line is not rejected")
    assert fits.knee_test(k, y[:1])["reason"].startswith("needs >= 2 complete units")
    # a derived quantity (crossover of two fitted curves) gets its own interval, on the log scale
    y2 = np.concatenate([10 + 5 * np.log(x) + rng.normal(0, .3, (8, 6)), 40 + 2 * np.log(x) + rng.normal(0, .3, (8, 6))], 1)
    both = lambda xx, yy: {"x": fits.loglinear_crossover(fits.loglinear(xx[:6], yy[:6]), fits.loglinear(xx[6:], yy[6:]))}  # noqa: E731
    out = fits.fit_with_ci(np.concatenate([x, x]), y2, both, positive=("x",))
    assert out["x"]["ci95"][0] < math.exp(10) < out["x"]["ci95"][1] and out["x"]["method"].endswith("(log scale)")


def test_band_of_a_fitted_gain():
    n = np.array([100, 300, 1000, 3000, 10000, 30000.0])
    rng = np.random.default_rng(1)
    gain = 12 - 1.2 * np.log(n) + rng.normal(0, 0.4, (6, len(n)))
    grid = np.geomspace(100, 30000, 60)
    v, lo, hi, se = fits.band(n, gain, fits.loglinear, fits.predict_loglinear, grid)
    assert np.all(lo < v) and np.all(v < hi) and np.all(se > 0)
    _, lo90, hi90, _ = fits.band(n, gain, fits.loglinear, fits.predict_loglinear, grid, level=0.90)
    assert np.all(hi90 - lo90 < hi - lo) and np.all((lo90 > lo) & (hi90 < hi))


def test_points_at_chance_are_found_by_the_task_kinds_chance_level():
    import types
    from xtreme_jax.study.analyses.common import at_chance, chance
    assert chance("demo_nli", {}) == pytest.approx(1 / 3) and chance("xcopa", {}) == 0.5
    assert chance("udpos", {}) == 0.0   # no score by chance for tagging: never flagged
    rows = []
    for point, scores in {0: [33.3, 33.9, 32.8], 1: [60.0, 33.3, 33.3], 2: [0.0, 0.0, 0.0]}.items():
        for lang, v in zip(("en", "xa", "xb"), scores):
            rows.append({"point": point, "task": "demo_nli" if point < 2 else "udpos", "primary": True,
                         "language": lang, "value": v})
    rows.append({"point": 1, "task": "demo_nli", "primary": False, "language": "en", "value": 33.3})
    assert at_chance(types.SimpleNamespace(rows=rows)) == [
        {"point": 0, "task": "demo_nli", "chance": pytest.approx(100 / 3)}]


def test_ranking_stability_interval_stays_a_correlation():
    """Three seeds whose rankings mostly agree: a t interval on r itself passed 1 (0.87 [0.58, 1.15]
    in the tiny difficulty run); on Fisher's z it stays inside [-1, 1] and contains the mean r."""
    s = [[1, 2, 3, 4], [1, 2, 4, 3], [2, 1, 3, 4]]
    e = stats.ranking_stability(s)
    loo = [stats.spearman(s[i], np.mean(np.delete(np.asarray(s, float), i, 0), 0)) for i in range(3)]
    assert e["value"] == pytest.approx(np.mean(loo))
    z = np.arctanh(np.clip(loo, -0.995, 0.995))
    h = scipy.stats.t.ppf(0.975, 2) * z.std(ddof=1) / np.sqrt(3)
    assert e["ci95"] == pytest.approx([np.tanh(z.mean() - h), np.tanh(z.mean() + h)])
    assert -1 <= e["ci95"][0] < e["value"] < e["ci95"][1] <= 1
    assert stats.ranking_stability([[1, 2, 3]])["ci95"] == [None, None]
