"""Train a breast-cancer classifier (scikit-learn's bundled data) and register it.

Run: python examples/breast_cancer.py [--home .plinth]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import skops.io as sio
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

import plinth

NAME = "breast-cancer"


def build(workdir: Path) -> tuple[Path, Path, Path]:
    """Write model.skops, train.csv and holdout.csv (once; reused on later runs)."""
    workdir.mkdir(parents=True, exist_ok=True)
    model_path = workdir / "breast_cancer.skops"
    train_path, holdout_path = (
        workdir / "breast_cancer_train.csv",
        workdir / "breast_cancer_holdout.csv",
    )
    if model_path.exists() and train_path.exists() and holdout_path.exists():
        return model_path, train_path, holdout_path
    data = load_breast_cancer(as_frame=True)
    frame: pd.DataFrame = data.frame
    train, holdout = train_test_split(
        frame, test_size=0.25, random_state=0, stratify=frame["target"]
    )
    model = RandomForestClassifier(n_estimators=50, max_depth=8, n_jobs=1, random_state=0)
    model.fit(train.drop(columns=["target"]), train["target"])
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
        target="target",
        tags={"example": "breast-cancer"},
    )
    print(f"registered {record.ref}: accuracy {record.metadata['metrics']['accuracy']:.3f}")


if __name__ == "__main__":
    main()
