"""OpenTelemetry traces of the request path: off by default, and free when off.

With ``PLINTH_TRACING=true`` (and the ``otel`` extra), each worker exports spans over
OTLP/HTTP, configured by the standard ``OTEL_*`` variables (``OTEL_EXPORTER_OTLP_ENDPOINT``
or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``), which the SDK reads.

One span per request (``POST /v1/models/{name}/predict`` or the ``/v2`` infer route),
continuing the caller's W3C ``traceparent`` when it sent one and returned in the reply's
``traceparent`` header. Its children are the stages of ``DESIGN.md``'s path: queue wait,
input contract, model call, output contract, review gate and log commit. The contract, the
model and the log run once per batch, not per request, so their spans are drawn after the
batch from the times the scoring thread took (one clock read per stage), and the model call
is also one ``plinth.batch`` span of its own that every request's ``model call`` span links
to (and that links back to each request). A remote model's batch also has one
``plinth.remote_attempt`` span per HTTP attempt under its ``plinth.batch`` span, from the
times its caller noted (``plinth.flavors.base.CALL_ATTEMPTS``). The request span carries
the prediction ids; the logged prediction carries the trace id (``PredictionRecord.trace_id``).

Off, nothing here is imported or called on the request path: a request's ``trace`` is None
and the scoring thread checks one attribute per batch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plinth.errors import MissingExtraError

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

SERVICE_NAME = "plinth"


@dataclass
class StageTimes:
    """Epoch nanoseconds at the edges of one batch's stages (scoring thread)."""

    start: int = 0
    contract: tuple[int, int] = (0, 0)
    model: tuple[int, int] = (0, 0)
    output: tuple[int, int] = (0, 0)
    review: tuple[int, int] | None = None
    log: tuple[int, int] | None = None
    # Each HTTP attempt of a remote model call: its record, start and end (the flavor's).
    attempts: list[tuple[dict[str, Any], int, int]] = field(default_factory=list)

    @staticmethod
    def now() -> int:
        return time.time_ns()


@dataclass
class RequestTrace:
    """One request's span and what its children need."""

    tracing: Tracing
    span: Span
    context: Context
    trace_id: str
    received_ns: int
    prediction_ids: list[str] = field(default_factory=list)
    version: int | None = None  # the version that answered, and by which route
    route: str | None = None

    def traceparent(self) -> str:
        ctx = self.span.get_span_context()
        return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


