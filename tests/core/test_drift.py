"""Drift statistics: exact values on small cases, then their behaviour over many seeds."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from plinth.core.drift import (
    DatasetDrift,
    Detector,
    DriftConfig,
    bin_midpoints,
    chi_square,
    dataset_drift,
    feature_drift,
    js_distance,
    ks_binned,
    psi,
    two_proportion_z,
    wasserstein_binned,
)
from plinth.core.profile import Profile
from plinth.errors import PlinthError

CITIES = ["paris", "oslo", "rome", "lima", "kyiv"]
CITY_P = [0.4, 0.25, 0.2, 0.1, 0.05]
KINDS = {"a": "numeric", "b": "numeric", "n": "integer", "city": "categorical"}


def sample(rng: np.random.Generator, rows: int, *, shift_b: float = 0.0) -> pd.DataFrame:
    a = rng.normal(0, 1, rows)
    a[rng.random(rows) < 0.05] = np.nan  # a steady 5 % null rate
    return pd.DataFrame(
        {
            "a": a,
            "b": rng.lognormal(0, 0.5, rows) + shift_b * 0.53,  # lognormal(0, .5) sd ~ 0.53
            "n": rng.poisson(3, rows),
            "city": rng.choice(CITIES, rows, p=CITY_P),
        }
    )


# ---------------------------------------------------------------- exact values


def test_psi_by_hand_and_its_epsilon() -> None:
    assert psi([10, 20, 30], [10, 20, 30]) == 0.0
    p, q = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    assert psi([2, 2], [1, 3]) == pytest.approx(float(np.sum((q - p) * np.log(q / p))))
    # an empty current bin is floored at the epsilon, not dropped
    expected = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1 - 0.5) * math.log(1 / 0.5)
    assert psi([1, 1], [0, 4]) == pytest.approx(expected)
    assert psi([1, 1], [0, 4], epsilon=1e-2) < psi([1, 1], [0, 4])


def test_js_distance_matches_scipy_and_is_bounded() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        ref, cur = rng.integers(0, 50, 6), rng.integers(0, 50, 6)
        expected = distance.jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2)
        assert js_distance(ref, cur) == pytest.approx(expected)
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_distance([3, 4], [6, 8]) == 0.0


def test_wasserstein_on_midpoints_matches_scipy() -> None:
    edges, low, high = [1.0, 2.0, 4.0], 0.0, 10.0
    ref, cur = [5, 3, 2, 0], [1, 2, 3, 4]
    mids = bin_midpoints(edges, low, high)
    assert mids.tolist() == [0.5, 1.5, 3.0, 7.0]
    expected = stats.wasserstein_distance(mids, mids, ref, cur)
    assert wasserstein_binned(ref, cur, edges, low, high) == pytest.approx(expected)
    # an edge on the minimum gives a zero-width first bin, not a negative one
    assert bin_midpoints([0.0, 1.0], 0.0, 2.0).tolist() == [0.0, 0.5, 1.5]
    with pytest.raises(PlinthError) as info:
        wasserstein_binned([1, 2], [2, 1], edges, low, high)
    assert info.value.code == "drift.shape_mismatch"


@pytest.mark.parametrize("seed", range(10))
def test_binned_ks_is_a_lower_bound_of_the_exact_ks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(0, 1, 500), rng.normal(0.2, 1.2, 300)
    edges = np.quantile(x, np.arange(1, 10) / 10)
    ref = np.bincount(np.searchsorted(edges, x), minlength=10)
    cur = np.bincount(np.searchsorted(edges, y), minlength=10)
    d, p = ks_binned(ref, cur)
    exact = stats.ks_2samp(x, y)
    assert d <= exact.statistic + 1e-12
    assert p >= stats.kstwobign.sf(exact.statistic * math.sqrt(500 * 300 / 800)) - 1e-12


def test_chi_square_matches_scipy_and_drops_empty_bins() -> None:
    stat, p = chi_square([30, 20, 0, 10], [10, 15, 0, 5])
    expected = stats.chi2_contingency([[30, 20, 10], [10, 15, 5]])
    assert (stat, p) == pytest.approx((expected.statistic, expected.pvalue))
    assert chi_square([5, 0], [7, 0]) == (0.0, 1.0)


def test_two_proportion_z_by_hand() -> None:
    z, p = two_proportion_z(10, 100, 20, 100)
    pooled = 30 / 200
    se = math.sqrt(pooled * (1 - pooled) * (2 / 100))
    assert z == pytest.approx(0.1 / se)
    assert p == pytest.approx(2 * stats.norm.sf(0.1 / se))
    assert two_proportion_z(0, 10, 0, 10) == (0.0, 1.0)
    with pytest.raises(PlinthError) as info:
        two_proportion_z(0, 0, 1, 10)
    assert info.value.code == "drift.empty_counts"


def test_count_vectors_must_agree() -> None:
    with pytest.raises(PlinthError, match="one shape") as info:
        psi([1, 2], [1, 2, 3])
    assert info.value.code == "drift.shape_mismatch"
    with pytest.raises(PlinthError) as info:
        js_distance([0, 0], [1, 1])
    assert info.value.code == "drift.empty_counts"


# ---------------------------------------------------------------- configuration


def test_detector_follows_sample_size_and_overrides() -> None:
    rng = np.random.default_rng(1)
    ref = Profile.fit(sample(rng, 3000), KINDS)
    small, large = ref.empty_like(), ref.empty_like()
    small.update(sample(rng, 100))
    large.update(sample(rng, 2000))
    methods = {
        name: [r.method for r in feature_drift(ref.features_[name], part.features_[name])]
        for part in (small, large)
        for name in ("a",)
    }
    assert methods == {"a": ["psi", "null_rate"]}  # the large sample was the last one
    assert [r.method for r in feature_drift(ref.features_["a"], small.features_["a"])] == [
        "ks",
        "null_rate",
    ]
    assert [r.method for r in feature_drift(ref.features_["city"], large.features_["city"])] == [
        "jensen_shannon",
        "null_rate",
        "unseen_rate",
    ]
    config = DriftConfig(
        overrides={"a": Detector("wasserstein", 0.1), "city": Detector("psi", 0.25)}
    )
    a = feature_drift(ref.features_["a"], small.features_["a"], config)[0]
    assert (a.method, a.threshold, a.p_value) == ("wasserstein", 0.1, None)
    city = feature_drift(ref.features_["city"], small.features_["city"], config)[0]
    assert (city.method, city.threshold) == ("psi", 0.25)


def test_bad_detectors_are_config_errors() -> None:
    with pytest.raises(PlinthError, match="Unknown drift method") as info:
        Detector("vibes", 0.1)
    assert info.value.code == "config.drift_method"
    rng = np.random.default_rng(2)
    ref = Profile.fit(sample(rng, 500), KINDS)
    config = DriftConfig(overrides={"city": Detector("ks", 0.05)})
    with pytest.raises(PlinthError, match="does not apply") as info:
        feature_drift(ref.features_["city"], ref.features_["city"], config)
    assert info.value.code == "config.drift_method"


def test_incompatible_profiles_are_refused() -> None:
    rng = np.random.default_rng(3)
    one, two = Profile.fit(sample(rng, 500), KINDS), Profile.fit(sample(rng, 500), KINDS)
    with pytest.raises(PlinthError) as info:
        feature_drift(one.features_["a"], two.features_["a"])
    assert info.value.code == "profile.incompatible"
    fewer = Profile.fit(sample(rng, 500), {"a": "numeric"})
    with pytest.raises(PlinthError) as info:
        dataset_drift(one, fewer)
    assert info.value.code == "profile.incompatible"


def test_empty_interval_and_all_null_feature() -> None:
    rng = np.random.default_rng(4)
    ref = Profile.fit(sample(rng, 500), KINDS)
    empty = ref.empty_like()
    report = dataset_drift(ref, empty)
    assert report == DatasetDrift(0.0, False, [], [])
    nulls = ref.empty_like()
    nulls.update(pd.DataFrame({"a": [np.nan] * 50}))  # other columns missing: null too
    results = feature_drift(ref.features_["a"], nulls.features_["a"])
    assert [r.method for r in results] == ["null_rate"]
    assert results[0].drifted and results[0].score == pytest.approx(1 - 0.05, abs=0.03)


def test_results_are_json_ready_and_cover_outputs() -> None:
    rng = np.random.default_rng(5)
    train = sample(rng, 1000)
    ref = Profile.fit(
        train,
        KINDS,
        outputs=rng.choice(["x", "y"], 300),
        output_kind="categorical",
        confidence=rng.uniform(0.5, 1, 300),
    )
    live = ref.empty_like()
    live.update(sample(rng, 200), rng.choice(["x", "y"], 200), rng.uniform(0.5, 1, 200))
    report = dataset_drift(ref, live)
    assert {r.feature for r in report.output} == {"prediction", "confidence"}
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert json.loads(text)["share_drifted"] == report.share_drifted


# ---------------------------------------------------------------- behaviour over seeds


def _drift_rates(seeds: range, rows: int, *, shift_b: float = 0.0) -> dict[tuple[str, str], float]:
    """Share of seeds in which each (feature, method) fired, reference refitted every time."""
    fired: dict[tuple[str, str], int] = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        ref = Profile.fit(sample(rng, 2000), KINDS)
        live = ref.empty_like()
        live.update(sample(rng, rows, shift_b=shift_b))
        report = dataset_drift(ref, live)
        for r in report.results:
            fired[(r.feature, r.method)] = fired.get((r.feature, r.method), 0) + r.drifted
        for feature in KINDS:  # the feature-level verdict: any of its results fired
            fired[(feature, "any")] = fired.get((feature, "any"), 0) + (
                feature in report.drifted_features
            )
    return {key: count / len(seeds) for key, count in fired.items()}


def test_false_alarm_rate_of_the_small_sample_tests_is_at_most_their_level() -> None:
    # 400 seeds: the binomial standard error at 5 % is 1.1 %, so 3.3 % slack is 3 sigma.
    rates = _drift_rates(range(400), 200)
    for feature in ("a", "b", "n"):
        assert rates[(feature, "ks")] <= 0.05 + 0.033, (feature, rates)
    assert rates[("city", "chi_square")] <= 0.05 + 0.033, rates
    for key, rate in rates.items():
        if key[1] in ("null_rate", "unseen_rate"):
            assert rate <= 0.01 + 0.015, (key, rates)
        if key[1] == "any":  # test at 5 % plus a rate test at 1 %
            assert rate <= 0.06 + 0.035, (key, rates)


def test_false_alarm_rate_of_the_large_sample_distances_is_near_zero() -> None:
    rates = _drift_rates(range(30), 3000)
    assert {method for _, method in rates} >= {"psi", "jensen_shannon"}
    assert max(rates.values()) <= 0.05, rates


@pytest.mark.parametrize(("rows", "shift"), [(300, 0.5), (3000, 1.0)])
def test_a_shift_in_one_feature_is_flagged_there_and_not_elsewhere(rows: int, shift: float) -> None:
    seeds = range(60)
    rates = _drift_rates(seeds, rows, shift_b=shift)
    assert rates[("b", "any")] >= 0.95, rates
    others = [
        rate for (feature, method), rate in rates.items() if feature != "b" and method == "any"
    ]
    assert max(others) <= 0.15, rates


@pytest.mark.parametrize("rows", [200, 3000])
def test_an_unseen_category_in_five_percent_of_traffic_is_flagged(rows: int) -> None:
    caught = 0
    for seed in range(50):
        rng = np.random.default_rng(seed)
        ref = Profile.fit(sample(rng, 2000), KINDS)
        live_rows = sample(rng, rows)
        newcomer = rng.random(rows) < 0.05
        live_rows.loc[newcomer, "city"] = "atlantis"
        live = ref.empty_like()
        live.update(live_rows)
        report = dataset_drift(ref, live)
        unseen = next(r for r in report.results if r.method == "unseen_rate")
        caught += unseen.drifted and "city" in report.drifted_features
        assert unseen.score == pytest.approx(newcomer.mean())
    assert caught >= 49
