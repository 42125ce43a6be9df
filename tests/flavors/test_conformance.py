"""Every flavor passes the same conformance suite (plinth.testing.check_flavor), as an
object, as the model file its library writes, and as a registered version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.ensemble import RandomForestClassifier

from plinth.services.registry.versions import Registry
from plinth.store import Store
from plinth.store.artifacts import ArtifactStore
from plinth.testing import check_flavor
from tests.flavors import models
from tests.support import churn_model, churn_table, regression_table, ridge_model


class Doubler:
    """A plain Python model (the python flavor, stored with pickle)."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return frame["a"].to_numpy(dtype=float) * 2.0


Case = tuple[Any, pd.DataFrame, pd.Series]


def _sklearn_pipeline() -> Case:
    train = churn_table()
    return churn_model(train), train.drop(columns=["churn"]), train["churn"]


def _sklearn_forest() -> Case:
    x, y = models.cancer()
    return RandomForestClassifier(n_estimators=20, random_state=0).fit(x, y), x, y


def _sklearn_ridge() -> Case:
    train = regression_table()
    return ridge_model(train), train[["a", "b"]], train["y"]


def _python() -> Case:
    x, y = models.regression()
    return Doubler(), x, y


def _onnx_forest() -> Case:
    x, y = models.cancer()
    return models.onnx_forest()[0], x, y


def _onnx_zipmap() -> Case:
    x, y = models.cancer()
    return models.onnx_forest(zipmap=True)[0], x, y


def _onnx_logistic() -> Case:
    x, y = models.cancer()
    return models.onnx_logistic()[0], x, y


def _onnx_regressor() -> Case:
    x, y = models.regression()
    return models.onnx_regressor()[0], x, y


def _onnx_columns() -> Case:
    train = churn_table()
    return models.onnx_churn_pipeline()[0], train.drop(columns=["churn"]), train["churn"]


def _xgb_classifier() -> Case:
    x, y = models.cancer()
    return xgb.XGBClassifier(n_estimators=20, max_depth=3).fit(x, y), x, y


def _xgb_multiclass() -> Case:
    x, y = models.iris()
    return xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(x, y), x, y


def _xgb_regressor() -> Case:
    x, y = models.regression()
    return xgb.XGBRegressor(n_estimators=20, max_depth=3).fit(x, y), x, y


def _xgb_booster() -> Case:
    x, y = models.cancer()
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, y), 10)
    return booster, x, y


def _lgb_classifier() -> Case:
    x, y = models.cancer()
    return lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(x, y), x, y


def _lgb_multiclass() -> Case:
    x, y = models.iris()
    return lgb.LGBMClassifier(n_estimators=10, min_child_samples=5, verbose=-1).fit(x, y), x, y


def _lgb_regressor() -> Case:
    x, y = models.regression()
    return lgb.LGBMRegressor(n_estimators=20, verbose=-1).fit(x, y), x, y


def _lgb_booster() -> Case:
    x, y = models.regression()
    params = {"objective": "regression", "verbose": -1}
    return lgb.train(params, lgb.Dataset(x, y), 10), x, y


CASES: dict[str, tuple[str, Callable[[], Case]]] = {
    "sklearn-pipeline": ("sklearn", _sklearn_pipeline),
    "sklearn-forest": ("sklearn", _sklearn_forest),
    "sklearn-ridge": ("sklearn", _sklearn_ridge),
    "python": ("python", _python),
    "onnx-forest": ("onnx", _onnx_forest),
    "onnx-zipmap": ("onnx", _onnx_zipmap),
    "onnx-logistic": ("onnx", _onnx_logistic),
    "onnx-regressor": ("onnx", _onnx_regressor),
    "onnx-columns": ("onnx", _onnx_columns),
    "xgboost-classifier": ("xgboost", _xgb_classifier),
    "xgboost-multiclass": ("xgboost", _xgb_multiclass),
    "xgboost-regressor": ("xgboost", _xgb_regressor),
    "xgboost-booster": ("xgboost", _xgb_booster),
    "lightgbm-classifier": ("lightgbm", _lgb_classifier),
    "lightgbm-multiclass": ("lightgbm", _lgb_multiclass),
    "lightgbm-regressor": ("lightgbm", _lgb_regressor),
    "lightgbm-booster": ("lightgbm", _lgb_booster),
}
# Known and kept visible: numpy's BLAS sums a linear model's dot products in an order that
# depends on how many rows it is given, so a Ridge answer served inside a micro-batch can
# differ in the last bit from its one-row replay. The suite reports it; nothing hides it.
BATCH_DEPENDENT = {"sklearn-ridge"}


def _params(cases: list[str]) -> list[Any]:
    return [
        pytest.param(
            c,
            marks=pytest.mark.xfail(
                c in BATCH_DEPENDENT, raises=AssertionError, reason="BLAS batch size", strict=True
            ),
        )
        for c in cases
    ]


FILES = {
    "onnx-forest": ".onnx",
    "onnx-columns": ".onnx",
    "xgboost-classifier": ".json",
    "xgboost-multiclass": ".ubj",
    "xgboost-regressor": ".ubj",
    "lightgbm-classifier": ".txt",
    "lightgbm-multiclass": ".txt",
    "lightgbm-regressor": ".txt",
}


@pytest.mark.parametrize("case", _params(sorted(CASES)))
def test_every_flavor_passes_as_an_object(case: str) -> None:
    flavor, build = CASES[case]
    model, features, _ = build()
    report = check_flavor(model, features, trust_pickle=flavor == "python")
    assert report.flavor == flavor and not report.failed
    assert len(report.passed) == 9


@pytest.mark.parametrize("case", sorted(FILES))
def test_every_native_flavor_passes_as_the_file_its_library_writes(
    case: str, tmp_path: Path
) -> None:
    flavor, build = CASES[case]
    model, features, _ = build()
    path = models.save(model, tmp_path / f"model{FILES[case]}")
    assert check_flavor(path, features).flavor == flavor


@pytest.mark.parametrize("case", _params(sorted(CASES)))
def test_every_flavor_passes_as_a_registered_version(case: str, tmp_path: Path) -> None:
    flavor, build = CASES[case]
    model, features, target = build()
    registry = Registry(Store(f"sqlite:///{tmp_path / 'plinth.db'}"), ArtifactStore(tmp_path))
    try:
        record = registry.register(
            model,
            name="m",
            train=features.assign(target=target),
            target="target",
            trust_pickle=flavor == "python",
        )
        assert record.flavor == flavor
        served = registry.load(record)
        report = check_flavor(served)  # probe rows from the version's contract
        assert not report.failed
        check_flavor(served, features.sample(40, random_state=1))
    finally:
        registry.store.close()


def test_a_batch_dependent_linear_model_fails_only_batch_vs_single() -> None:
    model, features, _ = _sklearn_ridge()
    with pytest.raises(AssertionError, match=r"1 of 9 checks failed:\n- batch_vs_single: "):
        check_flavor(model, features)


def test_the_array_fast_path_is_proven_by_the_suite_too() -> None:
    model, features, _ = _sklearn_forest()
    assert check_flavor(model, features).served_faster
