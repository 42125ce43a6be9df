"""ONNX, XGBoost and LightGBM models through the real CLI and a real server: the same
contract, prediction log, replay and metrics as a scikit-learn model (the MLflow import is
in tests/cli/test_register_mlflow.py)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import lightgbm as lgb
import pytest
import xgboost as xgb

from tests.e2e.conftest import Env, Server
from tests.flavors import models

pytestmark = pytest.mark.e2e


def _files(tmp_path: Path) -> dict[str, Path]:
    x, y = models.cancer()
    (x.assign(target=y)).to_csv(tmp_path / "train.csv", index=False)
    return {
        "onnx": models.save(models.onnx_forest()[0], tmp_path / "forest.onnx"),
        "xgb": models.save(xgb.XGBClassifier(n_estimators=10).fit(x, y), tmp_path / "m.ubj"),
        "lgb": models.save(
            lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(x, y), tmp_path / "m.txt"
        ),
    }


def test_native_flavors_serve_log_and_replay_identically(
    plinth_env: Env, serve: type[Server], tmp_path: Path
) -> None:
    files = _files(tmp_path)
    for name, path in files.items():
        done = plinth_env.cli(
            "register", str(path), "--name", name, "--train", str(tmp_path / "train.csv"),
            "--target", "target",
        )  # fmt: skip
        assert f"registered {name}:1" in done.stdout
    server = serve()
    x, _ = models.cancer()
    records = x.iloc[:5].to_dict(orient="records")
    for name, flavor in (("onnx", "onnx"), ("xgb", "xgboost"), ("lgb", "lightgbm")):
        assert json.loads(plinth_env.cli("show", name, "--json").stdout)["flavor"] == flavor
        reply = httpx.post(f"{server.url}/v1/models/{name}/predict", json={"records": records})
        assert reply.status_code == 200, reply.text
        answers = reply.json()["predictions"]
        assert [a["prediction"] in (0, 1) for a in answers] == [True] * 5
        assert all(abs(sum(a["probabilities"].values()) - 1) < 1e-6 for a in answers)
        for answer in answers[:2]:  # logged from a batch of 5, replayed as one row
            replayed = json.loads(
                plinth_env.cli("replay", answer["prediction_id"], "--json").stdout
            )
            assert replayed["identical"] is True, replayed
            assert replayed["logged"]["probabilities"] == answer["probabilities"]
        bad = httpx.post(
            f"{server.url}/v1/models/{name}/predict", json={"records": [{"mean_radius": "x"}]}
        )
        assert bad.status_code == 422 and bad.json()["error"]["problems"]
    metrics = httpx.get(f"{server.url}/metrics").text
    assert (
        'plinth_requests_total{model="onnx",outcome="ok",route="champion",version="1"}' in metrics
    )
