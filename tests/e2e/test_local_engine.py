"""A remote LLM classifier against a real local engine: llama-cpp-python's OpenAI-compatible
server (a subprocess on loopback) running a tiny random llama written at test time, through
a real ``plinth serve`` and the real CLI. Where the simulator says what a provider would
send, this is what one really sends: its ``usage``, ``id`` and ``model``, its refusals, and
JSON whose shape comes from grammar-constrained sampling, not from a script."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.e2e.conftest import Env, Server
from tests.local_engine_support import MODEL_ALIAS, LocalEngine, write_tiny_llama
from tests.remote_support import EXAMPLES, TRIAGE_SCHEMA, triage_spec, write_examples, write_spec

pytestmark = pytest.mark.e2e

KEY_VARIABLE = "LOCAL_ENGINE_KEY"
KEY = "local-secret"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[LocalEngine]:
    model = write_tiny_llama(tmp_path / "tiny-llama.gguf")
    started = LocalEngine(model, tmp_path / "engine.log", api_key=KEY)
    yield started
    started.stop()


def local_spec(engine: LocalEngine, structured: str) -> dict[str, Any]:
    return triage_spec(
        engine.base_url,
        endpoint={
            "model": MODEL_ALIAS,
            "structured": structured,
            "api_key_env": KEY_VARIABLE,
        },
        # One byte a token: the JSON object and its optional spaces fit in 64.
        parameters={"temperature": 0, "max_tokens": 64, "seed": 7},
        retry={"attempts": 2, "timeout_s": 20.0, "backoff_base_s": 0.01, "backoff_cap_s": 0.05},
    )


def predict(server: Server, record: dict[str, Any], query: str = "") -> dict[str, Any]:
    reply = httpx.post(
        f"{server.url}/v1/models/local/predict{query}", json={"records": [record]}, timeout=60
    )
    assert reply.status_code == 200, reply.text
    answers: list[dict[str, Any]] = reply.json()["predictions"]
    return answers[0]


def test_a_classifier_served_by_a_real_local_engine_logs_usage_and_replays(
    plinth_env: Env, serve: type[Server], engine: LocalEngine, tmp_path: Path
) -> None:
    plinth_env.env[KEY_VARIABLE] = KEY
    examples = str(write_examples(tmp_path / "examples.jsonl"))
    # Version 1 sends the schema as llama.cpp's servers take it, version 2 asks for any JSON,
    # version 3 sends it as OpenAI takes it.
    structures = ((1, "json_object_schema"), (2, "json_object"), (3, "json_schema"))
    for version, structured in structures:
        spec = write_spec(tmp_path / f"v{version}.toml", local_spec(engine, structured))
        out = plinth_env.cli("register", str(spec), "--name", "local", "--examples", examples)
        assert f"registered local:{version} (remote, classification, openai {MODEL_ALIAS}" in (
            out.stdout
        )
    plinth_env.cli("deploy", "local", "2", "--fallback", "1", "--reason", "schema-free JSON")
    server = serve()

    # 1. Version 1 (pinned): every answer is JSON of the schema, sampled under its grammar.
    answers = [predict(server, record, "?version=1") for record in EXAMPLES]
    for answer in answers:
        assert (answer["version"], answer["route"], answer["warnings"]) == (1, "champion", [])
        parsed = answer["remote"]["parsed"]
        jsonschema.validate(parsed, TRIAGE_SCHEMA)
        assert answer["prediction"] == parsed["label"]
        assert answer["confidence"] == pytest.approx(parsed["confidence"])

    # 2. The log keeps what the engine really sent: its usage, its id, its model name.
    first = answers[0]
    logged = httpx.get(f"{server.url}/v1/predictions/{first['prediction_id']}", timeout=10).json()
    remote = logged["output"]["remote"]
    assert remote["request"]["response_format"] == {
        "type": "json_object",
        "schema": json.loads(json.dumps(TRIAGE_SCHEMA, sort_keys=True)),
    }
    assert json.loads(remote["raw"]) == remote["parsed"] == first["remote"]["parsed"]
    usage = remote["usage"]
    # A byte-level vocabulary: one prompt token per byte of the chat-formatted messages.
    prompt_bytes = sum(len(m["content"].encode()) for m in remote["request"]["messages"])
    assert usage["prompt_tokens"] > prompt_bytes
    assert usage["completion_tokens"] >= len(remote["raw"].encode())  # and end of text
    assert remote["response"]["model"] == MODEL_ALIAS
    assert remote["response"]["id"].startswith("chatcmpl-")
    assert remote["response"]["finish_reason"] == "stop"
    assert [a["outcome"] for a in remote["attempts"]] == ["ok"]
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    completion = 'plinth_remote_tokens_total{kind="completion",model="local",version="1"}'
    assert completion in metrics

    # 3. Replay re-sends the exact request to the engine: greedy decoding on one CPU thread
    # gives the same answer (the CLI still says a remote model may answer differently).
    replayed = plinth_env.cli("replay", first["prediction_id"], "--json", check=False)
    result = json.loads(replayed.stdout)
    assert "may answer differently" in result["note"]
    assert (result["identical"], replayed.returncode) == (True, 0), result["differences"]

    # 4. The champion asks for any JSON: the engine's "{ }" breaks the schema, the re-ask
    # (the conversation plus the validation errors) gets it again, and version 1 answers.
    fell = predict(server, EXAMPLES[1])
    assert (fell["version"], fell["route"]) == (1, "fallback")
    reason = json.dumps(fell["warnings"])
    assert "model.remote_schema" in reason and "after 1 re-ask" in reason
    jsonschema.validate(fell["remote"]["parsed"], TRIAGE_SCHEMA)

    # 5. OpenAI's json_schema form: this engine's request validation refuses it with a 500,
    # which is retried as a server failure and reported as one (docs/remote-models.md).
    reply = httpx.post(
        f"{server.url}/v1/models/local/predict?version=3",
        json={"records": [EXAMPLES[0]]},
        timeout=60,
    )
    error = reply.json()["error"]
    assert (reply.status_code, error["code"]) == (503, "model.remote_unavailable"), error
    assert "#1 500 error; #2 500 error" in error["message"]

    # 6. A prompt past the engine's context (--n_ctx 2048, one token a byte) is refused:
    # a 400, not retried.
    long = {**EXAMPLES[0], "body": "My card was charged twice. " * 100}
    reply = httpx.post(
        f"{server.url}/v1/models/local/predict?version=1", json={"records": [long]}, timeout=60
    )
    error = reply.json()["error"]
    assert error["code"] == "model.remote_refused", error
    assert "HTTP 400" in error["message"] and "context_length_exceeded" in error["message"]

    # 7. With a wrong key the engine refuses (401): not retried, the refusal is the reason.
    plinth_env.env[KEY_VARIABLE] = "wrong-key"
    refused = plinth_env.cli("replay", first["prediction_id"], check=False)
    assert refused.returncode != 0
    assert "model.remote_refused" in refused.stderr and "HTTP 401" in refused.stderr
