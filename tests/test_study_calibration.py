"""Coverage of the study intervals, measured: each estimator simulated with a known truth at the
studies' unit counts (2, 3, 5 seeds ...), its coverage asserted within a stated tolerance of the
nominal level. On the estimators before this file (a seed-level percentile bootstrap, examples
resampled as independent rows with seeds held fixed, a knee that was always found, "the first CI
that includes 0" as vanishing) these tests fail; docs/studies.md gives both sets of numbers."""
import math

import numpy as np
import pytest
from scipy.stats import norm

from xtreme_jax.study import fits, stats

NOMINAL = 0.95


def covers(e, truth):
    lo, hi = e["ci95"]
    return lo is not None and lo <= truth <= hi


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_mean_over_seeds_covers_at_nominal(n):
    # 2000 repetitions: binomial SE of a coverage of 0.95 is 0.005; tolerance 0.02 (4 SE)
    X = np.random.default_rng(n).normal(7.0, 2.0, (2000, n))
    coverage = np.mean([covers(stats.mean_estimate(r), 7.0) for r in X])
    assert abs(coverage - NOMINAL) <= 0.02, coverage


@pytest.mark.parametrize("n", [2, 3, 5])
def test_fitted_slope_and_zero_crossing_cover_at_nominal(n):
    # gain(n) = a + b ln n per seed: a seed offset (shared intermediate run) plus level noise
    rng = np.random.default_rng(10 + n)
    x = np.array([1000, 3000, 10000, 30000, 100000, 392702.0])
    hit_b, hit_zero = [], []
    for _ in range(800):        # SE 0.008; tolerance 0.03
        Y = 5 - 0.8 * np.log(x) + rng.normal(0, 1, (n, 1)) + rng.normal(0, 0.7, (n, len(x)))
        f = fits.fit_with_ci(x, Y, fits.loglinear, derived={"zero": fits.zero_crossing}, positive=("zero",))
        hit_b.append(covers(f["b"], -0.8))
        hit_zero.append(covers(f["zero"], math.exp(5 / 0.8)))
    assert abs(np.mean(hit_b) - NOMINAL) <= 0.03, np.mean(hit_b)
    assert abs(np.mean(hit_zero) - NOMINAL) <= 0.03, np.mean(hit_zero)


def _translated_items(rng, seeds, langs=4, items=300, seed_sd=0.15):
    """0/1 correctness of two systems on items translated into every language: an item's
    difficulty is shared by its translations, each seed shifts system A's latent score."""
    item = rng.normal(0, 1, items)
    a = 0.3 + item + rng.normal(0, 0.5, (seeds, langs, items)) + rng.normal(0, seed_sd, (seeds, 1, 1))
    b = item + rng.normal(0, 0.5, (seeds, langs, items))
    return list((a > 0).transpose(1, 0, 2).astype(float)), list((b > 0).transpose(1, 0, 2).astype(float))


@pytest.mark.parametrize("seeds", [2, 3, 5])
def test_two_level_gain_covers_seed_and_item_variance(seeds):
    rng = np.random.default_rng(20 + seeds)
    z = rng.normal(0, 1, 200_000)   # the population gain: over items and over seeds
    truth = 100 * (norm.cdf((0.3 + z) / math.hypot(0.5, 0.15)).mean() - norm.cdf(z / 0.5).mean())
    hits = [covers(stats.two_level_gain(*_translated_items(rng, seeds)), truth) for _ in range(300)]
    # conservative by design (df of the seed term): at least nominal - 0.025 (SE 0.013 at 300)
    assert np.mean(hits) >= NOMINAL - 0.025, np.mean(hits)


