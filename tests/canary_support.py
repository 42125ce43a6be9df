"""Real models for canary-analysis tests: a linear champion, a good canary, a flaky canary.

Plain Python models (pickled, so registered with ``trust_pickle=True``); the e2e server
imports them from this module, which is on its PYTHONPATH.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: The flaky model fails above this ``a``: beyond the training table (max 3.07), so it
#: registers cleanly, and ``records`` puts one record in five there.
FLAKY_ABOVE = 3.5


class LinearModel:
    """3a - 2b + offset: the shape of the regression table, so outputs look alike."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        a = frame["a"].to_numpy(dtype=float)
        b = frame["b"].to_numpy(dtype=float)
        return 3.0 * a - 2.0 * b + self.offset


class FlakyModel(LinearModel):
    """Raises whenever a record has ``a`` above ``FLAKY_ABOVE`` (20 % of ``records``)."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if (frame["a"].to_numpy(dtype=float) > FLAKY_ABOVE).any():
            raise RuntimeError("a is in the range this version cannot handle")
        return super().predict(frame)


def records(seed: int, n: int, rare: float = 0.2) -> list[dict[str, Any]]:
    """``n`` records like the regression table's, a share ``rare`` with ``a`` in (3.5, 4.5)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    odd = rng.random(n) < rare
    a[odd] = rng.uniform(FLAKY_ABOVE, FLAKY_ABOVE + 1.0, int(odd.sum()))
    return [{"a": float(x), "b": float(y)} for x, y in zip(a, b, strict=True)]
