"""Small real models and tables the tests register and serve (no mocks)."""

from __future__ import annotations

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path
