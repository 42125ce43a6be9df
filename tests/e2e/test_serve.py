"""The whole path as a new user runs it: CLI register, serve, HTTP, replay, prune.

The commands that need no server are tested in tests/cli."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import skops.io as sio

from tests.e2e.conftest import Env, Server
from tests.support import churn_model, churn_record, churn_table, write_csv

pytestmark = pytest.mark.e2e


def _register_churn(plinth_env: Env, tmp_path: Path) -> None:
    train = churn_table(0)
    model_path = tmp_path / "churn.skops"
    sio.dump(churn_model(train), model_path)
    write_csv(train, tmp_path / "train.csv")
    write_csv(churn_table(1, rows=150), tmp_path / "holdout.csv")
    done = plinth_env.cli(
        "register",
        str(model_path),
        "--name",
        "churn",
        "--train",
        str(tmp_path / "train.csv"),
        "--target",
        "churn",
        "--holdout",
        str(tmp_path / "holdout.csv"),
        "--tag",
        "team=growth",
    )
    assert "registered churn:1" in done.stdout


def test_register_serve_predict_replay(
    plinth_env: Env, serve: type[Server], tmp_path: Path
) -> None:
    _register_churn(plinth_env, tmp_path)
    shown = plinth_env.cli("show", "churn")
    assert "input contract" in shown.stdout and "income" in shown.stdout
    assert "churn" in plinth_env.cli("models").stdout

    server = serve()
    record = churn_record(city="rome")
    del record["income"]
    reply = httpx.post(f"{server.url}/v1/models/churn/predict", json={"records": [record]})
    assert reply.status_code == 200, reply.text
    answer = reply.json()["predictions"][0]
    codes = {w["code"] for w in answer["warnings"]}
    assert {"contract.null_passed", "contract.unseen_category"} <= codes

    bad = httpx.post(
        f"{server.url}/v1/models/churn/predict",
        json={"records": [churn_record(age="x"), {"plan": 3}]},
    )
    assert bad.status_code == 422
    listed = {(p["record"], p["field"], p["code"]) for p in bad.json()["error"]["problems"]}
    assert listed == {
        (0, "age", "contract.wrong_type"),
        (1, "age", "contract.missing_field"),
        (1, "city", "contract.missing_field"),
    }

    replayed = plinth_env.cli("replay", answer["prediction_id"])
    assert "identical" in replayed.stdout
    as_json = json.loads(plinth_env.cli("replay", answer["prediction_id"], "--json").stdout)
    assert as_json["identical"] is True
    assert as_json["logged"]["probabilities"] == answer["probabilities"]

    metrics = httpx.get(f"{server.url}/metrics").text
    assert (
        'plinth_requests_total{model="churn",outcome="ok",route="champion",version="1"}' in metrics
    )


def test_prune_deletes_old_predictions(
    plinth_env: Env, serve: type[Server], tmp_path: Path
) -> None:
    _register_churn(plinth_env, tmp_path)
    server = serve()
    httpx.post(f"{server.url}/v1/models/churn/predict", json={"records": [churn_record()]})
    kept = plinth_env.cli("prune", "--older-than", "1d")
    assert "deleted 0" in kept.stdout
    gone = plinth_env.cli("prune", "--older-than", "0s")
    assert "deleted 1" in gone.stdout
    bad = plinth_env.cli("prune", "--older-than", "soon", check=False)
    assert bad.returncode == 1 and "request.invalid_duration" in bad.stderr
