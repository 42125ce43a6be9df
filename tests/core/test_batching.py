"""The batching rule: learn a model's cost, wait only when waiting pays."""

from __future__ import annotations

import doctest

import pytest

import plinth.core.batching as batching
from plinth.core.batching import CallCost, wait_budget


def _forest() -> CallCost:
    cost = CallCost()
    for rows in (1, 64, 8, 32, 1, 64):
        cost.observe(rows, 0.003 + 0.00005 * rows)
    return cost


def test_the_docstring_examples_run() -> None:
    assert doctest.testmod(batching).failed == 0


def test_the_cost_follows_a_model_that_gets_slower() -> None:
    cost = _forest()
    for _ in range(200):
        for rows in (1, 64):
            cost.observe(rows, 2 * (0.003 + 0.00005 * rows))
    assert cost.fixed == pytest.approx(0.006, rel=0.05)
    assert cost.per_row == pytest.approx(0.0001, rel=0.05)


def test_one_batch_size_only_gives_a_fixed_cost() -> None:
    cost = CallCost()
    for _ in range(5):
        cost.observe(1, 0.004)
    assert cost.per_row == 0.0 and cost.fixed == pytest.approx(0.004)


def test_no_wait_at_light_load_or_after_a_burst() -> None:
    cost = _forest()
    common = {"max_rows": 64, "max_wait_s": 0.005, "slack_s": 30.0}
    assert wait_budget(cost, queued=1, rate=150.0, **common) == 0.0  # one client
    assert wait_budget(cost, queued=1, rate=0.0, **common) == 0.0  # the burst is over
    assert wait_budget(CallCost(), queued=1, rate=1e4, **common) == 0.0  # nothing learned yet


def test_under_load_it_waits_a_bounded_time() -> None:
    cost = _forest()
    wait = wait_budget(cost, queued=16, max_rows=64, rate=5000.0, max_wait_s=0.005, slack_s=30)
    assert 0 < wait <= min(0.005, cost.fixed / 2, 48 / 5000.0)
    assert wait_budget(cost, queued=64, max_rows=64, rate=5e3, max_wait_s=0.005, slack_s=30) == 0
    assert wait_budget(cost, queued=16, max_rows=64, rate=5e3, max_wait_s=0.0, slack_s=30) == 0


def test_never_past_the_earliest_deadline() -> None:
    cost = _forest()
    tight = wait_budget(cost, queued=16, max_rows=64, rate=5000.0, max_wait_s=0.005, slack_s=0.004)
    assert tight == 0.0  # the call itself needs ~4 ms of the 4 ms left


def test_a_model_whose_cost_is_all_per_row_gains_nothing_from_waiting() -> None:
    cost = CallCost()
    for rows in (1, 8, 32, 64):
        cost.observe(rows, 0.0001 + 0.001 * rows)
    assert wait_budget(cost, queued=4, max_rows=64, rate=5e4, max_wait_s=0.005, slack_s=30) == 0