def test_two_level_gain_structure():
    a, b = [np.array([[1, 0, 1, 1], [1, 1, 0, 1]])] * 2, [np.array([[0, 0, 1, 0], [1, 1, 0, 0]])] * 2
    e = stats.two_level_gain(a, b)
    assert e["value"] == pytest.approx(37.5) and e["clusters"] == "item id across languages"
    assert e["items"] == 4 and e["languages"] == 2 and e["n"] == 2 and e["df"] == 1
    # per-seed gains 50 and 25: the seed term is their variance over 2
    assert e["se_seeds"] == pytest.approx(math.sqrt(np.var([50.0, 25.0], ddof=1) / 2))
    one = stats.two_level_gain([a[0][:1]], [b[0][:1]])
    assert one["ci95"] == [None, None] and one["ci95_items_only"][0] < one["value"] < one["ci95_items_only"][1]
    uneven = stats.two_level_gain([a[0], a[0][:, :3]], [b[0], b[0][:, :3]])
    assert uneven["clusters"] == "language x item" and uneven["items"] == 7
    with pytest.raises(ValueError, match="same seeds and items"):
        stats.two_level_gain([a[0]], [b[0][:, :3]])


@pytest.mark.parametrize("units", [3, 6])
def test_knee_only_when_a_line_is_rejected(units):
    rng = np.random.default_rng(30 + units)
    k = np.arange(0, 7.0)
    noise = lambda: rng.normal(0, 1, (units, 1)) + rng.normal(0, 1, (units, len(k)))  # noqa: E731
    false = np.mean([fits.knee_test(k, 50 + k + noise())["knee"]["value"] is not None for _ in range(300)])
    flat = np.mean([fits.knee_test(k, 50 + 0 * k + noise())["knee"]["value"] is not None for _ in range(200)])
    assert false <= 0.05 + 0.03 and flat <= 0.05 + 0.035, (false, flat)     # SE 0.013 / 0.015
    found = [fits.knee_test(k, 50 + 4 * np.minimum(k, 3) + noise()) for _ in range(200)]
    knees = [f["knee"] for f in found if f["knee"]["value"] is not None]
    assert len(knees) >= 0.9 * len(found)                                    # a real knee is found
    assert abs(np.mean([covers(e, 3.0) for e in knees]) - NOMINAL) <= 0.04   # and its interval covers it
    v = fits.knee_test(k, 50 + k + noise())
    assert v["tested"] and v["verdict"].startswith(("no knee", "knee at")) and v["units"] == units


@pytest.mark.parametrize("n", [3, 5])
def test_equivalence_is_not_claimed_at_the_margin(n):
    # a gain exactly at the margin has not vanished: TOST may say "equivalent" at most 5% of the time
    rng = np.random.default_rng(40 + n)
    X = rng.normal(1.0, 1.0, (2000, n))
    claims = np.mean([bool(stats.tost(stats.mean_estimate(r), margin=1.0)["equivalent"]) for r in X])
    assert claims <= 0.05 + 0.015, claims
    # a gain of 0 is found equivalent when the data allow it (20 seeds, SD 1, margin 1: high power)
    zero = np.mean([bool(stats.tost(stats.mean_estimate(r), 1.0)["equivalent"]) for r in rng.normal(0, 1, (500, 20))])
    assert zero > 0.9


def test_holm_controls_the_family_wise_error():
    # 27 task gains (difficulty), no true effect, 3 seeds each: any unadjusted p < 0.05 is a false finding
    rng = np.random.default_rng(50)
    raw, adjusted = [], []
    for _ in range(400):
        ests = stats.adjust([stats.mean_estimate(r) for r in rng.normal(0, 1, (27, 3))], "tasks")
        raw.append(any(e["p"] < 0.05 for e in ests))
        adjusted.append(any(e["p_holm"] < 0.05 for e in ests))
    assert np.mean(raw) > 0.5 and np.mean(adjusted) <= 0.05 + 0.025, (np.mean(raw), np.mean(adjusted))
    assert stats.holm([0.01, 0.04, 0.03, math.nan]).tolist()[:3] == pytest.approx([0.03, 0.06, 0.06])
