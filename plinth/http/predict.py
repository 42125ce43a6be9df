"""The predict route as a plain ASGI handler: the one route on the hot path.

Every other route goes through FastAPI. This one is dispatched before FastAPI's router
(``PlinthApp.__call__``) because FastAPI's per-request machinery — routing, dependency
solving, query parsing, ``Response`` objects, its middleware stack — cost more CPU than
Plinth's own validation, batching and logging together (measured with yappi at 64
concurrent clients: about 40 % of the process). The handler does the same work by hand:
token check, size limit, orjson in and out, one error shape.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from plinth.core.request_limits import RequestLimits
from plinth.errors import (
    BodyTooLargeError,
    InvalidBodyError,
    InvalidParametersError,
    PlinthError,
    Problem,
    TooManyRecordsError,
)
from plinth.errors.request import (
    EMPTY_RECORDS,
    INVALID_KEY,
    INVALID_PARAMETER,
    INVALID_RECORDS,
    MISSING_RECORDS,
    UNKNOWN_FIELD,
)
from plinth.http.auth import Auth, check_role
from plinth.http.edge import (
    JSON_OPTIONS,
    PREDICT_ROLES,
    error_headers,
    identity_headers,
    internal_error,
    new_request_id,
    parse_json,
)
from plinth.runtime import Runtime
from plinth.services.tracing import RequestTrace

log = logging.getLogger("plinth.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PREDICT_PATH = re.compile(r"/v1/models/([^/]+)/predict")
BODY_HINT = 'Send a JSON object like {"records": [{"feature": 1.0}]}.'
SPLIT_HINT = "Split the records over several requests or use `plinth predict` for files."


class DisconnectedError(Exception):
    """The client went away before its body arrived: there is no one to answer."""


class PredictHandler:
    """``POST /v1/models/{name}/predict`` for one app; state is read per request."""

    def __init__(
        self,
        state: Any,
        *,
        max_body_bytes: int,
        max_records: int,
        replica: str = "",
        limits: RequestLimits | None = None,
    ) -> None:
        self.state = state  # the app's ``state``: runtime and auth appear during start-up
        self.max_body_bytes = max_body_bytes
        self.max_records = max_records
        self.limits = limits
        self.identity = identity_headers(replica)  # who answered: worker and replica

    async def __call__(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        received = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = new_request_id(headers.get(b"x-request-id"))
        trace = self._start_trace("POST /v1/models/{name}/predict", name, request_id, headers)
        try:
            status, body, extra = await self._answer(
                name, scope, headers, receive, received, request_id, trace
            )
        except DisconnectedError:
            return
        except PlinthError as exc:
            status, body = exc.status, exc.to_dict()
            extra = {k.encode(): v.encode() for k, v in error_headers(exc).items()}
        except Exception as exc:  # a bug of ours: log it, answer 500 with the request id
            error = internal_error(request_id, exc)
            status, body, extra = error.status, error.to_dict(), {}
        if "error" in body:
            body["error"]["request_id"] = request_id
        if trace is not None:
            extra[b"traceparent"] = self._end_trace(
                trace, status, body["error"]["code"] if "error" in body else None
            )
        await respond(send, status, body, request_id, extra, self.identity)

    async def _answer(
        self,
        name: str,
        scope: Scope,
        headers: dict[bytes, bytes],
        receive: Receive,
        received: float,
        request_id: str,
        trace: RequestTrace | None = None,
    ) -> tuple[int, dict[str, Any], dict[bytes, bytes]]:
        client = scope.get("client") or ("",)
        await self._authorize(headers, str(client[0]))
        version = _version_param(scope.get("query_string", b""))
        payload = parse_json(await self._read_body(headers, receive), BODY_HINT, self.limits)
        records, key = parse_predict_body(payload, self.max_records)
        runtime: Runtime = self.state.runtime
        router = runtime.require_serving().router
        routed = await router.predict(
            name,
            records,
            request_id=request_id,
            received=received,
            key=key,
            version=version,
            trace=trace,
        )
        if trace is not None:
            trace.version, trace.route = routed.version, routed.route
        extra: dict[bytes, bytes] = {}
        if routed.revision is not None:
            extra[b"x-plinth-revision"] = str(routed.revision).encode()
        if routed.error is not None:
            # Retry-After for any error that says when (shed, store unavailable).
            extra.update((k.encode(), v.encode()) for k, v in error_headers(routed.error).items())
            return routed.error.status, routed.error.to_dict(), extra
        body = {
            "model": name,
            "version": routed.version,
            "route": routed.route,
            "request_id": request_id,
            "predictions": routed.answers,
        }
        return 200, body, extra

    def _start_trace(
        self, route: str, name: str, request_id: str, headers: dict[bytes, bytes]
    ) -> RequestTrace | None:
        """The request's span when tracing is on (None, at the cost of one lookup, when off)."""
        runtime: Runtime | None = getattr(self.state, "runtime", None)
        tracing = None if runtime is None else runtime.tracing
        if tracing is None:
            return None
        return tracing.start_request(route, name, request_id, headers.get(b"traceparent"))

    @staticmethod
    def _end_trace(trace: RequestTrace, status: int, error_code: str | None) -> bytes:
        """End the request's span; its ``traceparent`` goes back in the reply."""
        try:
            trace.tracing.end_request(trace, status, error_code)
        except Exception:  # tracing never fails a reply
            log.exception("could not end a request's span")
        return trace.traceparent().encode()

    async def _authorize(self, headers: dict[bytes, bytes], client: str = "") -> None:
        """The token's role must allow predicting; ``client`` (its address) is what failed
        tokens are counted by (none given: not counted)."""
        auth: Auth | None = getattr(self.state, "auth", None)
        if auth is not None:
            role, _ = await auth.role_of(_text(headers.get(b"authorization")) or "", client)
            check_role(role, PREDICT_ROLES)

    async def _read_body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        """The whole body, refused past the size limit (declared or read)."""
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            raise BodyTooLargeError(int(length), self.max_body_bytes, hint=SPLIT_HINT)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise DisconnectedError
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLargeError(size, self.max_body_bytes, hint=SPLIT_HINT)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def respond(
    send: Send,
    status: int,
    body: dict[str, Any],
    request_id: str,
    extra: dict[bytes, bytes] | None = None,
    identity: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """One JSON response, with the request id and who answered it in the headers."""
    data = orjson.dumps(body, option=JSON_OPTIONS)
    await respond_bytes(send, status, data, b"application/json", request_id, extra, identity)


async def respond_bytes(
    send: Send,
    status: int,
    data: bytes,
    content_type: bytes,
    request_id: str,
    extra: dict[bytes, bytes] | None = None,
    identity: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """One response of any content type, with the same headers as ``respond``."""
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(data)).encode()),
        (b"x-request-id", request_id.encode()),
        *(identity or identity_headers()),
    ]
    if extra:
        headers.extend(extra.items())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def parse_predict_body(payload: Any, max_records: int) -> tuple[list[Any], str | None]:
    """``records`` and ``key`` from the body; every problem with it listed at once."""
    if not isinstance(payload, dict):
        raise InvalidBodyError(
            "The body must be a JSON object with a 'records' list.",
            hint=BODY_HINT,
        )
    problems: list[Problem] = []
    records = payload.get("records")
    key = payload.get("key")
    if records is None:
        problems.append(Problem(MISSING_RECORDS, "'records' is missing", BODY_HINT, "records"))
    elif not isinstance(records, list):
        problems.append(Problem(INVALID_RECORDS, "'records' must be a list", BODY_HINT, "records"))
    elif not records:
        problems.append(Problem(EMPTY_RECORDS, "'records' is empty", "Send 1 or more.", "records"))
    if key is not None and not isinstance(key, str):
        # Refused, not converted: a number loses digits past 2**53 in JavaScript clients
        # before it is sent, and true would become "True"; the key routes the canary and
        # names the request in feedback, so it must be exactly what the caller meant.
        problems.append(
            Problem(
                INVALID_KEY,
                f"'key' must be a string, not {_json_type(key)}",
                'Send the key as a JSON string, e.g. "key": "order-1234".',
                "key",
            )
        )
    unknown = sorted(set(payload) - {"records", "key"})
    if unknown:
        problems.append(
            Problem(
                UNKNOWN_FIELD,
                f"unknown top-level field(s): {', '.join(unknown)}",
                "Put features inside each record; only 'records' and 'key' are read.",
            )
        )
    if problems:
        raise InvalidBodyError(
            "The request body is malformed.",
            hint=BODY_HINT,
            problems=problems,
        )
    assert isinstance(records, list)
    if len(records) > max_records:
        raise TooManyRecordsError(len(records), max_records, hint=SPLIT_HINT)
    return records, key


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    return "an object" if isinstance(value, dict) else "a list"


def _version_param(query: bytes) -> int | None:
    """``?version=N`` pins a version; other query parameters are ignored, as FastAPI does."""
    if not query:
        return None
    from urllib.parse import parse_qsl

    values = [v for k, v in parse_qsl(query.decode("latin-1")) if k == "version"]
    if not values:
        return None
    text = values[-1]
    if text.strip().lstrip("+-").isdigit() and abs(int(text)) < 2**63:  # the store's integers
        return int(text)
    raise InvalidParametersError(
        "The request's parameters are invalid.",
        problems=[
            Problem(
                INVALID_PARAMETER,
                "Input should be a valid integer, unable to parse string as an integer",
                hint="See the OpenAPI document at /docs.",
                field="query.version",
            )
        ],
    )


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")
