"""OpenTelemetry traces from a real ``plinth serve``, exported by the SDK over OTLP/HTTP to a
real receiver process on loopback that decodes them with opentelemetry-proto."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import plinth
from plinth.config.settings import Settings
from tests.e2e.conftest import REPO, Env, start_server, stop_server
from tests.support import churn_model, churn_record, churn_table, free_port

pytestmark = pytest.mark.e2e

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
GRPC_TRACE = "0af7651916cd43dd8448eb211c80319c"
STAGES = {
    "plinth.queue_wait",
    "plinth.contract",
    "plinth.model_call",
    "plinth.output_contract",
    "plinth.review_gate",
    "plinth.log_commit",
}


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    out = tmp_path / "spans.jsonl"
    out.touch()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.otlp_receiver", str(port), str(out)], cwd=REPO
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", out
    finally:
        process.terminate()
        process.wait(timeout=10)


def spans_until(out: Path, done: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        spans = [json.loads(line) for line in out.read_text().splitlines() if line]
        if done(spans) or time.monotonic() > deadline:
            return spans
        time.sleep(0.1)


def test_request_spans_over_otlp(tmp_path: Path, receiver: tuple[str, Path]) -> None:
    endpoint, out = receiver
    home = tmp_path / "home"
    database_url = f"sqlite:///{tmp_path / 'plinth.db'}"
    train = churn_table(0)
    settings = Settings(home=home, database_url=database_url)
    plinth.register(
        churn_model(train), name="churn", train=train, target="churn", settings=settings
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLINTH_", "OTEL_"))}
    env.update(
        PLINTH_HOME=str(home),
        PLINTH_DATABASE_URL=database_url,
        PLINTH_TRACING="true",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_SERVICE_NAME="plinth-under-test",
        OTEL_BSP_SCHEDULE_DELAY="50",
    )
    grpc_port = free_port()
    server = start_server(Env(home, env), "--review-below", "0.99", "--grpc-port", str(grpc_port))
    try:
        records = [churn_record(), churn_record(age=70, city="nice"), churn_record(plan="basic")]
        v1 = httpx.post(
            f"{server.url}/v1/models/churn/predict",
            json={"records": records},
            headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
        )
        assert v1.status_code == 200, v1.text
        # Propagated: the reply names the request's span, in the caller's trace.
        _, trace_id, request_span, flags = v1.headers["traceparent"].split("-")
        assert trace_id == CALLER_TRACE and request_span != CALLER_SPAN and flags == "01"
        ids = [a["prediction_id"] for a in v1.json()["predictions"]]

        v2 = httpx.post(
            f"{server.url}/v2/models/churn/infer",
            json={"inputs": [{"name": "age", "datatype": "INT64", "shape": [1], "data": ["x"]}]},
        )
        assert v2.status_code == 422
        v2_trace = v2.headers["traceparent"].split("-")[1]
        assert v2_trace != CALLER_TRACE  # no traceparent sent: a new trace

        # gRPC: the caller's trace comes in the metadata, the predictions are in the span.
        import tritonclient.grpc as grpcclient

        with grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}") as triton:
            tensors = []
            for name, value in churn_record().items():
                datatype = "BYTES" if isinstance(value, str) else "FP64"
                tensor = grpcclient.InferInput(name, [1], datatype)
                tensor.set_data_from_numpy(
                    np.array([value], dtype=object if datatype == "BYTES" else np.float64)
                )
                tensors.append(tensor)
            answered = triton.infer(
                "churn", tensors, headers={"traceparent": f"00-{GRPC_TRACE}-{CALLER_SPAN}-01"}
            )
        grpc_id = answered.as_numpy("prediction_id")[0].decode()

        # The logged record carries the trace id.
        logged = httpx.get(f"{server.url}/v1/predictions/{ids[0]}").json()
        assert logged["trace_id"] == CALLER_TRACE
        assert logged["output"].keys() == {"prediction", "probabilities"}
        replayed = subprocess.run(
            [str(Path(sys.executable).parent / "plinth"), "replay", ids[0]],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert "identical" in replayed.stdout

        spans = spans_until(
            out,
            lambda found: (
                {s["name"] for s in found if s["trace_id"] == CALLER_TRACE} >= STAGES
                and any(s["trace_id"] == v2_trace for s in found)
                and {s["name"] for s in found if s["trace_id"] == GRPC_TRACE} >= STAGES
            ),
        )
    finally:
        stop_server(server)

    mine = [s for s in spans if s["trace_id"] == CALLER_TRACE]
    (request,) = [s for s in mine if s["name"] == "POST /v1/models/{name}/predict"]
    assert request["service"] == "plinth-under-test"
    assert request["span_id"] == request_span and request["parent_span_id"] == CALLER_SPAN
    assert request["attributes"]["plinth.prediction_ids"] == ids
    assert request["attributes"]["plinth.model"] == "churn"
    assert request["attributes"]["http.response.status_code"] == 200
    assert request["attributes"]["plinth.version"] == 1
    children = [s for s in mine if s["parent_span_id"] == request["span_id"]]
    assert {s["name"] for s in children} == STAGES
    for child in children:
        assert request["start"] <= child["start"] <= child["end"] <= request["end"]
    by_name = {s["name"]: s for s in children}
    assert by_name["plinth.queue_wait"]["end"] <= by_name["plinth.contract"]["start"]
    assert by_name["plinth.contract"]["end"] <= by_name["plinth.model_call"]["start"]
    assert by_name["plinth.model_call"]["end"] <= by_name["plinth.output_contract"]["start"]
    assert by_name["plinth.output_contract"]["end"] <= by_name["plinth.log_commit"]["start"]

    # One span per batch, linked both ways with the request.
    (batch,) = [s for s in spans if s["name"] == "plinth.batch" and s["links"]
                and s["links"][0]["trace_id"] == CALLER_TRACE]  # fmt: skip
    assert {"trace_id": CALLER_TRACE, "span_id": request["span_id"]} in batch["links"]
    assert batch["attributes"]["plinth.batch.records"] == 3
    assert by_name["plinth.model_call"]["links"] == [
        {"trace_id": batch["trace_id"], "span_id": batch["span_id"]}
    ]

    # The refused /v2 request: its own trace, its error code, no stage spans.
    (refused,) = [s for s in spans if s["trace_id"] == v2_trace]
    assert refused["name"] == "POST /v2/models/{name}/infer" and refused["parent_span_id"] == ""
    assert refused["attributes"]["plinth.error.code"] == "request.invalid_body"
    assert refused["attributes"]["http.response.status_code"] == 422

    # The gRPC inference: a child of the caller's span, the prediction id on it, its stages.
    (served,) = [s for s in spans if s["name"] == "inference.GRPCInferenceService/ModelInfer"]
    assert served["trace_id"] == GRPC_TRACE and served["parent_span_id"] == CALLER_SPAN
    assert served["attributes"]["plinth.prediction_ids"] == [grpc_id]
    assert served["attributes"]["http.response.status_code"] == 200
    under = {s["name"] for s in spans if s["parent_span_id"] == served["span_id"]}
    assert under == STAGES
