"""Canary decision rules on synthetic evidence: promote, roll back, wait."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from plinth.core import canary as canary_module
from plinth.core.canary import (
    ArmEvidence,
    evaluate,
    rate_increase_test,
    shared_output_counts,
    slower_than,
)
from plinth.core.canary_policy import CanaryPolicy
from plinth.core.interval import LatencyHistogram
from plinth.core.profile import FeatureBins
from plinth.errors import ConfigError

SEED = 20240611
POLICY = CanaryPolicy(min_requests=200, min_duration_s=60.0)


def _latency(rng: np.random.Generator, n: int, median_s: float) -> np.ndarray:
    h = LatencyHistogram()
    h.observe_many(rng.lognormal(np.log(median_s), 0.3, n))
    return h.counts


def _outputs(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    return np.bincount(rng.binomial(1, p, n), minlength=3).astype(float)


def _arm(
    rng: np.random.Generator,
    n: int,
    *,
    error_rate: float = 0.005,
    median_s: float = 0.004,
    positive: float = 0.3,
    losses: np.ndarray | None = None,
) -> ArmEvidence:
    errors = int(rng.binomial(n, error_rate))
    return ArmEvidence(
        n,
        errors=errors,
        fallbacks=errors,
        latency=_latency(rng, n - errors, median_s),
        outputs=_outputs(rng, n - errors, positive),
        losses=losses,
    )


@pytest.mark.parametrize("seed", range(SEED, SEED + 5))
def test_a_good_canary_is_promoted_after_the_minimum_duration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    champion, canary = _arm(rng, 3000), _arm(rng, 600)
    early = evaluate(canary, champion, POLICY, duration_s=30)
    assert early.decision == "wait"
    assert early.reasons == ["30 of 60 s observed"]
    verdict = evaluate(canary, champion, POLICY, duration_s=120)
    assert verdict.decision == "promote", verdict.summary
    passed = {c.name: c.passed for c in verdict.checks}
    assert passed == {
        "error_rate": True,
        "fallback_rate": True,
        "p95_latency": True,
        "output_distance": True,
        "performance": None,  # no labels: skipped, does not block
    }
    assert "performance skipped (no labels)" in verdict.reasons


@pytest.mark.parametrize("seed", range(SEED, SEED + 5))
def test_a_canary_failing_one_request_in_five_is_rolled_back(seed: int) -> None:
    rng = np.random.default_rng(seed)
    champion, canary = _arm(rng, 3000), _arm(rng, 300, error_rate=0.2)
    # Stopping harm does not wait for the minimum duration.
    verdict = evaluate(canary, champion, POLICY, duration_s=5)
    assert verdict.decision == "rollback"
    check = next(c for c in verdict.checks if c.name == "error_rate")
    assert check.passed is False
    assert check.canary is not None and check.canary > 0.15
    assert check.limit == pytest.approx(champion.errors / champion.requests + 0.01)
    assert check.p_value is not None and check.p_value < 1e-6
    assert verdict.reasons[0].startswith("error_rate ")
    assert verdict.to_dict()["checks"][0]["name"] == "error_rate"


def test_a_too_small_sample_waits_even_when_it_looks_bad() -> None:
    rng = np.random.default_rng(SEED)
    champion, canary = _arm(rng, 3000), _arm(rng, 40, error_rate=0.2)
    verdict = evaluate(canary, champion, POLICY, duration_s=600)
    assert verdict.decision == "wait"
    assert verdict.reasons == ["canary has 40 of 200 requests"]
    small_champion = evaluate(_arm(rng, 500), _arm(rng, 150), POLICY, duration_s=600)
    assert small_champion.reasons == ["champion has 150 of 200 requests"]


@pytest.mark.parametrize("seed", range(SEED, SEED + 5))
def test_a_latency_regression_is_rolled_back(seed: int) -> None:
    rng = np.random.default_rng(seed)
    champion = _arm(rng, 3000, median_s=0.020)
    canary = _arm(rng, 400, median_s=0.045)
    verdict = evaluate(canary, champion, POLICY, duration_s=120)
    assert verdict.decision == "rollback"
    failed = [c.name for c in verdict.checks if c.passed is False]
    assert failed == ["p95_latency"]
    check = next(c for c in verdict.checks if c.name == "p95_latency")
    assert check.canary is not None and check.limit is not None and check.canary > check.limit


def test_a_slightly_slower_canary_within_the_slack_passes() -> None:
    rng = np.random.default_rng(SEED)
    champion = _arm(rng, 3000, median_s=0.002)
    canary = _arm(rng, 400, median_s=0.003)  # +50 %, but a millisecond: under the 10 ms slack
    verdict = evaluate(canary, champion, POLICY, duration_s=120)
    assert verdict.decision == "promote", verdict.summary


def test_a_shifted_output_distribution_is_rolled_back() -> None:
    rng = np.random.default_rng(SEED)
    champion, canary = _arm(rng, 3000, positive=0.3), _arm(rng, 600, positive=0.7)
    verdict = evaluate(canary, champion, POLICY, duration_s=120)
    assert verdict.decision == "rollback"
    check = next(c for c in verdict.checks if c.name == "output_distance")
    assert check.passed is False and check.canary is not None and check.canary > 0.1


def test_labels_judge_performance_when_there_are_enough() -> None:
    rng = np.random.default_rng(SEED)
    good = rng.binomial(1, 0.10, 400).astype(float)
    worse = rng.binomial(1, 0.30, 200).astype(float)
    champion = _arm(rng, 3000, losses=good)
    verdict = evaluate(_arm(rng, 600, losses=worse), champion, POLICY, duration_s=120)
    assert [c.name for c in verdict.checks if c.passed is False] == ["performance"]
    few = evaluate(_arm(rng, 600, losses=worse[:10]), champion, POLICY, duration_s=120)
    check = next(c for c in few.checks if c.name == "performance")
    assert check.passed is None and "50 per arm needed" in check.note
    assert few.decision == "promote"


def test_only_the_chosen_checks_run() -> None:
    rng = np.random.default_rng(SEED)
    policy = CanaryPolicy(checks=("error_rate",), min_requests=200, min_duration_s=0)
    verdict = evaluate(_arm(rng, 400, median_s=0.5), _arm(rng, 3000), policy, duration_s=1)
    assert [c.name for c in verdict.checks] == ["error_rate"]
    assert verdict.decision == "promote"


def test_a_p95_alone_is_compared_without_a_test() -> None:
    policy = CanaryPolicy(checks=("p95_latency",), min_requests=1, min_duration_s=0)
    slow = evaluate(ArmEvidence(300, p95_s=0.5), ArmEvidence(300, p95_s=0.1), policy, duration_s=1)
    assert slow.decision == "rollback" and slow.checks[0].note == "p95 only"
    same = evaluate(ArmEvidence(300, p95_s=0.1), ArmEvidence(300, p95_s=0.1), policy, duration_s=1)
    assert same.decision == "promote"


def test_rate_test_is_one_sided_and_tolerates_zero_errors() -> None:
    assert rate_increase_test(0, 300, 0, 3000, 0.01) > 0.5
    assert rate_increase_test(0, 300, 30, 3000, 0.0) > 0.9  # fewer errors: never a failure
    assert rate_increase_test(60, 300, 30, 3000, 0.01) < 1e-9


def test_slower_than_counts_whole_buckets_above_and_part_of_the_one_inside() -> None:
    h = LatencyHistogram()
    h.observe_many(np.array([0.001] * 90 + [1.0] * 10))
    assert slower_than(h.counts, 0.1) == 10
    assert slower_than(h.counts, 0.0001) == 100
    assert slower_than(h.counts, 1000.0) == 0


def test_output_counts_meet_by_class_label() -> None:
    champion = FeatureBins("p", "categorical", None, ["no", "yes"], None, None, [70, 30, 0])
    canary = FeatureBins("p", "categorical", None, ["yes", "no", "maybe"], None, None, [5, 4, 1, 0])
    found = shared_output_counts(champion, canary)
    assert found is not None
    assert found[0].tolist() == [70, 30, 0]
    assert found[1].tolist() == [4, 5, 1]  # "maybe" is not a champion class: the other slot
    numeric = FeatureBins("p", "numeric", [0.0], None, -1.0, 1.0, [1, 1])
    assert shared_output_counts(champion, numeric) is None


def test_policy_from_a_mapping_lists_every_problem() -> None:
    policy = CanaryPolicy.from_mapping({"min_requests": 50, "action": "rollback"})
    assert policy.min_requests == 50 and policy.action == "rollback"
    assert CanaryPolicy.from_mapping({"checks": ["error_rate"]}).checks == ("error_rate",)
    with pytest.raises(ConfigError, match="3 problems") as caught:
        CanaryPolicy.from_mapping({"min_request": 5, "action": "yolo", "alpha": 2})
    assert caught.value.code == "config.canary"
    assert [p.field for p in caught.value.problems] == ["min_request", "action", "alpha"]
    with pytest.raises(ConfigError, match="1 problems"):
        CanaryPolicy.from_mapping({"checks": ["speed"]})
    assert CanaryPolicy.from_mapping(policy.to_dict()) == policy


def test_the_examples_in_the_docstrings_hold() -> None:
    assert doctest.testmod(canary_module).failed == 0
