"""Small real models of every flavor, fitted on scikit-learn's bundled data sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression

from tests.support import churn_model, churn_table, regression_table


def cancer(columns: int = 8) -> tuple[pd.DataFrame, pd.Series]:
    """Breast-cancer features (names without spaces: LightGBM rewrites those) and 0/1 target."""
    data = load_breast_cancer(as_frame=True)
    x = data.data.iloc[:, :columns].copy()
    x.columns = [c.replace(" ", "_") for c in x.columns]
    return x, data.target


def iris() -> tuple[pd.DataFrame, pd.Series]:
    data = load_iris(as_frame=True)
    x = data.data.copy()
    x.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    return x, data.target


def regression() -> tuple[pd.DataFrame, pd.Series]:
    frame = regression_table()
    return frame[["a", "b"]], frame["y"]


def onnx_forest(zipmap: bool = False) -> tuple[Any, RandomForestClassifier]:
    from skl2onnx import to_onnx

    x, y = cancer()
    model = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0).fit(x, y)
    options = {id(model): {"zipmap": zipmap}}
    return to_onnx(model, x.to_numpy(np.float32)[:1], options=options), model


def onnx_logistic() -> tuple[Any, LogisticRegression]:
    """A linear model with ONNX's default ZipMap output: exercises the one-row kernel."""
    from skl2onnx import to_onnx

    x, y = cancer()
    model = LogisticRegression(max_iter=5000).fit(x, y)
    return to_onnx(model, x.to_numpy(np.float32)[:1]), model


def onnx_regressor() -> tuple[Any, RandomForestRegressor]:
    from skl2onnx import to_onnx

    x, y = regression()
    model = RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(x, y)
    return to_onnx(model, x.to_numpy(np.float32)[:1]), model


def onnx_churn_pipeline() -> tuple[Any, Any]:
    """Imputer + one-hot encoder + forest with one input per column and string labels."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    train = churn_table()
    model = churn_model(train)
    types = [
        ("age", FloatTensorType([None, 1])),  # the imputer wants one type
        ("income", FloatTensorType([None, 1])),
        ("city", StringTensorType([None, 1])),
        ("plan", StringTensorType([None, 1])),
        ("tenure", FloatTensorType([None, 1])),
    ]
    options = {id(model): {"zipmap": False}}
    return convert_sklearn(model, initial_types=types, options=options), model


def save(model: Any, path: Path) -> Path:
    """A model file as its library writes it (XGBoost .ubj/.json, LightGBM .txt, .onnx)."""
    if path.suffix == ".onnx":
        path.write_bytes(model.SerializeToString())
    elif path.suffix == ".txt":
        booster = getattr(model, "booster_", model)
        booster.save_model(str(path))
    else:
        model.save_model(str(path))
    return path
