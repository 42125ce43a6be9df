"""The /v1/deployments admin routes, and predict replies that follow the deployment."""

from __future__ import annotations

from fastapi.testclient import TestClient

from plinth.api import open_registry
from plinth.config.settings import Settings
from tests.rollout_support import ConstantModel, register


def _constants(settings: Settings) -> None:
    with open_registry(settings) as registry:
        for value in (10.0, 20.0, 30.0):
            register(registry, "const", ConstantModel(value))


def _predict(client: TestClient, key: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {"records": [{"a": 1.0, "b": 2.0}]}
    if key is not None:
        body["key"] = key
    reply = client.post("/v1/models/const/predict", json=body)
    assert reply.status_code == 200, reply.text
    data: dict[str, object] = reply.json()
    return data


def test_deploy_canary_promote_rollback_and_history_over_http(
    client: TestClient, settings: Settings
) -> None:
    _constants(settings)
    assert client.get("/v1/deployments/const").json()["revision"] is None

    made = client.post(
        "/v1/deployments/const",
        json={"version": 1, "fallback": [2, "default"], "reason": "first", "who": "ana"},
    )
    assert made.status_code == 201, made.text
    assert made.json()["revision"] == 1
    assert _predict(client)["version"] == 1  # applied at once on this worker

    canary = client.post("/v1/deployments/const", json={"version": 3, "canary": 100})
    assert canary.json()["spec"]["canary"] == {"version": 3, "weight": 100.0}
    reply = _predict(client, key="user-1")
    assert (reply["version"], reply["route"]) == (3, "canary")

    assert client.post("/v1/deployments/const/promote", json={}).status_code == 201
    assert _predict(client)["route"] == "champion"
    back = client.post("/v1/deployments/const/rollback", json={"reason": "oops"})
    assert back.json()["spec"]["champion"] == 1  # revision 2's spec: the canary is back
    live = client.get("/v1/deployments/const").json()
    assert live["revision"] == 4 and live["spec"]["canary"] == {"version": 3, "weight": 100.0}

    history = client.get("/v1/deployments/const/history").json()["revisions"]
    assert [(r["revision"], r["action"]) for r in history] == [
        (4, "rollback"),
        (3, "promote"),
        (2, "canary"),
        (1, "deploy"),
    ]
    assert history[-1]["who"] == "ana" and history[0]["reason"] == "oops"


def test_invalid_deployments_list_every_problem(client: TestClient, settings: Settings) -> None:
    _constants(settings)
    bad = client.post(
        "/v1/deployments/const",
        json={"version": 9, "shadows": [9], "fallback": ["default", 1], "deadline_ms": -1},
    )
    assert bad.status_code == 422
    error = bad.json()["error"]
    assert error["code"] == "deploy.invalid"
    assert {p["code"] for p in error["problems"]} == {
        "deploy.unknown_version",
        "deploy.shadow_is_serving",
        "deploy.default_not_last",
        "deploy.invalid_deadline",
    }
    missing = client.post("/v1/deployments/nope", json={"version": 1})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "registry.model_not_found"
    no_canary = client.post("/v1/deployments/const/promote")
    assert no_canary.status_code == 409


def test_a_fallback_reply_says_so_and_the_whole_chain_failing_is_a_503(
    client: TestClient,
) -> None:
    # 'broken' (from the conftest) raises for a > 1000; its default is the training median.
    assert client.post("/v1/deployments/broken", json={"version": 1}).status_code == 201
    failing = client.post("/v1/models/broken/predict", json={"records": [{"a": 5000, "b": 1}]})
    assert failing.status_code == 503 and failing.json()["error"]["code"] == "model.error"

    client.post("/v1/deployments/broken", json={"version": 1, "fallback": ["default"]})
    saved = client.post("/v1/models/broken/predict", json={"records": [{"a": 5000, "b": 1}]})
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["route"] == "fallback" and saved.headers["x-plinth-revision"] == "2"
    codes = [w["code"] for w in body["predictions"][0]["warnings"]]
    assert codes[-2:] == ["route.fallback", "route.default"]

    caller_error = client.post("/v1/models/broken/predict", json={"records": [{"a": "x", "b": 1}]})
    assert caller_error.status_code == 422


def test_http_deploy_takes_the_canary_policy_flags_of_the_cli(
    client: TestClient, settings: Settings
) -> None:
    _constants(settings)
    client.post("/v1/deployments/const", json={"version": 1})
    made = client.post(
        "/v1/deployments/const",
        json={
            "version": 2,
            "canary": 20,
            "auto": False,
            "min_requests": 500,
            "min_duration": 600,
            "max_error_rate": 0.005,
            "max_p95_increase": 0.5,
            "max_output_distance": 0.2,
            "analysis": {"alpha": 0.05, "min_requests": 100},
        },
    )
    assert made.status_code == 201, made.text
    # Stored by the policy's own keys, exactly as `plinth deploy --no-auto --min-requests
    # 500 ...` stores them; the flags win over the same key in "analysis".
    assert made.json()["spec"]["analysis"] == {
        "alpha": 0.05,
        "action": "report",
        "min_requests": 500,
        "min_duration_s": 600,
        "max_error_rate_increase": 0.005,
        "max_p95_increase": 0.5,
        "max_output_distance": 0.2,
    }
    kept = client.post("/v1/deployments/const", json={"version": 3, "canary": 20})
    assert kept.json()["spec"]["analysis"]["action"] == "report"  # later deploys keep it


def test_http_deploy_lists_every_problem_with_a_code_and_a_hint(
    client: TestClient, settings: Settings
) -> None:
    _constants(settings)
    bad = client.post(
        "/v1/deployments/const",
        json={
            "version": 9,
            "canary": "ten",
            "fallback": ["default", 1],
            "auto": "yes",
            "min_requests": 2.5,
            "max_error_rate": -1,
            "min_duration": 10,
            "analysis": {"alpha": 3, "nonsense": 1},
            "colour": "blue",
        },
    )
    assert bad.status_code == 422, bad.text
    error = bad.json()["error"]
    assert error["code"] == "deploy.invalid" and error["hint"]
    found = {(p["code"], p.get("field")) for p in error["problems"]}
    assert found == {
        ("deploy.unknown_field", "colour"),
        ("deploy.invalid_field", "canary"),
        ("deploy.invalid_field", "auto"),
        ("deploy.invalid_field", "min_requests"),
        ("canary.invalid_setting", "max_error_rate"),
        ("canary.invalid_setting", "analysis.alpha"),
        ("canary.unknown_setting", "analysis.nonsense"),
        ("deploy.unknown_version", "champion"),
        ("deploy.default_not_last", "fallback[0]"),
    }
    assert all(p["hint"] for p in error["problems"])
    rate = next(p for p in error["problems"] if p.get("field") == "max_error_rate")
    assert "max_error_rate must be" in rate["message"] and "fraction" in rate["hint"]
    assert client.get("/v1/deployments/const").json()["revision"] is None  # nothing written

    no_version = client.post("/v1/deployments/const", json={"min_requests": 0.5})
    assert no_version.status_code == 422
    codes = {(p["code"], p.get("field")) for p in no_version.json()["error"]["problems"]}
    assert codes == {
        ("deploy.missing_field", "version"),
        ("deploy.invalid_field", "min_requests"),
    }
    not_json = client.post(
        "/v1/deployments/const", content=b"[1]", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422
    assert not_json.json()["error"]["problems"][0]["code"] == "deploy.invalid_body"
