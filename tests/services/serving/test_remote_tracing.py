"""Tracing a remote model: one ``plinth.remote_attempt`` span per HTTP attempt under the
batch's span, drawn from the real router, batcher and provider simulator on loopback, and
exported to the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from plinth.flavors.remote.client import Caller
from plinth.services.registry.versions import Registry
from plinth.services.serving.routing import Routed
from plinth.services.tracing import Tracing
from tests.remote_support import EXAMPLES, Provider
from tests.services.serving.test_remote_routing import BILLING, register
from tests.services.serving.test_routing import harness

ROUTE = "POST /v1/models/{name}/predict"


def serve_one(registry: Registry, provider: Provider, tracing: Tracing | None) -> Routed:
    version = register(registry, provider)

    async def scenario() -> Routed:
        async with harness(registry) as h:
            await h.deploy("triage", version)
            trace = None
            if tracing is not None:
                trace = tracing.start_request(ROUTE, "triage", "req", None)
            routed = await h.router.predict(
                "triage",
                [EXAMPLES[0]],
                request_id="req",
                received=time.perf_counter(),
                trace=trace,
            )
            if trace is not None:
                tracing.end_request(trace, 200, None)  # type: ignore[union-attr]
            return routed

    return asyncio.run(scenario())


@pytest.mark.parametrize(
    ("first", "outcome", "extra"),
    [
        ({"status": 500}, "error", {}),
        (
            {"status": 429, "headers": {"Retry-After": "0"}},
            "rate limited",
            {"plinth.attempt.retry_after_s": 0.0},
        ),
    ],
)
def test_each_attempt_is_a_span_under_the_batch_inside_the_model_call(
    registry: Registry,
    provider: Provider,
    first: dict[str, Any],
    outcome: str,
    extra: dict[str, Any],
) -> None:
    exporter = InMemorySpanExporter()
    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(exporter))
    provider.script(replies=[first], default=BILLING)

    routed = serve_one(registry, provider, Tracing(sdk))

    assert routed.error is None, routed.error
    spans = exporter.get_finished_spans()
    (batch,) = [s for s in spans if s.name == "plinth.batch"]
    (model_call,) = [s for s in spans if s.name == "plinth.model_call"]
    attempts: list[ReadableSpan] = [s for s in spans if s.name == "plinth.remote_attempt"]
    assert len(attempts) == 2
    assert batch.context is not None
    for span in attempts:
        assert span.parent is not None and span.parent.span_id == batch.context.span_id
        assert span.context is not None and span.context.trace_id == batch.context.trace_id
        assert span.attributes is not None
        assert span.attributes["plinth.model"] == "triage"
        assert span.attributes["plinth.attempt.timeout_s"] == 2.0
        assert span.attributes["plinth.attempt.hedged"] is False
    failed, answered = sorted(attempts, key=lambda s: s.start_time or 0)
    assert failed.attributes is not None and answered.attributes is not None
    assert dict(failed.attributes) == {
        "plinth.model": "triage",
        "plinth.version": 1,
        "plinth.attempt": 1,
        "plinth.attempt.outcome": outcome,
        "plinth.attempt.timeout_s": 2.0,
        "plinth.attempt.hedged": False,
        "http.response.status_code": first["status"],
        **extra,
    }
    assert failed.status.status_code == StatusCode.ERROR and failed.status.description == outcome
    assert answered.attributes["plinth.attempt"] == 2
    assert answered.attributes["plinth.attempt.outcome"] == "ok"
    assert answered.attributes["http.response.status_code"] == 200
    assert answered.status.status_code == StatusCode.UNSET
    # Their real times, in order, inside the model call (and the batch span).
    assert failed.start_time and failed.end_time and answered.start_time and answered.end_time
    assert model_call.start_time and model_call.end_time
    assert model_call.start_time <= failed.start_time <= failed.end_time
    assert failed.end_time <= answered.start_time <= answered.end_time <= model_call.end_time
    assert batch.start_time == model_call.start_time and batch.end_time == model_call.end_time

    # What is logged is what it was: the attempts' records, no clock readings added.
    logged = registry.store.get_prediction(routed.answers[0]["prediction_id"])
    records = logged.output["remote"]["attempts"]
    assert [r["outcome"] for r in records] == [outcome, "ok"]
    for record in records:
        assert set(record) <= {
            "attempt", "timeout_s", "outcome", "status", "seconds", "hedged",
            "retry_after_s", "wait_s", "gave_up",
        }  # fmt: skip


def test_untraced_nothing_is_noted(
    registry: Registry, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed: list[Any] = []
    post = Caller.post

    def spy(self: Caller, *args: Any, **kwargs: Any) -> Any:
        handed.append(kwargs.get("spans"))
        return post(self, *args, **kwargs)

    monkeypatch.setattr(Caller, "post", spy)
    provider.script(replies=[{"status": 500}], default=BILLING)

    routed = serve_one(registry, provider, None)

    assert routed.error is None, routed.error
    assert len(provider.requests()) == 2  # retried once, as in the traced test
    assert handed == [None]  # no list to note attempts in, so no clock read for them


def test_a_call_that_fails_every_attempt_ends_after_its_last_attempt(
    registry: Registry, provider: Provider
) -> None:
    exporter = InMemorySpanExporter()
    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(exporter))
    provider.script(replies=[{"status": 500}, {"status": 502}, {"status": 503}], default=BILLING)

    routed = serve_one(registry, provider, Tracing(sdk))

    assert routed.error is not None and routed.error.code == "model.remote_unavailable"
    spans = exporter.get_finished_spans()
    (batch,) = [s for s in spans if s.name == "plinth.batch"]
    (model_call,) = [s for s in spans if s.name == "plinth.model_call"]
    attempts = sorted(
        (s for s in spans if s.name == "plinth.remote_attempt"), key=lambda s: s.start_time or 0
    )
    assert [s.attributes and s.attributes["http.response.status_code"] for s in attempts] == [
        500, 502, 503,
    ]  # fmt: skip
    assert all(s.status.status_code == StatusCode.ERROR for s in attempts)
    assert model_call.start_time and model_call.end_time and batch.end_time
    for span in attempts:
        assert span.start_time and span.end_time
        assert model_call.start_time <= span.start_time <= span.end_time <= model_call.end_time
    assert batch.end_time == model_call.end_time
