"""Control charts: exact limits, the promised detection delay, and rare false alarms."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest

from plinth.core.control import ChartPoint, CUSUMChart, EWMAChart
from plinth.errors import PlinthError

Chart = EWMAChart | CUSUMChart


def run_length(chart: Chart, values: np.ndarray) -> int | None:
    """Index (1-based) of the first breach, or None."""
    for t, x in enumerate(values, 1):
        if chart.update(float(x)).breach:
            return t
    return None


def test_ewma_recursion_and_time_varying_limits() -> None:
    chart = EWMAChart(lam=0.25, L=2.0).fit(reference_mean=10.0, reference_std=2.0)
    first = chart.update(14.0)
    assert first.ewma == pytest.approx(0.25 * 14 + 0.75 * 10)
    width = 2.0 * 2.0 * math.sqrt(0.25 / 1.75 * (1 - 0.75**2))
    assert (first.lower, first.upper) == pytest.approx((10 - width, 10 + width))
    assert first.breach == (first.ewma > first.upper)
    second = chart.update(10.0)
    assert second.ewma == pytest.approx(0.25 * 10 + 0.75 * first.ewma)
    # limits widen towards the asymptote sigma * L * sqrt(lam / (2 - lam))
    _, upper = chart.limits(10_000)
    assert upper == pytest.approx(10 + 2.0 * 2.0 * math.sqrt(0.25 / 1.75))
    assert chart.limits(1)[1] < chart.limits(2)[1] < upper


def test_ewma_breaches_on_either_side() -> None:
    chart = EWMAChart().fit(0.0, 1.0)
    point = chart.update(-5.0)
    assert point == ChartPoint(-5.0, -1.0, point.lower, point.upper, True)
    assert point.lower == pytest.approx(-0.6)


def test_warmup_estimates_centre_and_spread() -> None:
    chart = EWMAChart().fit_warmup([1.0, 2.0, 3.0, 4.0])
    assert chart.mean_ == 2.5 and chart.std_ == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    cusum = CUSUMChart().fit_warmup(np.array([1.0, 3.0]))
    assert (cusum.mean_, cusum.std_) == (2.0, pytest.approx(math.sqrt(2)))


def test_state_round_trips_through_json() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(0, 1, 40)
    for make in (lambda: EWMAChart(0.1, 2.7), lambda: CUSUMChart(0.25, 4.0)):
        chart = make().fit(0.0, 1.0)
        for x in values[:20]:
            chart.update(float(x))
        state = json.loads(json.dumps(chart.to_dict()))
        resumed = type(chart).from_dict(state)
        assert [resumed.update(float(x)) for x in values[20:]] == [
            chart.update(float(x)) for x in values[20:]
        ]


def test_reset_starts_again_from_the_centre() -> None:
    chart = EWMAChart().fit(0.0, 1.0)
    chart.update(9.0)
    chart.reset()
    assert (chart.ewma_, chart.t_) == (0.0, 0)
    cusum = CUSUMChart().fit(0.0, 1.0)
    cusum.update(9.0)
    cusum.reset()
    assert (cusum.high_, cusum.low_, cusum.t_) == (0.0, 0.0, 0)


def test_cusum_sums_by_hand() -> None:
    chart = CUSUMChart(k=0.5, h=2.0).fit(10.0, 2.0)
    p1 = chart.update(13.0)  # z = 1.5
    assert (p1.high, p1.low, p1.breach) == (1.0, 0.0, False)
    p2 = chart.update(13.0)
    assert (p2.high, p2.breach) == (2.0, False)
    p3 = chart.update(12.0)  # z = 1.0
    assert (p3.high, p3.breach) == (2.5, True)
    down = CUSUMChart(k=0.5, h=2.0).fit(10.0, 2.0)
    p = down.update(4.0)  # z = -3
    assert (p.high, p.low, p.breach) == (0.0, 2.5, True)


@pytest.mark.parametrize(
    "action",
    [
        lambda c: c.update(1.0),
        lambda c: c.reset(),
        lambda c: c.to_dict(),
    ],
)
@pytest.mark.parametrize("make", [EWMAChart, CUSUMChart])
def test_unfitted_charts_name_the_missing_call(
    make: Callable[[], Chart], action: Callable[[Chart], object]
) -> None:
    with pytest.raises(PlinthError, match=r"fit\(reference_mean") as info:
        action(make())
    assert info.value.code == "core.not_fitted"


def test_unfitted_ewma_limits_are_refused() -> None:
    with pytest.raises(PlinthError) as info:
        EWMAChart().limits(1)
    assert info.value.code == "core.not_fitted"


@pytest.mark.parametrize(
    "build",
    [
        lambda: EWMAChart(lam=0.0).fit(0, 1),
        lambda: EWMAChart(L=-1).fit(0, 1),
        lambda: EWMAChart().fit(0, 0),
        lambda: EWMAChart().fit(math.nan, 1),
        lambda: EWMAChart().fit_warmup([1.0]),
        lambda: CUSUMChart(h=0).fit(0, 1),
        lambda: EWMAChart().fit(0, 1).update(math.inf),
    ],
)
def test_bad_parameters_and_points_are_refused(build: Callable[[], object]) -> None:
    with pytest.raises(PlinthError) as info:
        build()
    assert info.value.code == "control.invalid"


# ---------------------------------------------------------------- behaviour over seeds
# The delays below are the ones stated in plinth/core/control.py and docs/monitoring.md.


def _delays(make: Callable[[], Chart], shift: np.ndarray, seeds: range) -> np.ndarray:
    delays = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        found = run_length(make().fit(0.0, 1.0), rng.normal(0.0, 1.0, shift.size) + shift)
        delays.append(shift.size + 1 if found is None else found)
    return np.asarray(delays)


def test_ewma_catches_a_half_sigma_step_within_the_stated_delay() -> None:
    delays = _delays(EWMAChart, np.full(400, 0.5), range(300))
    assert np.median(delays) <= 40  # stated: 33
    assert np.mean(delays <= 130) >= 0.92  # stated: 95 % within 130


def test_ewma_catches_a_gradual_drift_to_half_sigma_within_the_stated_delay() -> None:
    ramp = 0.5 * np.minimum(np.arange(1, 401) / 20, 1.0)  # reaches 0.5 sigma at interval 20
    delays = _delays(EWMAChart, ramp, range(300))
    assert np.median(delays) <= 52  # stated: 44
    assert np.mean(delays <= 145) >= 0.92  # stated: 95 % within 145


def test_cusum_catches_a_half_sigma_step() -> None:
    delays = _delays(CUSUMChart, np.full(400, 0.5), range(200))
    assert np.median(delays) <= 38 and np.mean(delays <= 110) >= 0.92


@pytest.mark.parametrize("make", [EWMAChart, CUSUMChart])
def test_in_control_false_alarms_are_rare(make: Callable[[], Chart]) -> None:
    # Average run length to a false alarm, censored at 1000 intervals: about 440 for the
    # EWMA (ARL0 ~ 520) and 400 for the CUSUM (ARL0 ~ 465); 300 leaves room for noise.
    delays = _delays(make, np.zeros(1000), range(200))
    assert delays.mean() >= 300
    assert np.mean(delays <= 50) <= 0.15  # ~8 % expected
