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
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder


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
