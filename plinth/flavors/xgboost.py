"""XGBoost models in XGBoost's own format (``pip install 'plinth-ml[xgboost]'``).

The artifact is what ``save_model`` writes: UBJSON (``.ubj``, the default for objects) or
JSON (``.json``); never pickle. A file written by ``XGBClassifier``/``XGBRegressor`` records
which of the two it was; a bare ``Booster``'s file is told apart by its objective
(``binary:*``, ``multi:*`` are classifiers). XGBoost numbers classes 0..k-1, so a
classifier's target must hold those integers.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from plinth.flavors.base import Flavor, _plain, defined_in, require

UBJ = "xgboost-ubj"
JSON = "xgboost-json"


class XGBoostFlavor(Flavor):
    """``XGBClassifier``, ``XGBRegressor`` (and their random-forest variants) or a ``Booster``."""

    name: ClassVar[str] = "xgboost"
    formats: ClassVar[tuple[str, ...]] = (UBJ, JSON)
    suffixes: ClassVar[dict[str, str]] = {".ubj": UBJ, ".json": JSON}

    @classmethod
    def accepts(cls, model: Any) -> bool:
        return defined_in(model, "xgboost") and (
            type(model).__name__ == "Booster" or callable(getattr(model, "save_model", None))
        )

    @classmethod
    def dump(cls, model: Any) -> tuple[bytes, str]:
        xgb = require("xgboost", "xgboost")
        if isinstance(model, xgb.Booster):
            return bytes(model.save_raw("ubj")), UBJ
        # XGBModel.save_model adds the scikit-learn wrapper's facts (estimator type) to the
        # file; it only writes to a path.
        with tempfile.TemporaryDirectory(prefix="plinth-xgb-") as tmp:
            path = os.path.join(tmp, "model.ubj")
            model.save_model(path)
            with open(path, "rb") as handle:
                return handle.read(), UBJ

    @classmethod
    def load(cls, data: bytes, fmt: str) -> XGBoostFlavor:
        xgb = require("xgboost", "xgboost")
        booster = xgb.Booster()
        booster.load_model(bytearray(data))  # XGBoost tells JSON from UBJSON itself
        meta = json.loads(booster.attr("scikit_learn") or "{}")
        kind = meta.get("_estimator_type")
        if kind is None:
            objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
            kind = "classifier" if objective.startswith(("binary:", "multi:")) else "regressor"
        if kind not in ("classifier", "regressor"):
            raise ValueError(f"an XGBoost {kind} is not a classifier or a regressor")
        model = xgb.XGBClassifier() if kind == "classifier" else xgb.XGBRegressor()
        model.load_model(bytearray(data))
        return cls(model)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict(frame))

    def params(self) -> dict[str, Any]:
        """The parameters the file recorded (a reloaded wrapper leaves the rest unset)."""
        return {
            str(k): _plain(v)
            for k, v in self.model.get_params(deep=False).items()
            if v is not None and k != "feature_types"
        }
