"""``plinth predict`` without a server: a bad row does not fail the file and every row is
logged like online traffic, unsure rows go to review under a gate, and labels are imported
from the scored file."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.e2e.conftest import Env
from tests.e2e.test_serve import _register_churn
from tests.support import churn_table, write_csv

pytestmark = pytest.mark.e2e


def test_batch_scoring_queues_unsure_rows_for_review(plinth_env: Env, tmp_path: Path) -> None:
    _register_churn(plinth_env, tmp_path)
    truth = churn_table(2, rows=80)
    write_csv(truth, tmp_path / "input.csv")  # the target column rides along as an extra
    done = plinth_env.cli(
        "predict",
        "churn",
        "--input",
        str(tmp_path / "input.csv"),
        "--output",
        str(tmp_path / "scored.csv"),
        "--review-below",
        "0.7",
    )
    scored = pd.read_csv(tmp_path / "scored.csv", keep_default_na=False)
    unsure = scored[scored["review_id"] != ""]
    assert len(unsure) > 0 and (unsure["confidence"] < 0.7).all()
    assert (scored.loc[scored["review_id"] == "", "confidence"] >= 0.7).all()
    assert set(unsure["review_status"]) == {"pending"}
    assert f"{len(unsure)} sent to review" in done.stdout

    listed = json.loads(plinth_env.cli("review", "list", "--model", "churn", "--json").stdout)
    assert {i["id"] for i in listed} == set(unsure["review_id"])
    assert {i["prediction_id"] for i in listed} == set(unsure["prediction_id"])
    first = str(unsure["review_id"].iloc[0])
    shown = json.loads(plinth_env.cli("review", "show", first, "--json").stdout)
    assert shown["context"]["attribution"]["top"]  # the command waited for the context
    assert "most similar cases" in plinth_env.cli("review", "show", first).stdout
    plinth_env.cli("review", "resolve", first, "--approve")

    imported = plinth_env.cli(
        "feedback", "churn", "--labels", str(tmp_path / "scored.csv"), "--label-column", "churn"
    )
    assert "79 new and 1 replaced" in imported.stdout  # the approved item was a label already
    report = json.loads(plinth_env.cli("performance", "churn", "--windows", "1", "--json").stdout)
    (entry,) = report["windows"][-1]["versions"]
    assert entry["labelled"] == 80 and entry["sources"] == {"caller": 80}

    ungated = plinth_env.cli(
        "predict",
        "churn",
        "--input",
        str(tmp_path / "input.csv"),
        "--output",
        str(tmp_path / "plain.csv"),
    )
    assert "sent to review" not in ungated.stdout
    assert "review_id" not in pd.read_csv(tmp_path / "plain.csv").columns


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
