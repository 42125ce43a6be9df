"""The README loop on a real server: traffic, a queue of unsure answers, resolution in the
terminal, labels from a CSV, and performance (realised beside estimated)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.e2e.conftest import Env, Server
from tests.e2e.test_serve import _register_churn
from tests.support import churn_table

pytestmark = pytest.mark.e2e


def test_review_loop(plinth_env: Env, serve: type[Server], tmp_path: Path) -> None:
    _register_churn(plinth_env, tmp_path)
    server = serve("--review-below", "0.7")
    traffic = churn_table(2, rows=60)
    records = traffic.drop(columns=["churn"]).astype(object)
    records = records.where(records.notna(), None).to_dict(orient="records")
    reply = httpx.post(f"{server.url}/v1/models/churn/predict", json={"records": records})
    assert reply.status_code == 200, reply.text
    answers = reply.json()["predictions"]
    gated = [a for a in answers if "review" in a]
    assert gated and all(a["confidence"] < 0.7 for a in gated)

    listed = json.loads(plinth_env.cli("review", "list", "--model", "churn", "--json").stdout)
    assert {i["id"] for i in listed} == {a["review"]["id"] for a in gated}
    first = gated[0]["review"]["id"]
    deadline = time.monotonic() + 30  # the context is computed after the reply
    while time.monotonic() < deadline:
        shown = json.loads(plinth_env.cli("review", "show", first, "--json").stdout)
        if shown["context"]:
            break
        time.sleep(0.2)
    assert shown["context"]["attribution"]["top"]
    assert "what drove it" in plinth_env.cli("review", "show", first).stdout
    done = plinth_env.cli("review", "resolve", first, "--correct", "yes", "--note", "called")
    assert "resolved" in done.stdout
    again = plinth_env.cli("review", "resolve", first, "--approve", check=False)
    assert again.returncode == 1 and "review.already_resolved" in again.stderr

    labels = pd.DataFrame(
        {
            "prediction_id": [a["prediction_id"] for a in answers[:40]],
            "label": traffic["churn"][:40],
        }
    )
    labels.loc[len(labels)] = ["unknown-id", "yes"]
    labels.to_csv(tmp_path / "labels.csv", index=False)
    imported = plinth_env.cli("feedback", "churn", "--labels", str(tmp_path / "labels.csv"))
    assert "40 new" in imported.stdout or "39 new and 1 replaced" in imported.stdout
    assert "1 failed" in imported.stdout

    report = json.loads(plinth_env.cli("performance", "churn", "--windows", "1", "--json").stdout)
    (entry,) = report["windows"][-1]["versions"]
    assert entry["labelled"] >= 40 and entry["predictions"] == 60
    assert "accuracy" in entry["realised"] and "accuracy" in entry["estimated"]
    table = plinth_env.cli("performance", "churn", "--windows", "1").stdout
    assert "estimated" in table
    # The README's last step: realised beside estimated (and holdout) in plinth monitor.
    monitored = json.loads(plinth_env.cli("monitor", "churn", "--format", "json").stdout)
    (version,) = monitored["performance"]["windows"][-1]["versions"]
    assert version["labelled"] >= 40
    assert "accuracy" in version["realised"] and "accuracy" in version["estimated"]
    shown = plinth_env.cli("monitor", "churn").stdout
    assert "realised accuracy" in shown and "estimated accuracy" in shown
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "plinth_review_queue_depth" in metrics
