"""Drift statistics: exact values on small cases, then their behaviour over many seeds."""

from __future__ import annotations

import doctest
import json
import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from plinth.core import drift as drift_module
from plinth.core.drift import (
    DatasetDrift,
    bin_midpoints,
    chi_square,
    dataset_drift,
    feature_drift,
    js_distance,
    ks_binned,
    pool_sparse,
    psi,
    rate_test,
    two_proportion_z,
    wasserstein_binned,
)
from plinth.core.drift_config import Detector, DriftConfig
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
    # two bins, one sparse (expected 3.7): Pearson's statistic, Fisher's exact p-value
    stat, p = chi_square([30, 10], [5, 4])
    pearson = stats.chi2_contingency([[30, 10], [5, 4]], correction=False).statistic
    assert (stat, p) == pytest.approx((pearson, stats.fisher_exact([[30, 10], [5, 4]]).pvalue))
    # two bins, none sparse: the chi-square p-value, uncorrected
    expected = stats.chi2_contingency([[300, 100], [50, 40]], correction=False)
    assert chi_square([300, 100], [50, 40]) == pytest.approx((expected.statistic, expected.pvalue))


def test_sparse_bins_are_pooled_so_an_empty_reference_bin_cannot_dominate() -> None:
    # expected counts of the current row: 50, 25, 4.9, 0.09 -> the last two pooled (5.0)
    assert pool_sparse([[500, 250, 50, 0], [50, 25, 4, 1]]).tolist() == [
        [500, 250, 50],
        [50, 25, 5],
    ]
    # a pool still short of 5 takes the next smallest column: 1.7 + 0.08, then 8.7
    assert pool_sparse([[500, 100, 20, 0], [50, 5, 0, 1]]).tolist() == [[500, 120], [50, 6]]
    assert pool_sparse([[500, 250, 50, 0], [50, 25, 4, 1]], 0.0).tolist() == [
        [500, 250, 50, 0],
        [50, 25, 4, 1],
    ]
    # never fewer than two columns, even when every column is sparse
    assert pool_sparse([[100, 1, 1], [1, 1, 0]]).tolist() == [[100, 2], [1, 1]]
    # the case: 1 of 246 values in a bin empty in a 43,000-row reference
    reference = [17200, 10965, 9632, 3913, 1290, 0]
    current = [98, 63, 55, 22, 7, 1]
    unpooled = stats.chi2_contingency([reference, current])
    assert unpooled.statistic > 170 and unpooled.pvalue < 1e-30  # the term N / n blew it up
    stat, p = chi_square(reference, current)
    assert stat < 5 and p > 0.3
    # a new bin holding a fifth of the window still counts, pooled or not
    assert chi_square(reference, [78, 50, 44, 18, 6, 50])[1] < 1e-10


def test_rate_test_is_exact_and_tolerates_small_changes() -> None:
    change, p = rate_test(3, 1000, 5, 100)
    assert change == pytest.approx(0.047)
    differ = stats.fisher_exact([[3, 997], [5, 95]]).pvalue
    beyond = 2 * stats.binom.sf(4, 100, 0.003)  # P(X >= 5) at the reference rate, two-sided
    assert p == pytest.approx(max(differ, beyond))
    change, p = rate_test(3, 1000, 5, 100, min_change=0.01)
    assert p == pytest.approx(max(differ, 2 * stats.binom.sf(4, 100, 0.013)))
    # a fall is judged against the reference rate minus the tolerance
    change, p = rate_test(300, 1000, 10, 100, min_change=0.05)
    assert change == pytest.approx(-0.2)
    assert p == pytest.approx(2 * stats.binom.cdf(10, 100, 0.25))
    assert rate_test(0, 10, 0, 10) == (0.0, 1.0)
    assert rate_test(10, 10, 5, 5) == (0.0, 1.0)
    assert rate_test(0, 43000, 1, 246, min_change=0.01)[1] == 1.0  # one stray value
    with pytest.raises(PlinthError) as info:
        rate_test(0, 0, 1, 10)
    assert info.value.code == "drift.empty_counts"


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
    # a distance carries the p-value of the chi-square it also needs
    guard = chi_square(ref.features_["a"].counts, small.features_["a"].counts)[1]
    assert (a.method, a.threshold, a.p_value) == ("wasserstein", 0.1, guard)
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