class Tracing:
    """A worker's tracer provider and OTLP/HTTP exporter."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("plinth")

    @classmethod
    def from_environment(cls) -> Tracing:
        """Spans batched to the OTLP/HTTP endpoint the ``OTEL_*`` variables name."""
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:  # pragma: no cover - the extra is in dev
            raise MissingExtraError(
                "otel", "the OpenTelemetry SDK", str(exc), needed_by="PLINTH_TRACING=true"
            ) from exc
        # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; with neither,
        # the SDK says "unknown_service", and Plinth names itself instead.
        resource = Resource.create()
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider)

    def start_request(
        self, route: str, model: str, request_id: str, traceparent: bytes | None
    ) -> RequestTrace:
        """The request's span, as a child of the caller's ``traceparent`` if it is valid."""
        from opentelemetry.trace import SpanKind, set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        parent = None
        if traceparent:
            carrier = {"traceparent": traceparent.decode("latin-1")}
            parent = TraceContextTextMapPropagator().extract(carrier)
        received = time.time_ns()
        span = self.tracer.start_span(
            route,
            context=parent,
            kind=SpanKind.SERVER,
            start_time=received,
            attributes={
                "http.request.method": "POST",
                "http.route": route.split(" ", 1)[-1],
                "plinth.model": model,
                "plinth.request_id": request_id,
            },
        )
        return RequestTrace(
            self,
            span,
            set_span_in_context(span),
            f"{span.get_span_context().trace_id:032x}",
            received,
        )

    def end_request(self, trace: RequestTrace, status: int, error_code: str | None) -> None:
        from opentelemetry.trace import Status, StatusCode

        span, version, route = trace.span, trace.version, trace.route
        span.set_attribute("http.response.status_code", status)
        if trace.prediction_ids:
            span.set_attribute("plinth.prediction_ids", trace.prediction_ids)
        if version is not None:
            span.set_attribute("plinth.version", version)
        if route is not None:
            span.set_attribute("plinth.route", route)
        if error_code is not None:
            span.set_attribute("plinth.error.code", error_code)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR, error_code))
        span.end()

    def record_batch(
        self,
        model: str,
        version: int,
        traces: Sequence[tuple[RequestTrace, int, Mapping[str, Any]]],
        times: StageTimes,
    ) -> None:
        """Draw one batch's stages under each traced request (scoring thread, after the
        log commit). ``traces`` holds each request's trace, its record count, and the
        outcome (``error`` code or prediction ids) of its job."""
        from opentelemetry.trace import Link, SpanKind, Status, StatusCode, set_span_in_context

        # A request the sampler left out (OTEL_TRACES_SAMPLER) gets no stage spans at all.
        traces = [t for t in traces if t[0].span.is_recording()]
        if not traces:
            return
        tracer = self.tracer
        records = sum(count for _, count, _ in traces)
        attributes: dict[str, Any] = {"plinth.model": model, "plinth.version": version}
        batch = tracer.start_span(
            "plinth.batch",
            kind=SpanKind.INTERNAL,
            start_time=times.model[0] or times.start,
            links=[Link(t.span.get_span_context()) for t, _, _ in traces],
            attributes={
                **attributes,
                "plinth.batch.records": records,
                "plinth.batch.requests": len(traces),
            },
        )
        batch.end(end_time=times.model[1] or times.start)
        under_batch = set_span_in_context(batch) if times.attempts else None
        for record, began, ended in sorted(times.attempts, key=lambda a: a[1]):
            said = str(record.get("outcome"))
            span = tracer.start_span(
                "plinth.remote_attempt",
                context=under_batch,
                kind=SpanKind.CLIENT,
                start_time=began,
                attributes={**attributes, **_attempt_attributes(record)},
            )
            if said != "ok":
                span.set_status(Status(StatusCode.ERROR, said))
            span.end(end_time=max(ended, began))
        batch_link = [Link(batch.get_span_context())]
        for trace, count, outcome in traces:
            context = trace.context
            stages: list[tuple[str, tuple[int, int] | None, list[Any]]] = [
                ("plinth.queue_wait", (trace.received_ns, times.start), []),
                ("plinth.contract", times.contract, []),
            ]
            if times.model[0]:
                stages.append(("plinth.model_call", times.model, batch_link))
            if times.output[0]:
                stages.append(("plinth.output_contract", times.output, []))
            stages.append(("plinth.review_gate", times.review, []))
            stages.append(("plinth.log_commit", times.log, []))
            for name, edges, links in stages:
                if edges is None or not edges[0]:
                    continue
                span = tracer.start_span(
                    name,
                    context=context,
                    start_time=edges[0],
                    links=links,
                    attributes={**attributes, "plinth.records": count},
                )
                span.end(end_time=max(edges[1], edges[0]))
            ids = outcome.get("prediction_ids")
            if ids:
                trace.prediction_ids.extend(ids)

    def shutdown(self) -> None:
        """Export what is queued and stop (worker shutdown)."""
        self.provider.shutdown()


def _attempt_attributes(record: Mapping[str, Any]) -> dict[str, Any]:
    """A remote attempt's span attributes, from the record the caller logs."""
    attributes: dict[str, Any] = {
        "plinth.attempt": int(record["attempt"]),
        "plinth.attempt.outcome": str(record.get("outcome")),
        "plinth.attempt.timeout_s": float(record["timeout_s"]),
        "plinth.attempt.hedged": bool(record.get("hedged", False)),
    }
    if "status" in record:
        attributes["http.response.status_code"] = int(record["status"])
    if "retry_after_s" in record:
        attributes["plinth.attempt.retry_after_s"] = float(record["retry_after_s"])
    return attributes
