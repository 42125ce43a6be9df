"""Trainers for the retraining tests, imported by the trainer's child process by name."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pandas as pd
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import Ridge


def fit_ridge(frame: pd.DataFrame, context: dict[str, Any]) -> Ridge:
    target, features = context["target"], context["features"]
    return Ridge().fit(frame[features], frame[target], sample_weight=context["sample_weight"])


def fit_mean(frame: pd.DataFrame, context: dict[str, Any]) -> DummyRegressor:
    """A model that ignores its inputs: worse than any real champion."""
    return DummyRegressor().fit(frame[context["features"]], frame[context["target"]])


def fit_raises(frame: pd.DataFrame, context: dict[str, Any]) -> Any:
    raise ValueError(f"cannot fit {len(frame)} rows today")


def fit_hangs(frame: pd.DataFrame, context: dict[str, Any]) -> Any:
    pidfile = os.environ.get("PLINTH_TEST_TRAINER_PIDFILE")
    if pidfile:
        with open(pidfile, "w") as handle:
            handle.write(str(os.getpid()))
    time.sleep(3600)


def fit_killed(frame: pd.DataFrame, context: dict[str, Any]) -> Any:
    os.kill(os.getpid(), signal.SIGKILL)


def fit_greedy(frame: pd.DataFrame, context: dict[str, Any]) -> Any:
    return bytearray(8 * 1024**3)  # 8 GiB: past any memory cap the tests set


def fit_dropping_b(frame: pd.DataFrame, context: dict[str, Any]) -> Ridge:
    """Trains on fewer fields than the champion takes: a contract change that breaks callers."""
    return Ridge().fit(frame[["a"]], frame[context["target"]])


def fit_telling_threads(frame: pd.DataFrame, context: dict[str, Any]) -> Any:
    """Fails on purpose, saying how many native threads it was given."""
    raise RuntimeError(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
