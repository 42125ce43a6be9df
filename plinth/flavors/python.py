"""Plain Python objects with ``predict(DataFrame)`` (and optionally ``predict_proba``)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from plinth.flavors.base import Flavor


class PythonFlavor(Flavor):
    """Anything with a ``predict`` method that takes a DataFrame; stored with pickle."""

    name: ClassVar[str] = "python"

    @classmethod
    def accepts(cls, model: Any) -> bool:
        return callable(getattr(model, "predict", None))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict(frame))
