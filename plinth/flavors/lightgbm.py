"""LightGBM models in LightGBM's text format (``pip install 'plinth-ml[lightgbm]'``).

The artifact is the text model file ``Booster.save_model`` writes (``.txt``); never pickle.
The text file keeps the trees, the objective and the pandas category mappings but not a
scikit-learn classifier's label encoder, so a classifier's classes are the integers 0..k-1
that LightGBM trains on: an ``LGBMClassifier`` fitted on other labels is refused with a hint
to encode them first. LightGBM writes spaces in feature names as ``_``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from plinth.errors import LightGBMLabelsError
from plinth.flavors.base import Flavor, _plain, defined_in, require

TEXT = "lightgbm-text"
# The parameters worth keeping in a version's lineage (the text file records ~100).
_LINEAGE_PARAMS = (
    "objective",
    "boosting",
    "num_iterations",
    "learning_rate",
    "num_leaves",
    "max_depth",
    "min_data_in_leaf",
    "lambda_l1",
    "lambda_l2",
    "feature_fraction",
    "bagging_fraction",
    "num_class",
)


class LightGBMModel:
    """A LightGBM ``Booster`` with the scikit-learn surface Plinth reads."""

    def __init__(self, text: str) -> None:
        lgb = require("lightgbm", "lightgbm")
        self.text = text
        self.booster = lgb.Booster(model_str=text)
        objective = str(self.booster.params.get("objective", "regression"))
        self.objective = objective
        self.n_features_in_ = int(self.booster.num_feature())
        names = list(self.booster.feature_name())
        if names != [f"Column_{i}" for i in range(len(names))]:  # LightGBM's own names
            self.feature_names_in_ = np.asarray(names)
        if objective.startswith(("binary", "multiclass")):
            self.classes_ = np.arange(max(2, int(self.booster.num_model_per_iteration())))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if not hasattr(self, "classes_"):
            return np.asarray(self.booster.predict(frame))
        return np.asarray(self.classes_[np.argmax(self.predict_proba(frame), axis=1)])

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        if not hasattr(self, "classes_"):
            raise AttributeError("a LightGBM regressor has no probabilities")
        raw = np.asarray(self.booster.predict(frame))
        if raw.ndim == 1:  # binary: the probability of class 1
            return np.column_stack([1.0 - raw, raw])
        return raw

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        return {k: self.booster.params[k] for k in _LINEAGE_PARAMS if k in self.booster.params}


class LightGBMFlavor(Flavor):
    """``LGBMClassifier``, ``LGBMRegressor`` or a ``Booster``, stored as LightGBM text."""

    name: ClassVar[str] = "lightgbm"
    formats: ClassVar[tuple[str, ...]] = (TEXT,)
    suffixes: ClassVar[dict[str, str]] = {".txt": TEXT}

    @classmethod
    def accepts(cls, model: Any) -> bool:
        return isinstance(model, LightGBMModel) or (
            defined_in(model, "lightgbm")
            and (type(model).__name__ == "Booster" or hasattr(model, "booster_"))
        )

    @classmethod
    def dump(cls, model: Any) -> tuple[bytes, str]:
        if isinstance(model, LightGBMModel):
            return model.text.encode(), TEXT
        if type(model).__name__ == "Booster":
            return str(model.model_to_string()).encode(), TEXT
        classes = getattr(model, "classes_", None)
        if classes is not None and [_plain(c) for c in np.asarray(classes).tolist()] != list(
            range(len(classes))
        ):
            raise LightGBMLabelsError(
                f"The LGBMClassifier was fitted on labels {list(classes)[:5]}; LightGBM's "
                "text format keeps only their positions 0..k-1.",
            )
        return str(model.booster_.model_to_string()).encode(), TEXT

    @classmethod
    def load(cls, data: bytes, fmt: str) -> LightGBMFlavor:
        return cls(LightGBMModel(data.decode()))

    @property
    def has_proba(self) -> bool:
        return hasattr(self.model, "classes_")

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict(frame))

    def params(self) -> dict[str, Any]:
        return {str(k): _plain(v) for k, v in self.model.get_params().items()}