@pytest.mark.parametrize(("rows", "least"), [(200, 20), (500, 47), (3000, 50)])
def test_an_unseen_category_in_five_percent_of_traffic_is_flagged(rows: int, least: int) -> None:
    # The unseen rate must be shown to exceed the reference's by more than one point, and
    # pass the family-wise correction across every feature's tests: 5 % of 200 rows (about
    # 10 values) is caught in about half the windows, of 500 rows in nearly all.
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
    assert caught >= least


def test_the_examples_in_the_docstrings_hold() -> None:
    assert doctest.testmod(drift_module).failed == 0


# ------------------------------------------------- false alarms on the reference's own data
#
# A population with the features that trip naive tests: a numeric column with a few nulls, a
# count, a 0/1 flag whose top reference bin is empty (92 % ones: every edge is 1), five
# diamond cuts, a category with a 0.5 % share, 100 Zipf-distributed categories, and a
# category too rare (0.1 %) to be in the reference, so that live traffic now and then has a
# value the reference never saw; the prediction has a class the holdout never predicted.

CUTS = ["Ideal", "Premium", "Very Good", "Good", "Fair"]
CUT_P = [0.40, 0.255, 0.224, 0.091, 0.030]
RARE = ["a", "b", "c", "d", "rare"]
RARE_P = [0.5, 0.3, 0.15, 0.045, 0.005]
ZIPF = [f"z{i}" for i in range(100)]
ZIPF_P = list(1 / np.arange(1, 101) ** 1.1 / np.sum(1 / np.arange(1, 101) ** 1.1))
TAIL = ["x", "y", "ghost"]
TAIL_P = [0.6, 0.399, 0.001]
CLASSES = ["no", "yes", "maybe"]
CLASS_P = [0.7, 0.2995, 0.0005]
POPULATION = {
    "x": "numeric", "n": "integer", "flag": "boolean", "cut": "categorical",
    "rare": "categorical", "zipf": "categorical", "tail": "categorical",
}  # fmt: skip


def population(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    x = rng.normal(0, 1, rows)
    x[rng.random(rows) < 0.005] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "n": rng.poisson(3, rows),
            "flag": (rng.random(rows) < 0.92).astype(float),
            "cut": rng.choice(CUTS, rows, p=CUT_P),
            "rare": rng.choice(RARE, rows, p=RARE_P),
            "zipf": rng.choice(ZIPF, rows, p=ZIPF_P),
            "tail": rng.choice(TAIL, rows, p=TAIL_P),
        }
    )


