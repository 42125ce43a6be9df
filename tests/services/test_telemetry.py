"""Batch updates of the Prometheus metrics: the same exposition as one update per value."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from plinth.core.interval import LatencyHistogram
from plinth.services import telemetry


def _histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        "t_seconds", "test", ["model"], buckets=telemetry.LATENCY_BUCKETS, registry=registry
    )


@pytest.mark.parametrize("size", [0, 1, 5, 64])
def test_observe_many_exposes_what_one_observe_per_value_does(size: int) -> None:
    rng = np.random.default_rng(size)
    # Durations around the buckets, exact bounds (a bound counts in its own bucket), past
    # the last bound (+Inf) and zero.
    values = [float(v) for v in rng.lognormal(np.log(0.005), 2.0, size)]
    values += [0.0, 0.001, 0.0025, 10.0, 11.0][: min(size, 5)]
    one, many = CollectorRegistry(), CollectorRegistry()
    by_one, by_many = _histogram(one).labels("m"), _histogram(many).labels("m")
    for value in values:
        by_one.observe(value)
    telemetry.observe_many(by_many, values)
    lines_one = generate_latest(one).decode().splitlines()
    lines_many = generate_latest(many).decode().splitlines()
    assert [ln for ln in lines_one if "_sum" not in ln and "_created" not in ln] == [
        ln for ln in lines_many if "_sum" not in ln and "_created" not in ln
    ]
    [sum_one] = [float(ln.split()[-1]) for ln in lines_one if ln.startswith("t_seconds_sum")]
    [sum_many] = [float(ln.split()[-1]) for ln in lines_many if ln.startswith("t_seconds_sum")]
    assert math.isclose(sum_one, sum_many, rel_tol=1e-12, abs_tol=1e-15)


def test_observe_many_refuses_the_unlabelled_parent() -> None:
    with pytest.raises(ValueError, match="missing label values"):
        telemetry.observe_many(_histogram(CollectorRegistry()), [0.1])


@pytest.mark.parametrize("size", [1, 3, 5, 6, 7, 64])
def test_latency_histogram_counts_a_batch_as_it_counts_each_value(size: int) -> None:
    values = np.random.default_rng(size).lognormal(np.log(0.004), 1.5, size).tolist()
    one, many = LatencyHistogram(), LatencyHistogram()
    for value in values:
        one.observe(value)
    many.observe_many(values)
    assert one.counts.tolist() == many.counts.tolist()
    assert many.count == size
