"""A remote LLM classifier through a real ``plinth serve``, the real CLI and the provider
simulator (a real HTTP server on loopback, standing in for the provider off this machine)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Env, Server, stop_server
from tests.remote_support import (
    EXAMPLES,
    LABELS,
    Provider,
    strict_rules,
    triage_spec,
    write_examples,
    write_spec,
)

pytestmark = pytest.mark.e2e

BILLING = {"label": "billing", "confidence": 0.9}
UNSURE = {"label": "other", "confidence": 0.55}


def predict(server: Server, name: str, record: dict[str, Any]) -> dict[str, Any]:
    reply = httpx.post(
        f"{server.url}/v1/models/{name}/predict", json={"records": [record]}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    answers: list[dict[str, Any]] = reply.json()["predictions"]
    return answers[0]


def codes(answer: dict[str, Any]) -> list[str]:
    return [w["code"] for w in answer["warnings"]]


def test_an_llm_classifier_served_with_a_fallback_a_budget_review_and_replay(
    plinth_env: Env, serve: type[Server], provider: Provider, tmp_path: Path
) -> None:
    examples = write_examples(tmp_path / "examples.jsonl")
    v1 = triage_spec(provider.base_url)
    v2 = triage_spec(
        provider.base_url,
        prompt={"template": "Subject: {subject}\nPriority: {priority}\n\n{body}\n\nBe strict."},
        parameters={"temperature": 0.2},
    )
    out = plinth_env.cli(
        "register", str(write_spec(tmp_path / "v1.toml", v1)), "--name", "triage",
        "--examples", str(examples),
    ).stdout  # fmt: skip
    assert "registered triage:1 (remote, classification, openai sim-small" in out
    assert "subject (" in out and "priority (integer)" in out
    plinth_env.cli(
        "register", str(write_spec(tmp_path / "v2.toml", v2)), "--name", "triage",
        "--examples", str(examples),
    )  # fmt: skip
    changes = json.loads(plinth_env.cli("diff", "triage", "1", "2", "--json").stdout)
    by_path = {c["path"]: c for c in changes}
    assert set(by_path) == {"sha256", "prompt.template", "parameters.temperature"}
    assert "+Be strict." in by_path["prompt.template"]["diff"]
    temperature = by_path["parameters.temperature"]
    assert (temperature["before"], temperature["after"]) == (0, 0.2)
    text = plinth_env.cli("diff", "triage", "1", "2").stdout
    assert "+Be strict." in text and "parameters.temperature: 0 → 0.2" in text

    # Evaluate the new prompt against the old on labelled examples before rolling it out.
    provider.script(rules=strict_rules("sim-small"), default=BILLING)
    labelled = write_examples(
        tmp_path / "eval.jsonl", [{**e, "label": y} for e, y in zip(EXAMPLES, LABELS, strict=True)]
    )
    evaluated = json.loads(
        plinth_env.cli(
            "evaluate", "triage", "2", "--against", "1", "--dataset", str(labelled), "--json"
        ).stdout
    )
    assert [(e["version"], e["answered"], e["score"]) for e in evaluated] == [
        (1, 5, 0.8),
        (2, 5, 0.8),
    ]
    assert all(e["cost"] > 0 and e["errors"] == {} for e in evaluated)
    assert provider.requests()[-1]["body"]["messages"][1]["content"].endswith("Be strict.")

    # A cheap model with a tiny daily budget and its stored default answer.
    cheap = triage_spec(
        provider.base_url,
        output={"default": "other"},
        cost={"prompt_per_1k": 1.0, "completion_per_1k": 1.0, "budget_per_day": 0.01},
    )
    plinth_env.cli(
        "register", str(write_spec(tmp_path / "cheap.toml", cheap)), "--name", "cheap",
        "--examples", str(examples),
    )  # fmt: skip
    plinth_env.cli("deploy", "triage", "2", "--fallback", "1", "--reason", "prompt v2")
    plinth_env.cli("deploy", "cheap", "1", "--fallback", "default", "--reason", "budgeted")

    provider.script(rules=[{"contains": "office", "answer": UNSURE}], default=BILLING)
    server = serve("--review-below", "0.7")

    # 1. A valid answer: the reply carries the structured output and what it cost.
    sure = predict(server, "triage", EXAMPLES[0])
    assert (sure["prediction"], sure["version"], sure["route"]) == ("billing", 2, "champion")
    assert sure["confidence"] == pytest.approx(0.9) and "review" not in sure
    assert sure["remote"]["parsed"] == BILLING and sure["remote"]["cost"] > 0
    sent = provider.requests()[-1]["body"]
    assert sent["temperature"] == 0.2 and sent["messages"][1]["content"].endswith("Be strict.")

    # 2. An unsure answer goes to the review queue like any classifier's.
    unsure = predict(server, "triage", EXAMPLES[2])
    assert unsure["prediction"] == "other" and unsure["review"]["status"] == "pending"
    item_id = unsure["review"]["id"]
    item = json.loads(plinth_env.cli("review", "show", item_id, "--json").stdout)
    assert item["prediction_id"] == unsure["prediction_id"]
    resolved = plinth_env.cli("review", "resolve", item_id, "--correct", "bug").stdout
    assert "label 'bug'" in resolved

    # 3. The endpoint fails (three 500s): version 1 answers, flagged.
    provider.script(replies=[{"status": 500}] * 3, default=BILLING)
    fell = predict(server, "triage", EXAMPLES[3])
    assert (fell["version"], fell["route"], fell["prediction"]) == (1, "fallback", "billing")
    assert "route.fallback" in codes(fell)
    assert "model.remote_unavailable" in json.dumps(fell["warnings"])

    # 4. Output that breaks the schema, and again after the re-ask: version 1 answers.
    provider.script(replies=[{"content": "billing!"}, {"content": '{"label": 1}'}], default=BILLING)
    fell = predict(server, "triage", EXAMPLES[4])
    assert fell["version"] == 1 and "model.remote_schema" in json.dumps(fell["warnings"])

    # 5. The budget: the first call spends it, the next is answered by the default, flagged.
    provider.script(default=BILLING)
    paid = predict(server, "cheap", EXAMPLES[0])
    assert paid["route"] == "champion" and paid["remote"]["cost"] > 0.01
    calls = len(provider.requests())
    capped = predict(server, "cheap", EXAMPLES[0])
    assert capped["route"] == "fallback" and capped["prediction"] == "other"
    assert {"route.fallback", "route.default"} <= set(codes(capped))
    assert "model.budget_exhausted" in json.dumps(capped["warnings"])
    assert len(provider.requests()) == calls  # nothing was sent

    # 6. The log keeps the request, the raw reply, usage and attempts; replay re-sends it.
    logged = httpx.get(f"{server.url}/v1/predictions/{sure['prediction_id']}", timeout=10).json()
    remote = logged["output"]["remote"]
    assert remote["request"]["messages"][1]["content"].endswith("Be strict.")
    assert json.loads(remote["raw"]) == BILLING
    assert remote["usage"]["completion_tokens"] == 4 and remote["attempts"][0]["outcome"] == "ok"
    replayed = json.loads(plinth_env.cli("replay", sure["prediction_id"], "--json").stdout)
    assert replayed["identical"] is True and "may answer differently" in replayed["note"]
    assert provider.requests()[-1]["body"] == remote["request"]  # the exact request, re-sent
    provider.script(default={"label": "bug", "confidence": 0.6})
    differs = plinth_env.cli("replay", sure["prediction_id"], check=False)
    assert differs.returncode == 1
    assert "output.prediction: 'billing' → 'bug'" in differs.stdout.replace("\n", " ")

    # 7. Tokens and cost per model and version in the metrics.
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'plinth_remote_tokens_total{kind="prompt",model="triage",version="2"}' in metrics
    assert 'plinth_remote_cost_total{model="cheap",version="1"}' in metrics
    assert 'plinth_remote_attempts_total{model="triage",outcome="error",version="2"} 3.0' in metrics
    assert 'plinth_remote_budget_ratio{model="cheap"}' in metrics


def test_two_replicas_share_one_daily_budget_and_the_monitor_shows_the_cost(
    plinth_env: Env, serve: type[Server], provider: Provider, tmp_path: Path
) -> None:
    # 4 completion tokens at 1.0 per 1k: 0.004 a call; the budget pays for 5 calls a day.
    spec = triage_spec(
        provider.base_url,
        output={"default": "other"},
        cost={"prompt_per_1k": 0.0, "completion_per_1k": 1.0, "budget_per_day": 0.02},
    )
    plinth_env.cli(
        "register", str(write_spec(tmp_path / "shared.toml", spec)), "--name", "shared",
        "--examples", str(write_examples(tmp_path / "examples.jsonl")),
    )  # fmt: skip
    plinth_env.cli("deploy", "shared", "1", "--fallback", "default", "--reason", "budgeted")
    provider.script(default=BILLING)
    replicas = [serve(), serve()]  # two processes, one store: as two replicas behind a balancer
    routes = [predict(replicas[i % 2], "shared", EXAMPLES[0])["route"] for i in range(12)]
    # Each replica alone would have paid for 5 calls (10 in all); together they stop at 5.
    assert routes == ["champion"] * 5 + ["fallback"] * 7
    assert len(provider.requests()) == 5
    for server in replicas:
        stop_server(server)  # the last interval profiles are flushed on shutdown

    report = json.loads(plinth_env.cli("monitor", "shared", "--format", "json").stdout)
    cost = report["cost"]
    assert cost["versions"] == [
        {"version": 1, "calls": 5, "cached": 0, "prompt_tokens": cost["total"]["prompt_tokens"],
         "completion_tokens": 20, "cost": pytest.approx(0.02)},
    ]  # fmt: skip
    assert cost["budget"]["spent"] == pytest.approx(0.02) and cost["budget"]["share"] >= 1.0
    shown = plinth_env.cli("monitor", "shared").stdout
    assert "remote calls and cost in this window" in shown
    assert "budget " in shown and "spent 0.02 of 0.02 (100%" in shown
