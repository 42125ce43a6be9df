"""Real models for rollout tests: distinguishable versions, a slow one, a second broken one.

They are plain Python models (pickled, so registered with ``trust_pickle=True``); the e2e
server imports them from this module, which is on its PYTHONPATH.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pandas as pd

from plinth.services.registry.versions import Registry
from plinth.store import VersionRecord
from tests.support import BrokenModel, regression_table


class ConstantModel:
    """Predicts ``value`` for every row: which version answered is visible in the output."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), self.value, dtype=float)


class SlowModel:
    """Sleeps ``seconds`` when any ``a`` exceeds 500 (so warm-up stays fast), else 2a."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if (frame["a"] > 500).any():
            time.sleep(self.seconds)
        return frame["a"].to_numpy(dtype=float) * 2.0


HANG_RELEASE = threading.Event()


class HangingModel:
    """Hangs on any ``a`` over 500 until ``HANG_RELEASE`` is set (at most 60 s), else 2a.

    The class is unpickled by reference, so a model loaded in this process waits on this
    module's event: a test decides when the hang ends.
    """

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if (frame["a"] > 500).any():
            HANG_RELEASE.wait(60)
        return frame["a"].to_numpy(dtype=float) * 2.0


class OtherBrokenModel(BrokenModel):
    """Same failures as BrokenModel, but a different artifact (so a different version)."""

    generation = 2


def register(registry: Registry, name: str, model: Any) -> VersionRecord:
    """Register ``model`` as the next version of ``name`` on the shared regression table."""
    return registry.register(
        model,
        name=name,
        train=regression_table(),
        target="y",
        task="regression",
        trust_pickle=True,
    )
