"""The whole path as a new user runs it: CLI register, serve, HTTP, replay, batch scoring."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pandas as pd
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


def test_batch_scoring_logs_like_online_traffic(plinth_env: Env, tmp_path: Path) -> None:
    _register_churn(plinth_env, tmp_path)
    frame = churn_table(2, rows=120).drop(columns=["churn"])
    frame["age"] = frame["age"].astype(object)
    frame.loc[3, "age"] = "unknown"  # one bad row must not fail the file
    write_csv(frame, tmp_path / "input.csv")
    done = plinth_env.cli(
        "predict",
        "churn",
        "--input",
        str(tmp_path / "input.csv"),
        "--output",
        str(tmp_path / "out.csv"),
    )
    assert "scored 119/120" in done.stdout
    scored = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert len(scored) == 120
    assert "contract.wrong_type" in scored.loc[3, "error"]
    first_id = scored.loc[0, "prediction_id"]
    assert plinth_env.cli("replay", str(first_id)).returncode == 0


def test_cli_errors_show_code_and_hint(plinth_env: Env, tmp_path: Path) -> None:
    missing = plinth_env.cli("show", "nothing", check=False)
    assert missing.returncode == 1
    assert "registry.model_not_found" in missing.stderr
    pickled = tmp_path / "m.pkl"
    pickled.write_bytes(b"not really")
    write_csv(churn_table(), tmp_path / "train.csv")
    refused = plinth_env.cli(
        "register",
        str(pickled),
        "--name",
        "m",
        "--train",
        str(tmp_path / "train.csv"),
        "--target",
        "churn",
        check=False,
    )
    assert refused.returncode == 1
    assert "registry.pickle_not_trusted" in refused.stderr and "hint" in refused.stderr
    unknown = plinth_env.cli("replay", "01ARZ3NDEKTSV4RRFFQ69G5FAV", check=False)
    assert unknown.returncode == 1 and "log.prediction_not_found" in unknown.stderr


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


def test_contract_can_be_exported_edited_and_set(plinth_env: Env, tmp_path: Path) -> None:
    _register_churn(plinth_env, tmp_path)
    document = json.loads(plinth_env.cli("contract", "show", "churn:1").stdout)
    for field in document["fields"]:
        if field["name"] == "age":
            field["maximum"] = 60
    edited = tmp_path / "contract.json"
    edited.write_text(json.dumps(document))
    done = plinth_env.cli("contract", "set", "churn", str(edited), "--reason", "tighter age")
    assert "updated the contract of churn:1" in done.stdout
    again = json.loads(plinth_env.cli("contract", "show", "churn").stdout)
    assert next(f for f in again["fields"] if f["name"] == "age")["maximum"] == 60
    edited.write_text("{not json")
    refused = plinth_env.cli("contract", "set", "churn", str(edited), check=False)
    assert refused.returncode == 1 and "cli.invalid_file" in refused.stderr
