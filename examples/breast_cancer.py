"""Train a breast-cancer classifier (scikit-learn's bundled data) and register it.

Run: python examples/breast_cancer.py [--workdir .plinth/examples]
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from examples.common import ExampleFiles, build_once, main

NAME = "breast-cancer"
TARGET = "target"


def _train() -> tuple[RandomForestClassifier, pd.DataFrame, pd.DataFrame]:
    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    train, holdout = train_test_split(frame, test_size=0.25, random_state=0, stratify=frame[TARGET])
    model = RandomForestClassifier(n_estimators=50, max_depth=8, n_jobs=1, random_state=0)
    model.fit(train.drop(columns=[TARGET]), train[TARGET])
    return model, train, holdout


def build(workdir: Path) -> ExampleFiles:
    return build_once(workdir, "breast_cancer", _train)


if __name__ == "__main__":
    main(__doc__, build, NAME, TARGET)
