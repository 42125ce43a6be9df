"""``plinth register --from-mlflow`` from a terminal: an MLflow run's model registered with
its lineage, a pickled one refused unless trusted."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import xgboost as xgb

from tests.e2e.conftest import Env
from tests.flavors import models

pytestmark = pytest.mark.e2e


def test_the_cli_registers_from_mlflow(plinth_env: Env, tmp_path: Path) -> None:
    import mlflow
    import mlflow.sklearn
    import mlflow.xgboost
    from sklearn.ensemble import RandomForestClassifier

    uri = f"file:{tmp_path / 'mlruns'}"
    x, y = models.cancer()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        with warnings.catch_warnings(), mlflow.start_run() as run:
            warnings.simplefilter("ignore", UserWarning)  # MLflow's own, while it imports
            mlflow.log_param("depth", 3)
            mlflow.log_metric("val_auc", 0.97)
            kw = {"pip_requirements": ["scikit-learn"]}
            model = xgb.XGBClassifier(n_estimators=5, max_depth=3).fit(x, y)
            mlflow.xgboost.log_model(model, name="xgb", **kw)
            forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
            mlflow.sklearn.log_model(forest, name="pickled", serialization_format="pickle", **kw)
    x.assign(target=y).to_csv(tmp_path / "train.csv", index=False)
    plinth_env.env.update({"MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"})
    args = ["--name", "bc", "--train", str(tmp_path / "train.csv"), "--target", "target"]
    run_id = run.info.run_id

    refused = plinth_env.cli(
        "register", "--from-mlflow", f"runs:/{run_id}/pickled", *args, check=False
    )
    assert refused.returncode == 1
    assert "registry.pickle_not_trusted" in refused.stderr and "--trust-pickle" in refused.stderr
    both = plinth_env.cli("register", "m.skops", "--from-mlflow", "runs:/x/y", *args, check=False)
    assert both.returncode == 1 and "cli.model_source" in both.stderr

    done = plinth_env.cli("register", "--from-mlflow", f"runs:/{run_id}/xgb", *args)
    assert "registered bc:1 (xgboost" in done.stdout
    lineage = json.loads(plinth_env.cli("show", "bc", "--json").stdout)["lineage"]["mlflow"]
    assert lineage["run_id"] == run_id and lineage["params"] == {"depth": "3"}
    assert lineage["metrics"] == {"val_auc": 0.97} and lineage["source_file"] == "model.ubj"
    trusted = plinth_env.cli(
        "register", "--from-mlflow", f"runs:/{run_id}/pickled", *args, "--trust-pickle"
    )
    assert "registered bc:2 (sklearn" in trusted.stdout
