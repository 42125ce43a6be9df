"""scikit-learn estimators and Pipelines, stored with skops."""

from __future__ import annotations

import copy
import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from plinth.flavors.base import Flavor
from plinth.flavors.sklearn_forest import DirectForest


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
        # The cheaper exact way of calling the model chosen by serve_faster, if any, and
        # whether it takes a plain float array rather than the frame.
        self._fast: Any = None
        self._fast_takes_array = False

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if self._fast is not None:
            return np.asarray(self._fast.predict(self._fast_input(frame)))
        return np.asarray(self.model.predict(self._input(frame)))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray | None:
        if self._fast is not None and self.has_proba:
            return np.asarray(self._fast.predict_proba(self._fast_input(frame)))
        return super().predict_proba(frame)

    def serve_faster(self, probe: pd.DataFrame) -> bool:
        """Pick the cheapest call that answers ``probe`` bit for bit as the model does.

        Two savings, tried together and then alone. scikit-learn spends more time
        validating a one-row DataFrame (dtypes, feature names) than a forest spends
        predicting it, so an all-numeric model fitted on a DataFrame can take a float array
        instead — given to a shallow copy without ``feature_names_in_`` (it would warn
        otherwise; the fitted parts are shared, nothing is copied). And a forest (or a
        Pipeline ending in one) can be called tree by tree without joblib
        (plinth.flavors.sklearn_forest). A candidate is kept only if it gives the same
        predictions and probabilities with no warning; a Pipeline, a column selector by
        name or a categorical column fails the array check and keeps the DataFrame.
        """
        candidates: list[tuple[Any, bool]] = []
        stripped = self._array_copy(probe)
        if stripped is not None:
            candidates += [(DirectForest.of(stripped), True), (stripped, True)]
        candidates.append((DirectForest.of(self.model), False))
        for caller, takes_array in candidates:
            if caller is not None and self._answers_as_model(probe, caller, takes_array):
                self._fast, self._fast_takes_array = caller, takes_array
                return True
        return False

    def _array_copy(self, probe: pd.DataFrame) -> Any:
        names = getattr(self.model, "feature_names_in_", None)
        if names is None or "feature_names_in_" not in vars(self.model):
            return None
        if [str(n) for n in names] != [str(c) for c in probe.columns] or not all(
            pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t)
            for t in probe.dtypes
        ):
            return None
        stripped = copy.copy(self.model)
        del stripped.feature_names_in_
        return stripped

    def _answers_as_model(self, probe: pd.DataFrame, caller: Any, takes_array: bool) -> bool:
        calls = ["predict", "predict_proba"] if self.has_proba else ["predict"]
        # Recording (not raising) warnings: the filter list is process-wide, and another
        # thread's warning must not turn into an error in its request.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                given = probe.to_numpy(dtype=np.float64) if takes_array else self._input(probe)
                same = all(
                    _same(getattr(self.model, c)(self._input(probe)), getattr(caller, c)(given))
                    for c in calls
                )
            except Exception:  # any refusal means: keep the usual way
                return False
        return same and not caught

    def _fast_input(self, frame: pd.DataFrame) -> Any:
        return frame.to_numpy(dtype=np.float64) if self._fast_takes_array else self._input(frame)

    def _input(self, frame: pd.DataFrame) -> Any:
        # A model fitted on a bare array must get an array, or scikit-learn warns
        # about feature names on every call.
        if getattr(self.model, "feature_names_in_", None) is None:
            return frame.to_numpy()
        return frame


def _same(usual: Any, fast: Any) -> bool:
    a, b = np.asarray(usual), np.asarray(fast)
    return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
