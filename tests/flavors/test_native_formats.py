"""XGBoost and LightGBM stored in their own formats, never pickle; and every optional
library stays optional."""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb

from plinth.errors import MissingExtraError, RegistryError
from plinth.flavors.base import PICKLE, SKOPS, dump_model, load_bytes, read_model_file
from plinth.flavors.lightgbm import LightGBMFlavor
from plinth.flavors.mlflow import read_mlflow_model
from plinth.flavors.onnx import OnnxFlavor
from plinth.flavors.xgboost import XGBoostFlavor
from tests.flavors import models

OPTIONAL = {"onnxruntime", "onnx", "skl2onnx", "xgboost", "lightgbm", "mlflow", "mlflow-skinny"}


def test_xgboost_objects_are_stored_as_ubjson_and_files_as_written(tmp_path: Path) -> None:
    x, y = models.cancer()
    model = xgb.XGBClassifier(n_estimators=5).fit(x, y)
    artifact = dump_model(model, trust_pickle=False)
    assert artifact.format == "xgboost-ubj" and artifact.format not in (PICKLE, SKOPS)
    assert artifact.data[:1] == b"{" and b"learner" in artifact.data[:40]
    path = models.save(model, tmp_path / "model.json")
    from_file = read_model_file(path, trust_pickle=False, trust_types=[])
    assert from_file.format == "xgboost-json" and from_file.data == path.read_bytes()
    assert type(from_file.flavor.model) is xgb.XGBClassifier
    assert from_file.flavor.feature_names() == list(x.columns)
    assert np.array_equal(from_file.flavor.predict_proba(x), model.predict_proba(x))


def test_a_bare_xgboost_regression_booster_serves_as_a_regressor() -> None:
    x, y = models.regression()
    booster = xgb.train({"objective": "reg:squarederror"}, xgb.DMatrix(x, y), 5)
    flavor = dump_model(booster, trust_pickle=False).flavor
    assert type(flavor.model) is xgb.XGBRegressor and flavor.classes is None
    assert np.array_equal(flavor.predict(x), booster.predict(xgb.DMatrix(x)))


def test_lightgbm_text_answers_as_the_fitted_classifier(tmp_path: Path) -> None:
    x, y = models.iris()
    model = lgb.LGBMClassifier(n_estimators=10, min_child_samples=5, verbose=-1).fit(x, y)
    path = models.save(model, tmp_path / "model.txt")
    artifact = read_model_file(path, trust_pickle=False, trust_types=[])
    assert artifact.format == "lightgbm-text" and artifact.data.startswith(b"tree\n")
    flavor = artifact.flavor
    assert flavor.classes == [0, 1, 2] and flavor.feature_names() == list(x.columns)
    proba = flavor.predict_proba(x)
    assert proba is not None and np.array_equal(proba, model.predict_proba(x))
    assert np.array_equal(flavor.predict(x), model.predict(x))
    assert flavor.params()["objective"] == "multiclass"


def test_lightgbm_classifier_on_string_labels_is_refused_with_a_hint() -> None:
    x, y = models.cancer()
    model = lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(x, y.map({0: "no", 1: "yes"}))
    with pytest.raises(RegistryError, match="LabelEncoder") as caught:
        dump_model(model, trust_pickle=False)
    assert caught.value.code == "registry.lightgbm_labels"


@pytest.mark.parametrize(
    ("module", "extra", "call"),
    [
        ("onnxruntime", "onnx", lambda: load_bytes(b"x", "onnx", [])),
        ("xgboost", "xgboost", lambda: XGBoostFlavor.load(b"{}", "xgboost-ubj")),
        ("lightgbm", "lightgbm", lambda: LightGBMFlavor.load(b"tree\n", "lightgbm-text")),
        ("mlflow", "mlflow", lambda: read_mlflow_model("runs:/abc/model")),
    ],
)
def test_a_missing_extra_names_the_pip_command(
    module: str, extra: str, call: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what an environment without it does
    with pytest.raises(MissingExtraError, match=re.escape(f"pip install 'plinth-ml[{extra}]'")):
        call()  # type: ignore[operator]


def test_onnx_objects_are_recognised_without_importing_the_libraries() -> None:
    assert not OnnxFlavor.accepts(object())
    assert not XGBoostFlavor.accepts(object()) and not LightGBMFlavor.accepts(object())


def test_the_base_install_pulls_no_optional_library() -> None:
    requirements = importlib.metadata.requires("plinth-ml") or []
    base = {re.split(r"[\[<>=;! ]", r)[0].lower() for r in requirements if "extra ==" not in r}
    assert not base & OPTIONAL
    extras = importlib.metadata.metadata("plinth-ml").get_all("Provides-Extra") or []
    assert {"onnx", "xgboost", "lightgbm", "mlflow"} <= set(extras)
