"""scikit-learn estimators and Pipelines, stored with skops."""

from __future__ import annotations

import copy
import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from plinth.flavors.base import Flavor


class SklearnFlavor(Flavor):
    """Any fitted scikit-learn-compatible estimator, including Pipelines."""

    name: ClassVar[str] = "sklearn"

    @classmethod
    def accepts(cls, model: Any) -> bool:
        try:
            from sklearn.base import BaseEstimator
        except ImportError:  # pragma: no cover - scikit-learn is a dependency
            return False
        return isinstance(model, BaseEstimator) and callable(getattr(model, "predict", None))

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        # A shallow copy of the model that takes a plain float array (see serve_faster).
        self._array_model: Any = None

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if self._array_model is not None:
            return np.asarray(self._array_model.predict(frame.to_numpy(dtype=np.float64)))
        return np.asarray(self.model.predict(self._input(frame)))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray | None:
        if self._array_model is not None:
            return np.asarray(self._array_model.predict_proba(frame.to_numpy(dtype=np.float64)))
        return super().predict_proba(frame)

    def serve_faster(self, probe: pd.DataFrame) -> bool:
        """Feed an all-numeric model a float array instead of a DataFrame.

        scikit-learn spends more time validating a one-row DataFrame (dtypes, feature names)
        than a forest spends predicting it. A model fitted on a DataFrame warns when given an
        array, so the array goes to a shallow copy without ``feature_names_in_`` — the fitted
        parts are shared, nothing is copied. The switch is made only if the copy answers
        ``probe`` bit for bit as the model does (same predictions, same probabilities, no
        warning); a Pipeline, a column selector by name or a categorical column fails that
        and keeps the DataFrame.
        """
        names = getattr(self.model, "feature_names_in_", None)
        if names is None or "feature_names_in_" not in vars(self.model):
            return False
        if [str(n) for n in names] != [str(c) for c in probe.columns] or not all(
            pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t)
            for t in probe.dtypes
        ):
            return False
        stripped = copy.copy(self.model)
        del stripped.feature_names_in_
        calls = ["predict", "predict_proba"] if self.has_proba else ["predict"]
        # Recording (not raising) warnings: the filter list is process-wide, and another
        # thread's warning must not turn into an error in its request.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                array = probe.to_numpy(dtype=np.float64)
                same = all(
                    _same(getattr(self.model, c)(probe), getattr(stripped, c)(array)) for c in calls
                )
            except Exception:  # any refusal means: keep the usual way
                return False
        if not same or caught:
            return False
        self._array_model = stripped
        return True

    def _input(self, frame: pd.DataFrame) -> Any:
        # A model fitted on a bare array must get an array, or scikit-learn warns
        # about feature names on every call.
        if getattr(self.model, "feature_names_in_", None) is None:
            return frame.to_numpy()
        return frame


def _same(usual: Any, fast: Any) -> bool:
    a, b = np.asarray(usual), np.asarray(fast)
    return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
