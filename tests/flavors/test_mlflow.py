"""Import from a real MLflow file store (mlruns/): each served flavor, its run's params and
metrics in lineage, and pickle only with consent."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightgbm as lgb
import pytest
import xgboost as xgb
from sklearn.ensemble import RandomForestClassifier

from plinth.errors import RegistryError
from plinth.flavors.mlflow import read_mlflow_model
from plinth.services.registry.versions import Registry
from plinth.store import Store
from plinth.store.artifacts import ArtifactStore
from plinth.testing import check_flavor
from tests.flavors import models

REQUIREMENTS = ["scikit-learn"]  # given, so MLflow does not infer them (slow)


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One real MLflow file store with a run that logged every served flavor (made once)."""
    import mlflow
    import mlflow.lightgbm
    import mlflow.onnx
    import mlflow.sklearn
    import mlflow.xgboost

    uri = f"file:{tmp_path_factory.mktemp('mlflow') / 'mlruns'}"
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # writing one needs the opt-in
        monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # no traffic off this machine
        x, y = models.cancer()
        # MLflow warns about its own type hints while it imports pyfunc to log a model.
        with warnings.catch_warnings(), mlflow.start_run(run_name="train") as run:
            warnings.simplefilter("ignore", UserWarning)
            mlflow.log_params({"n_estimators": 10, "max_depth": 4})
            mlflow.log_metric("val_auc", 0.97)
            forest = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(x, y)
            kw: dict[str, Any] = {"pip_requirements": REQUIREMENTS}
            mlflow.sklearn.log_model(
                forest,
                name="model",
                registered_model_name="cancer",
                skops_trusted_types=["sklearn.tree._tree.Tree"],
                **kw,
            )
            mlflow.sklearn.log_model(
                forest, name="pickled", serialization_format="cloudpickle", **kw
            )
            mlflow.xgboost.log_model(xgb.XGBClassifier(n_estimators=5).fit(x, y), name="xgb", **kw)
            wrapper = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y)
            mlflow.lightgbm.log_model(wrapper, name="lgbm", **kw)
            mlflow.lightgbm.log_model(wrapper.booster_, name="booster", **kw)
            mlflow.onnx.log_model(models.onnx_forest()[0], name="onnx", **kw)
    yield {"run_id": run.info.run_id, "uri": uri, "train": x.assign(target=y)}


@pytest.fixture
def mlruns(logged: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The store, named as a user names it; reading needs no MLFLOW_ALLOW_FILE_STORE."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged["uri"])
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    return logged


@pytest.mark.parametrize(
    ("path", "flavor", "fmt"),
    [
        ("model", "sklearn", "skops"),
        ("xgb", "xgboost", "xgboost-ubj"),
        ("lgbm", "lightgbm", "lightgbm-text"),
        ("booster", "lightgbm", "lightgbm-text"),
        ("onnx", "onnx", "onnx"),
    ],
)
def test_each_flavor_imports_with_its_run(
    mlruns: dict[str, Any], path: str, flavor: str, fmt: str
) -> None:
    imported = read_mlflow_model(f"runs:/{mlruns['run_id']}/{path}")
    assert imported.artifact.flavor.name == flavor and imported.artifact.format == fmt
    lineage = imported.lineage["mlflow"]
    assert lineage["run_id"] == mlruns["run_id"] and lineage["run_found"]
    assert lineage["params"] == {"n_estimators": "10", "max_depth": "4"}
    assert lineage["metrics"] == {"val_auc": 0.97} and lineage["run_name"] == "train"
    check_flavor(imported.artifact, mlruns["train"].drop(columns=["target"]))


def test_a_registry_uri_registers_with_lineage(mlruns: dict[str, Any], tmp_path: Path) -> None:
    imported = read_mlflow_model("models:/cancer/1")
    assert imported.lineage["mlflow"]["registered_model"] == {"name": "cancer", "version": "1"}
    registry = Registry(Store(f"sqlite:///{tmp_path / 'p.db'}"), ArtifactStore(tmp_path / "a"))
    try:
        record = registry.register(
            imported.artifact,
            name="cancer",
            train=mlruns["train"],
            target="target",
            lineage=imported.lineage,
        )
    finally:
        registry.store.close()
    assert record.flavor == "sklearn"
    assert record.metadata["lineage"]["mlflow"]["run_id"] == mlruns["run_id"]
    assert record.metadata["lineage"]["params"]["n_estimators"] == 10  # the model's own, as before


def test_cloudpickle_needs_trust_pickle_then_is_stored_with_skops(mlruns: dict[str, Any]) -> None:
    uri = f"runs:/{mlruns['run_id']}/pickled"
    with pytest.raises(RegistryError, match="--trust-pickle") as caught:
        read_mlflow_model(uri)
    assert caught.value.code == "registry.pickle_not_trusted"
    trusted = read_mlflow_model(uri, trust_pickle=True)
    assert trusted.artifact.format == "skops" and trusted.lineage["mlflow"]["flavor"] == "sklearn"


def test_an_unknown_uri_says_how_to_point_at_the_store(mlruns: dict[str, Any]) -> None:
    with pytest.raises(RegistryError, match="MLFLOW_TRACKING_URI") as caught:
        read_mlflow_model("models:/nothing/3")
    assert caught.value.code == "registry.mlflow_not_found"
