"""GET /v1/models/{name}/monitor: the same JSON report as the CLI, from stored profiles."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.support import churn_record


def _flush(client: TestClient) -> None:
    # What the background task does at each interval boundary, done now.
    client.app.state.runtime.serving.collector.flush(final=True)  # type: ignore[attr-defined]


def test_monitor_report_counts_traffic_and_drift(client: TestClient) -> None:
    records = [
        churn_record(age=20 + i % 50, city="rome" if i % 4 == 0 else "paris") for i in range(80)
    ]
    for start in range(0, 80, 20):
        reply = client.post(
            "/v1/models/churn/predict", json={"records": records[start : start + 20]}
        )
        assert reply.status_code == 200, reply.text
    bad = client.post("/v1/models/churn/predict", json={"records": [churn_record(age="old")]})
    assert bad.status_code == 422
    _flush(client)
    reply = client.get("/v1/models/churn/monitor", params={"window": "15m"})
    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert report["model"] == "churn" and report["version"] == 1
    assert report["window"]["label"] == "15m"
    assert report["traffic"]["requests"] == 5
    assert report["traffic"]["records"] == 80
    assert report["traffic"]["validation_failures"] == 1
    assert report["latency"]["count"] == 4 and report["latency"]["p99"] > 0
    assert report["drift"]["rows"]["current"] == 80
    # Every record is 'paris' or the unseen 'rome': city has drifted, plan has not.
    by_feature = {f["feature"]: f["drifted"] for f in report["drift"]["features"]}
    assert by_feature["city"] is True
    assert "city" in report["histograms"]
    # Ground truth sits beside drift: 80 answered predictions, none labelled yet.
    (entry,) = report["performance"]["windows"][-1]["versions"]
    assert (entry["version"], entry["predictions"], entry["labelled"]) == (1, 80, 0)
    assert entry["holdout"]["accuracy"] > 0.5
    # ?detail=true adds every interval's numbers and each control chart's points, and
    # changes nothing else (the default document stays as it was).
    detail = client.get("/v1/models/churn/monitor", params={"window": "15m", "detail": "true"})
    assert detail.status_code == 200, detail.text
    full = detail.json()
    assert set(full) - set(report) == {"series"} and "series" not in report
    assert sum(full["series"]["requests"]) == 5 and len(full["series"]["p99"]) >= 1
    for plain, drawn in zip(report["control"], full["control"], strict=True):
        assert "series" not in plain and len(drawn["series"]["z"]) == drawn["points"]


def test_monitor_report_without_traffic(client: TestClient) -> None:
    report = client.get("/v1/models/churn/monitor").json()
    assert report["drift"] is None
    assert report["traffic"]["requests"] == 0
    assert report["window"]["label"] == "1h"


def test_monitor_report_errors(client: TestClient) -> None:
    missing = client.get("/v1/models/nope/monitor")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "registry.model_not_found"
    window = client.get("/v1/models/churn/monitor", params={"window": "forever"})
    assert window.status_code == 422
    assert window.json()["error"]["code"] == "request.invalid_duration"
    baseline = client.get("/v1/models/churn/monitor", params={"baseline": "yesterday"})
    assert baseline.status_code == 422
    assert baseline.json()["error"]["code"] == "monitor.invalid_baseline"
