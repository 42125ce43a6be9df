"""The output contract: every rule, judged row by row, and the confidence measures."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest

import plinth.core.output as output_module
from plinth.core.output import OutputContract, confidence, margin
from plinth.errors import ModelError, Problem

CLASSIFIER = OutputContract("classification", classes=["no", "yes"])
REGRESSOR = OutputContract("regression")


def bad_rows(problems: list[Problem | None]) -> list[int]:
    return [i for i, p in enumerate(problems) if p is not None]


def messages(problems: list[Problem | None]) -> list[str | None]:
    return [p.message if p is not None else None for p in problems]


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(output_module).failed == 0


def test_round_trip_through_json() -> None:
    contract = OutputContract("classification", classes=[0, 1, 2], tolerance=1e-4)
    back = OutputContract.from_dict(json.loads(json.dumps(contract.to_dict())))
    assert back == contract
    assert OutputContract.from_dict({"task": "regression"}) == REGRESSOR


def test_an_unknown_task_is_refused() -> None:
    with pytest.raises(ModelError) as info:
        OutputContract("ranking")  # type: ignore[arg-type]
    assert info.value.code == "model.invalid_output_contract"
    with pytest.raises(ModelError, match="task must be one of"):
        OutputContract.from_dict({"classes": [0, 1]})


# --- regression ---------------------------------------------------------------------------


def test_finite_regression_predictions_pass() -> None:
    assert REGRESSOR.check(np.array([1.0, -2.5, 0.0]), None, 3) == [None, None, None]
    assert REGRESSOR.check(np.array([[1.0], [2.0]]), None, 2) == [None, None]  # a column


def test_one_non_finite_prediction_marks_only_its_row() -> None:
    problems = REGRESSOR.check(np.array([1.0, np.nan, 3.0, np.inf, -np.inf]), None, 5)
    assert bad_rows(problems) == [1, 3, 4]
    problem = problems[1]
    assert problem is not None
    assert (problem.code, problem.record) == ("model.bad_output", 1)
    assert problem.message == "prediction nan is not a finite number"
    assert "rollback" in problem.hint


def test_non_numeric_regression_predictions_are_bad() -> None:
    problems = REGRESSOR.check(np.array([1.0, "x", None], dtype=object), None, 3)
    assert bad_rows(problems) == [1, 2]


# --- classification -------------------------------------------------------------------------


def test_known_labels_with_good_probabilities_pass() -> None:
    proba = np.array([[0.3, 0.7], [1.0, 0.0]])
    assert CLASSIFIER.check(np.array(["yes", "no"]), proba, 2) == [None, None]
    assert CLASSIFIER.check(np.array(["yes", "no"]), None, 2) == [None, None]


def test_a_label_outside_the_classes_is_bad() -> None:
    problems = CLASSIFIER.check(np.array(["yes", "maybe", "no"]), None, 3)
    assert messages(problems) == [None, "predicted 'maybe', which is not one of the classes", None]


def test_labels_compare_as_python_values() -> None:
    contract = OutputContract("classification", classes=[0, 1])
    assert contract.check(np.array([1, 0, 2], dtype=np.int64), None, 3)[:2] == [None, None]
    assert bad_rows(contract.check(np.array([1, 0, 2]), None, 3)) == [2]
    unhashable = np.empty(1, dtype=object)
    unhashable[0] = [1]
    assert bad_rows(contract.check(unhashable, None, 1)) == [0]


def test_without_classes_any_label_is_accepted() -> None:
    contract = OutputContract("classification")
    assert contract.check(np.array(["a", "b"]), np.array([[0.5, 0.5], [0.1, 0.9]]), 2) == [
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ([np.nan, 0.5], "probabilities are not all finite"),
        ([np.inf, 0.0], "probabilities are not all finite"),
        ([-0.1, 1.1], "probabilities are not all within [0, 1]"),
        ([1.5, -0.5], "probabilities are not all within [0, 1]"),
        ([0.5, 0.6], "probabilities sum to 1.1, not 1"),
        ([0.2, 0.2], "probabilities sum to 0.4, not 1"),
    ],
)
def test_a_bad_probability_row_marks_only_that_row(row: list[float], reason: str) -> None:
    proba = np.array([[0.5, 0.5], row, [0.0, 1.0]])
    problems = CLASSIFIER.check(np.array(["no", "no", "yes"]), proba, 3)
    assert messages(problems) == [None, reason, None]


def test_probabilities_may_miss_one_by_the_tolerance() -> None:
    proba = np.array([[0.5, 0.5 + 5e-7], [0.5, 0.5 + 5e-6]])
    assert bad_rows(CLASSIFIER.check(np.array(["no", "no"]), proba, 2)) == [1]
    loose = OutputContract("classification", classes=["no", "yes"], tolerance=1e-5)
    assert loose.check(np.array(["no", "no"]), proba, 2) == [None, None]


def test_every_reason_of_a_row_is_given() -> None:
    problems = CLASSIFIER.check(np.array(["maybe"]), np.array([[0.5, 0.6]]), 1)
    assert messages(problems) == [
        "predicted 'maybe', which is not one of the classes; probabilities sum to 1.1, not 1"
    ]


def test_non_numeric_probabilities_mark_every_row() -> None:
    proba = np.array([["a", "b"], ["c", "d"]], dtype=object)
    assert bad_rows(CLASSIFIER.check(np.array(["no", "no"]), proba, 2)) == [0, 1]


# --- shape ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("predictions", "probabilities", "reason"),
    [
        (np.array([1.0, 2.0]), None, "predictions of shape (2,) for 3 rows"),
        (np.array([1.0, 2.0, 3.0, 4.0]), None, "predictions of shape (4,) for 3 rows"),
        (np.array(1.0), None, "predictions of shape () for 3 rows"),
        (np.ones((3, 2)), None, "predictions of shape (3, 2) for 3 rows"),
        (np.array(["no"] * 3), np.full((3, 3), 1 / 3), "probabilities of shape (3, 3), not (3, 2)"),
        (np.array(["no"] * 3), np.full((2, 2), 0.5), "probabilities of shape (2, 2), not (3, 2)"),
        (np.array(["no"] * 3), np.full(3, 0.5), "probabilities of shape (3,), not (3, 2)"),
    ],
)
def test_a_wrong_shape_marks_every_row(
    predictions: np.ndarray, probabilities: np.ndarray | None, reason: str
) -> None:
    problems = CLASSIFIER.check(predictions, probabilities, 3)
    assert bad_rows(problems) == [0, 1, 2]
    assert all(p is not None and p.message.endswith(reason) for p in problems)
    assert [p.record for p in problems if p is not None] == [0, 1, 2]


def test_without_classes_any_probability_width_is_accepted() -> None:
    contract = OutputContract("classification")
    assert contract.check(np.array([0]), np.array([[0.2, 0.3, 0.5]]), 1) == [None]
    assert bad_rows(contract.check(np.array([0]), np.array([[0.2, 0.3, 0.5]] * 2), 1)) == [0]


def test_no_rows_no_problems() -> None:
    assert CLASSIFIER.check(np.array([]), np.zeros((0, 2)), 0) == []


# --- confidence and margin ------------------------------------------------------------------


def test_confidence_is_the_top_probability() -> None:
    proba = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]])
    assert confidence(proba).tolist() == [0.7, 0.5]


def test_margin_is_top_minus_second() -> None:
    proba = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25], [0.5, 0.5, 0.0]])
    assert margin(proba).tolist() == pytest.approx([0.5, 0.25, 0.0])


def test_margin_with_one_class_is_one() -> None:
    assert margin(np.array([[1.0], [np.nan]])).tolist()[0] == 1.0
    assert np.isnan(margin(np.array([[1.0], [np.nan]]))[1])


def test_nan_rows_stay_nan_and_do_not_touch_others() -> None:
    proba = np.array([[np.nan, 0.5], [0.2, 0.8]])
    assert np.isnan(confidence(proba)[0]) and confidence(proba)[1] == 0.8
    assert np.isnan(margin(proba)[0]) and margin(proba)[1] == pytest.approx(0.6)


def test_degenerate_inputs_give_nan_per_row() -> None:
    assert np.isnan(confidence(np.zeros((2, 0)))).all()
    assert np.isnan(margin(np.zeros((2, 0)))).all()
    assert confidence(np.zeros((0, 2))).shape == (0,)
    assert margin(np.zeros((0, 3))).shape == (0,)
