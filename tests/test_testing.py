"""check_flavor catches each way a flavor can break the contract serving and replay rely on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plinth.testing import check_flavor
from tests.support import regression_table

FEATURES = regression_table()[["a", "b"]]


class _Classifier:
    classes_ = np.array(["no", "yes"])

    def _p(self, frame: pd.DataFrame) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-frame["a"].to_numpy(dtype=float)))
        return np.column_stack([1.0 - p, p])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.classes_[np.argmax(self._p(frame), axis=1)])

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self._p(frame)


class Honest(_Classifier):
    pass


class SwappedColumns(_Classifier):
    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self._p(frame)[:, ::-1]


class NotSummingToOne(_Classifier):
    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self._p(frame) * 0.9


class BatchDependent:
    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        a = frame["a"].to_numpy(dtype=float)
        return a - a.mean()


class Noisy:
    def __init__(self) -> None:
        self.calls = 0

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        self.calls += 1
        return frame["a"].to_numpy(dtype=float) + self.calls


class OneColumn:
    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return frame["a"].to_numpy(dtype=float)[:, None]


class UnnamedFeatures(Honest):
    feature_names_in_ = np.array(["a", "nope"])


def test_an_honest_plain_classifier_passes() -> None:
    report = check_flavor(Honest(), FEATURES, trust_pickle=True)
    assert report.flavor == "python" and len(report.passed) == 9 and not report.served_faster


@pytest.mark.parametrize(
    ("model", "failed"),
    [
        (SwappedColumns(), r"- predict_proba: .*most probable class is not the prediction"),
        (NotSummingToOne(), r"- predict_proba: .*sums to 1 -0\.1"),
        (BatchDependent(), r"- batch_vs_single: .*row 0 alone"),
        (Noisy(), r"- deterministic: .*a second call"),
        (OneColumn(), r"- predict: .*shape \(300, 1\)"),
    ],
)
def test_each_broken_promise_is_named(model: object, failed: str) -> None:
    with pytest.raises(AssertionError, match=failed):
        check_flavor(model, FEATURES, trust_pickle=True)


def test_feature_names_must_be_columns_of_the_sample() -> None:
    with pytest.raises(KeyError, match="nope"):
        check_flavor(UnnamedFeatures(), FEATURES, trust_pickle=True)


def test_an_unregistered_model_needs_a_sample() -> None:
    with pytest.raises(ValueError, match="needs sample feature rows"):
        check_flavor(Honest())
