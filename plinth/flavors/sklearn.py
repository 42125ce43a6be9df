"""scikit-learn estimators and Pipelines, stored with skops."""

from __future__ import annotations

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

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict(self._input(frame)))

    def _input(self, frame: pd.DataFrame) -> Any:
        # A model fitted on a bare array must get an array, or scikit-learn warns
        # about feature names on every call.
        if getattr(self.model, "feature_names_in_", None) is None:
            return frame.to_numpy()
        return frame
