"""Small real models and tables the tests register and serve (no mocks)."""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def churn_table(seed: int = 0, rows: int = 400) -> pd.DataFrame:
    """Mixed numeric, integer and categorical columns with missing values."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows),
            "income": rng.normal(50_000, 15_000, rows).round(2),
            "city": rng.choice(["paris", "lyon", "nice", "lille"], rows),
            "plan": rng.choice(["basic", "pro"], rows),
            "tenure": rng.exponential(24, rows).round(1),
        }
    )
    frame.loc[rng.random(rows) < 0.1, "income"] = np.nan
    frame.loc[rng.random(rows) < 0.05, "tenure"] = np.nan
    logit = (
        (frame["age"] - 50) / 15 + (frame["plan"] == "pro") * 1.0 - frame["tenure"].fillna(24) / 30
    )
    frame["churn"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return frame


def churn_model(train: pd.DataFrame) -> Pipeline:
    numeric = ["age", "income", "tenure"]
    categorical = ["city", "plan"]
    model = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("num", SimpleImputer(strategy="median"), numeric),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
                    ]
                ),
            ),
            ("clf", RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0)),
        ]
    )
    return model.fit(train.drop(columns=["churn"]), train["churn"])


def strict_category_model(train: pd.DataFrame) -> Pipeline:
    """A pipeline whose encoder raises on unseen categories (handle_unknown='error')."""
    model = make_pipeline(
        ColumnTransformer(
            [
                ("num", SimpleImputer(strategy="median"), ["age", "income", "tenure"]),
                ("cat", OneHotEncoder(handle_unknown="error"), ["city", "plan"]),
            ]
        ),
        RandomForestClassifier(n_estimators=5, random_state=0),
    )
    return model.fit(train.drop(columns=["churn"]), train["churn"])


def regression_table(seed: int = 0, rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    frame["y"] = 3 * frame["a"] - 2 * frame["b"] + rng.normal(scale=0.1, size=rows)
    return frame


def ridge_model(train: pd.DataFrame) -> Ridge:
    return Ridge().fit(train[["a", "b"]], train["y"])


class BrokenModel:
    """A plain Python model that misbehaves on purpose, driven by the input."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if (frame["a"] > 1000).any():
            raise RuntimeError("a is too large for me")
        out = frame["a"].to_numpy(dtype=float) * 2.0
        out[frame["a"].to_numpy() < -1000] = np.nan
        return out


SHOPPERS_FEATURES = ["region", "segment", "age", "income", "visits"]
SHOPPERS_NUMBERS = ["age", "income", "visits"]


def shoppers_table(seed: int = 0, rows: int = 300, *, missing: Any = np.nan) -> pd.DataFrame:
    """A mixed table with gaps in every feature but ``visits``; ``missing`` is what the
    ``region`` (object) column holds in a gap: NaN as read_csv gives it, or None as a
    frame built from records or SQL rows does."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "region": pd.Series(rng.choice(["west", "east", "north"], rows, p=[0.5, 0.3, 0.2])),
            "segment": pd.Series(rng.choice(["new", "loyal"], rows), dtype="str"),
            "age": rng.normal(40, 10, rows).round(1),
            "income": rng.normal(50_000, 15_000, rows).round(2),
            "visits": rng.integers(0, 20, rows),
        }
    )
    frame["region"] = frame["region"].astype(object)
    logit = (frame["age"] - 40) / 10 + (frame["region"] == "west") * 0.8 - frame["visits"] / 10
    frame["bought"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    for column, share in (("region", 0.1), ("segment", 0.1), ("age", 0.1), ("income", 0.05)):
        gaps = rng.random(rows) < share
        frame.loc[gaps, column] = missing if column == "region" else np.nan
    return frame


def imputing_pipeline(train: pd.DataFrame) -> Pipeline:
    """The model a user brings: its own imputers (a constant for ``region``, the mode for
    ``segment``, medians for numbers), one-hot encoding, a logistic regression."""
    model = make_pipeline(
        ColumnTransformer(
            [
                (
                    "region",
                    make_pipeline(
                        SimpleImputer(strategy="constant", fill_value="unknown"),
                        OneHotEncoder(handle_unknown="ignore"),
                    ),
                    ["region"],
                ),
                (
                    "segment",
                    make_pipeline(
                        SimpleImputer(strategy="most_frequent"),
                        OneHotEncoder(handle_unknown="ignore"),
                    ),
                    ["segment"],
                ),
                (
                    "numbers",
                    make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                    SHOPPERS_NUMBERS,
                ),
            ]
        ),
        LogisticRegression(),
    )
    return model.fit(train[SHOPPERS_FEATURES], train["bought"])


def numbers_only_model(train: pd.DataFrame) -> LogisticRegression:
    """A model that cannot take a NaN: fitted on the numbers with their gaps filled."""
    numbers = train[SHOPPERS_NUMBERS]
    return LogisticRegression().fit(numbers.fillna(numbers.median()), train["bought"])


def churn_record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "age": 42,
        "income": 51_000.0,
        "city": "paris",
        "plan": "pro",
        "tenure": 12.5,
    }
    record.update(overrides)
    return record


# Each pytest-xdist worker hands out ports from its own block, below the kernel's ephemeral
# range: a port the kernel hands out for bind(0) is released before the server takes it, and
# the other worker could get the same one in between and answer this worker's requests.
_PORT_BLOCK = 500
_PORT_BASE = 21_000
_next_port = [0]


def free_port() -> int:
    """A loopback port no other test worker hands out and nothing listens on now."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    block = _PORT_BASE + (int(worker) if worker.isdigit() else 0) % 8 * _PORT_BLOCK
    if not _next_port[0]:  # a random start keeps two concurrent test runs apart too
        _next_port[0] = random.randrange(_PORT_BLOCK)
    for _ in range(_PORT_BLOCK):
        port = block + _next_port[0] % _PORT_BLOCK
        _next_port[0] += 1
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {block}..{block + _PORT_BLOCK}")


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path
