"""The validation gate: absolute bars, paired non-inferiority, slices and the contract."""

from __future__ import annotations

import doctest

import numpy as np

from plinth.core import gate as gate_module
from plinth.core.gate import contract_diff, judge
from plinth.core.gate_policy import GatePolicy


def test_doctests() -> None:
    assert doctest.testmod(gate_module).failed == 0


def _values(seed: int = 0, n: int = 500) -> np.ndarray:
    return np.random.default_rng(seed).normal(10, 3, size=n)


def test_a_worse_regressor_is_rejected_with_its_numbers() -> None:
    y = _values()
    rng = np.random.default_rng(1)
    verdict = judge(
        GatePolicy(absolute={"rmse": 1.0}),
        "regression",
        y,
        candidate=y + rng.normal(scale=2.0, size=y.size),
        champion=y + rng.normal(scale=0.5, size=y.size),
    )
    assert not verdict.passed
    assert verdict.relative["ok"] is False and verdict.relative["lower"] > 1.0
    assert verdict.absolute == [
        {
            "metric": "rmse",
            "value": verdict.metrics["candidate"]["rmse"],
            "bar": 1.0,
            "op": "<=",
            "ok": False,
        }
    ]
    assert verdict.metrics["candidate"]["rmse"] > 1.5 > 0.6 > verdict.metrics["champion"]["rmse"]
    assert len(verdict.reasons) == 2


def test_a_noisy_tie_is_not_called_a_win() -> None:
    y = _values(n=60)
    rng = np.random.default_rng(2)
    same = y + rng.normal(scale=1.0, size=y.size)
    candidate = same + rng.normal(scale=0.05, size=y.size)
    loose = judge(
        GatePolicy(max_regression=0.5), "regression", y, candidate=candidate, champion=same
    )
    assert loose.passed and not loose.relative["improved"]
    strict = judge(
        GatePolicy(max_regression=0.5, require_improvement=True),
        "regression",
        y,
        candidate=candidate,
        champion=same,
    )
    assert not strict.passed and "no proven improvement" in strict.reasons[0]


def test_mcnemar_on_classes_counts_the_discordant_pairs() -> None:
    y = np.array(["a"] * 200 + ["b"] * 200, dtype=object)
    champion = y.copy()
    champion[:60] = "b"  # champion wrong on 60
    candidate = y.copy()
    candidate[50:55] = "b"  # candidate wrong on 5 (all where the champion is wrong too)
    verdict = judge(GatePolicy(), "classification", y, candidate=candidate, champion=champion)
    r = verdict.relative
    assert (r["candidate_only_wrong"], r["champion_only_wrong"]) == (0, 55)
    assert r["improved"] and r["p_better"] < 1e-10 and verdict.passed
    assert verdict.metrics["candidate"]["accuracy"] == 395 / 400
    backwards = judge(GatePolicy(), "classification", y, candidate=champion, champion=candidate)
    assert not backwards.passed and backwards.relative["change"] == 55 / 400


def test_a_slice_worse_than_allowed_blocks_even_when_the_whole_is_better() -> None:
    y = _values(n=400)
    rng = np.random.default_rng(3)
    cut = np.array(["ideal"] * 100 + ["fair"] * 300, dtype=object)
    champion = y + rng.normal(scale=1.0, size=y.size)
    candidate = y + rng.normal(scale=0.3, size=y.size)
    candidate[:100] = y[:100] + rng.normal(scale=1.5, size=100)  # ideal got worse
    verdict = judge(
        GatePolicy(slices=("cut",)),
        "regression",
        y,
        candidate=candidate,
        champion=champion,
        slices={"cut": cut},
    )
    assert verdict.relative["ok"]
    failing = [s for s in verdict.slices if not s["ok"]]
    assert [(s["value"], s["rows"]) for s in failing] == [("ideal", 100)]
    assert not verdict.passed and verdict.reasons[0].startswith("slice cut=ideal")


def test_a_removed_field_blocks_unless_the_policy_only_reports() -> None:
    old = {"fields": [{"name": "a", "kind": "numeric"}, {"name": "b", "kind": "numeric"}]}
    new = {"fields": [{"name": "a", "kind": "numeric"}]}
    y = _values(n=50)
    args = dict(candidate=y, champion=y + 1, contracts=(old, new))
    blocked = judge(GatePolicy(), "regression", y, **args)  # type: ignore[arg-type]
    assert not blocked.passed and blocked.contract["removed"] == ["b"]
    reported = judge(GatePolicy(contract="report"), "regression", y, **args)  # type: ignore[arg-type]
    assert reported.passed and reported.contract["breaking"] and not reported.contract["blocks"]
    assert contract_diff(old, old)["breaking"] is False