def predictions(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.choice(CLASSES, rows, p=CLASS_P), rng.beta(5, 2, rows)


def population_reference(rng: np.random.Generator, rows: int = 5000) -> Profile:
    """Fitted on a sample without the tail category and without the class "maybe"."""
    train = population(rng, rows)
    train.loc[train["tail"] == "ghost", "tail"] = "x"
    labels, confidence = predictions(rng, rows)
    labels[labels == "maybe"] = "no"
    return Profile.fit(
        train, POPULATION, outputs=labels, output_kind="categorical",
        confidence=confidence, classes=CLASSES,
    )  # fmt: skip


def _alarms(rows: int, seeds: int) -> tuple[Counter[tuple[str, str]], Counter[str]]:
    """Per (section, method) and per section: in how many windows drift was declared."""
    by_method: Counter[tuple[str, str]] = Counter()
    by_section: Counter[str] = Counter()
    for seed in range(seeds):
        rng = np.random.default_rng([rows, seed])
        reference = population_reference(rng)
        live = reference.empty_like()
        live.update(population(rng, rows), *predictions(rng, rows))
        report = dataset_drift(reference, live)
        results = report.results + report.output
        assert {r.feature for r in results} == {*POPULATION, "prediction", "confidence"}
        for r in results:
            by_method[r.feature, r.verdict if r.insufficient else r.method] += r.drifted
            by_method[r.feature, "insufficient"] += r.insufficient
        for section in {r.feature for r in results if r.drifted}:
            by_section[section] += 1
    return by_method, by_section


def _at_most(level: float, trials: int) -> float:
    """The level plus three binomial standard errors: a calibrated rule exceeds it about
    once in 700 runs, and these runs have fixed seeds."""
    return level + 3 * math.sqrt(level * (1 - level) / trials)


@pytest.mark.parametrize(("rows", "seeds"), [(20, 100), (50, 200), (200, 200), (1000, 200)])
def test_windows_from_the_reference_distribution_alarm_at_most_at_the_stated_rate(
    rows: int, seeds: int
) -> None:
    """Below 1,000 values a feature runs a test at 5 % and rate tests at 1 % each: its false
    alarm rate is at most their sum. Below 30 values its distribution is not judged."""
    config = DriftConfig()
    by_method, by_section = _alarms(rows, seeds)
    sections = [*POPULATION, "prediction", "confidence"]
    for section in sections:
        categorical = section in ("cut", "rare", "zipf", "tail", "prediction")
        if rows < config.min_values:
            assert by_method[section, "insufficient"] == seeds, by_method
        level = 0.05 + config.rate_alpha * (1 + categorical)
        assert by_section[section] / seeds <= _at_most(level, seeds), (section, by_method)
    # Pooled over the sections, the distribution tests are held to their level tightly.
    tests = [
        count for (section, method), count in by_method.items() if method in ("ks", "chi_square")
    ]
    trials = seeds * len(sections)
    assert sum(tests) / trials <= _at_most(0.05, trials), by_method
    rates = [count for (_, m), count in by_method.items() if m in ("null_rate", "unseen_rate")]
    assert sum(rates) / trials <= _at_most(config.rate_alpha, trials), by_method


def test_large_windows_from_the_reference_distribution_do_not_alarm() -> None:
    # 10,000 rows: distances, each also needing its chi-square at 1 %. JS over 100 Zipf
    # categories alone would pass its 0.1 threshold in most 1,000-row windows by chance.
    by_method, by_section = _alarms(10_000, 30)
    assert {m for _, m in by_method} >= {"psi", "jensen_shannon"}
    assert sum(by_section.values()) == 0, by_method


def test_a_chance_level_distance_needs_its_test() -> None:
    noisy = judged = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        reference = population_reference(rng)
        live = reference.empty_like()
        live.update(population(rng, 1000))
        ref, cur = reference.features_["zipf"], live.features_["zipf"]
        noisy += js_distance(ref.counts[:-1], cur.counts[:-1]) > 0.1
        judged += feature_drift(ref, cur)[0].drifted
    assert noisy >= 30 and judged <= 2, (noisy, judged)


def _shifted(rng: np.random.Generator, rows: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    frame = population(rng, rows)
    frame["cut"] = rng.choice(CUTS, rows, p=[0.25, 0.255, 0.224, 0.091, 0.18])
    labels, confidence = predictions(rng, rows)
    labels[rng.random(rows) < 0.2] = "maybe"  # a class the holdout never predicted
    newcomer = rng.random(rows) < 0.2
    frame.loc[newcomer, "zipf"] = "brand-new"
    frame["x"] = frame["x"] + 0.5
    return frame, labels, confidence


@pytest.mark.parametrize("rows", [50, 200, 1000, 10_000])
def test_real_shifts_and_a_new_category_at_a_fifth_of_traffic_are_caught(rows: int) -> None:
    caught: Counter[tuple[str, str]] = Counter()
    seeds = 20
    for seed in range(seeds):
        rng = np.random.default_rng([rows, seed])
        reference = population_reference(rng)
        live = reference.empty_like()
        live.update(*_shifted(rng, rows))
        report = dataset_drift(reference, live)
        for r in report.results + report.output:
            caught[r.feature, r.method] += r.drifted
    # 20 % of values new to the reference: a new category, or a class never predicted
    assert caught["zipf", "unseen_rate"] == seeds, caught
    assert caught["prediction", "unseen_rate"] == seeds, caught
    if rows >= 200:  # a 0.5 sd shift and a cut mix change need a few hundred values
        # At 200 values the family-wise correction (about 20 tests) costs a little power.
        least = seeds - 4 if rows < 1000 else seeds - 1
        assert caught["x", "ks"] + caught["x", "psi"] >= least, caught
        assert caught["cut", "chi_square"] + caught["cut", "jensen_shannon"] >= seeds - 1, caught
    untouched = [c for (f, _), c in caught.items() if f in ("n", "flag", "rare", "tail")]
    assert sum(untouched) <= 12, caught  # 4 features at about 6.5 % each: 5 expected


def test_one_unseen_category_among_246_records_is_not_drift() -> None:
    """Issue 11: one `cut: "Perfect"` among 246 diamonds flagged the feature (p = 1.5e-36)."""
    rng = np.random.default_rng(11)
    reference = Profile.fit(
        pd.DataFrame({"cut": rng.choice(CUTS, 43_000, p=CUT_P)}), {"cut": "categorical"}
    )
    assert reference.features_["cut"].counts[-1] == 0  # nothing unseen in training
    window = [*rng.choice(CUTS, 245, p=CUT_P), "Perfect"]
    live = reference.empty_like()
    live.update(pd.DataFrame({"cut": window}))
    report = dataset_drift(reference, live)
    assert report.drifted_features == [], report.to_dict()
    by_method = {r.method: r for r in report.results}
    assert by_method["unseen_rate"].score == pytest.approx(1 / 246)
    assert by_method["chi_square"].p_value is not None and by_method["chi_square"].p_value > 0.05
    # ... while twelve of them (5 %) are a real change
    live.update(pd.DataFrame({"cut": ["Perfect"] * 11}))
    assert feature_drift(reference.features_["cut"], live.features_["cut"])[-1].drifted


@pytest.mark.parametrize("rows", [50, 200, 1000, 5000])
def test_a_window_from_the_reference_shows_no_drifted_feature_at_the_family_rate(
    rows: int,
) -> None:
    """The feature_drift alert fires when any input feature drifts: across all of a
    window's tests (about 20 here), chance may flag one in at most ``family_alpha`` (0.1 %)
    of windows. Without Holm's correction about a quarter of small windows did."""
    windows, flagged = 0, 0
    for reference_seed in range(3):
        reference = population_reference(np.random.default_rng([7, reference_seed]))
        rng = np.random.default_rng([rows, reference_seed])
        for _ in range(150):
            live = reference.empty_like()
            live.update(population(rng, rows), *predictions(rng, rows))
            report = dataset_drift(reference, live)
            flagged += bool(report.drifted_features)
            windows += 1
    # 0.1 % of 450 windows is 0.45; three binomial standard errors above it is 1.9.
    assert flagged <= 2, f"{flagged} of {windows} windows flagged"
    uncorrected = 0
    for reference_seed in range(3):
        reference = population_reference(np.random.default_rng([7, reference_seed]))
        rng = np.random.default_rng([rows, reference_seed])
        for _ in range(50):
            live = reference.empty_like()
            live.update(population(rng, rows), *predictions(rng, rows))
            report = dataset_drift(reference, live, DriftConfig(family_alpha=None))
            uncorrected += bool(report.drifted_features)
    if rows <= 1000:  # the correction is what keeps small windows quiet
        assert uncorrected > flagged
