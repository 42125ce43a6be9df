"""Performance metrics: hand-computed cases, then scikit-learn as an independent referee."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as sk

from plinth.core.metrics import (
    classification_metrics,
    expected_calibration_error,
    regression_metrics,
    roc_auc_binary,
)
from plinth.errors import PlinthError


def test_binary_metrics_by_hand() -> None:
    # truth:     n  n  p  p  p
    # predicted: n  p  p  p  n   -> tp=2 fp=1 fn=1 tn=1
    y = ["no", "no", "yes", "yes", "yes"]
    p_yes = np.array([0.2, 0.6, 0.9, 0.7, 0.4])
    m = classification_metrics(y, np.column_stack([1 - p_yes, p_yes]), ["no", "yes"])
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    # class "no": tp=1, predicted 2, actual 2 -> precision = recall = f1 = 1/2
    assert m["precision_macro"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    # positives score 0.9, 0.7, 0.4; negatives 0.2, 0.6: pairs won 3 + 2 + 1 = 5 of 6
    assert m["roc_auc"] == pytest.approx(5 / 6)
    chosen = [0.8, 0.4, 0.9, 0.7, 0.4]
    assert m["log_loss"] == pytest.approx(-np.mean(np.log(chosen)))
    # confidences 0.8 0.6 0.9 0.7 0.6 -> bins 8, 6, 9, 7, 6; correct 1 0 1 1 0
    # |gaps|: bin 6: |0-0.6 + 0-0.6| = 1.2, bin 7: 0.3, bin 8: 0.2, bin 9: 0.1 -> 1.8 / 5
    assert m["ece"] == pytest.approx(1.8 / 5)


def test_one_dimensional_probabilities_mean_the_positive_class() -> None:
    p = np.array([0.1, 0.8, 0.3])
    assert classification_metrics([0, 1, 1], p, [0, 1]) == classification_metrics(
        [0, 1, 1], np.column_stack([1 - p, p]), [0, 1]
    )


def test_auc_ties_count_half_and_undefined_is_left_out() -> None:
    assert roc_auc_binary([0, 1], [0.5, 0.5]) == 0.5
    assert roc_auc_binary([1, 1], [0.2, 0.9]) is None
    m = classification_metrics([1, 1], np.array([[0.3, 0.7], [0.6, 0.4]]), [0, 1])
    assert "roc_auc" not in m
    assert m["precision"] == 1.0 and m["recall"] == 0.5


def test_log_loss_is_clipped_not_infinite() -> None:
    m = classification_metrics([0], np.array([[0.0, 1.0]]), [0, 1])
    assert m["log_loss"] == pytest.approx(-math.log(1e-15))


def test_ece_of_a_perfectly_calibrated_bin_is_zero() -> None:
    assert expected_calibration_error([1, 0], [0.5, 0.5]) == 0.0
    assert expected_calibration_error([1], [1.0]) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_classification_matches_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    classes = ["a", "b", "c", "d"]
    y = rng.choice(classes, 300)
    logits = rng.normal(size=(300, 4)) + 1.5 * (y[:, None] == np.array(classes))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    m = classification_metrics(y, proba, classes)
    predicted = np.asarray(classes)[proba.argmax(axis=1)]
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, predicted))
    for name, fn in [
        ("precision_macro", sk.precision_score),
        ("recall_macro", sk.recall_score),
        ("f1_macro", sk.f1_score),
    ]:
        expected = fn(y, predicted, labels=classes, average="macro", zero_division=0)
        assert m[name] == pytest.approx(expected)
    expected_auc = sk.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes)
    assert m["roc_auc"] == pytest.approx(expected_auc)
    assert m["log_loss"] == pytest.approx(sk.log_loss(y, proba, labels=classes))


@pytest.mark.parametrize("seed", range(5))
def test_binary_matches_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    p1 = np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, 0.3, 200), 0.001, 0.999)
    p1[:20] = np.round(p1[:20], 1)  # some ties for the rank-based AUC
    m = classification_metrics(y, p1, [0, 1])
    predicted = (p1 > 0.5).astype(int)
    assert m["precision"] == pytest.approx(sk.precision_score(y, predicted, zero_division=0))
    assert m["recall"] == pytest.approx(sk.recall_score(y, predicted))
    assert m["f1"] == pytest.approx(sk.f1_score(y, predicted))
    assert m["roc_auc"] == pytest.approx(sk.roc_auc_score(y, p1))


def test_unknown_labels_and_bad_shapes_are_named() -> None:
    with pytest.raises(PlinthError, match="not among") as info:
        classification_metrics(["a", "z"], np.array([[0.5, 0.5], [0.5, 0.5]]), ["a", "b"])
    assert info.value.code == "metrics.unknown_label"
    with pytest.raises(PlinthError) as info:
        classification_metrics(["a"], np.array([[0.5, 0.25, 0.25]]), ["a", "b"])
    assert info.value.code == "metrics.shape_mismatch"
    with pytest.raises(PlinthError) as info:
        classification_metrics([], np.zeros((0, 2)), ["a", "b"])
    assert info.value.code == "metrics.empty"


def test_regression_by_hand() -> None:
    m = regression_metrics([1.0, 2.0, 0.0, 4.0], [2.0, 2.0, 1.0, 2.0])
    assert m["mae"] == pytest.approx((1 + 0 + 1 + 2) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((1 + 0 + 1 + 4) / 4))
    # the zero target is skipped: |1/1|, |0/2|, |2/4|
    assert m["mape"] == pytest.approx((1 + 0 + 0.5) / 3)
    # mean 1.75; total sum of squares 0.5625 + 0.0625 + 3.0625 + 5.0625 = 8.75
    assert m["r2"] == pytest.approx(1 - 6 / 8.75)


@pytest.mark.parametrize("seed", range(3))
def test_regression_matches_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(5, 2, 150)
    pred = y + rng.normal(0, 1, 150)
    m = regression_metrics(y, pred)
    assert m["mae"] == pytest.approx(sk.mean_absolute_error(y, pred))
    assert m["rmse"] == pytest.approx(math.sqrt(sk.mean_squared_error(y, pred)))
    assert m["mape"] == pytest.approx(sk.mean_absolute_percentage_error(y, pred))
    assert m["r2"] == pytest.approx(sk.r2_score(y, pred))


def test_undefined_regression_metrics_are_left_out() -> None:
    m = regression_metrics([0.0, 0.0], [1.0, -1.0])
    assert set(m) == {"mae", "rmse"}


def test_regression_rejects_bad_input() -> None:
    with pytest.raises(PlinthError) as info:
        regression_metrics([1.0, 2.0], [1.0])
    assert info.value.code == "metrics.shape_mismatch"
    with pytest.raises(PlinthError) as info:
        regression_metrics([1.0, np.nan], [1.0, 2.0])
    assert info.value.code == "metrics.non_finite"
