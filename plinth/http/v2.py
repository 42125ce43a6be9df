"""The Open Inference Protocol v2 (KServe / Triton REST) under ``/v2``.

A v2 inference is a first-class prediction, not a side door: its tensors become the
records ``/v1`` takes (``plinth.core.inference_protocol``), and those go through the same
router, contract, batcher, review gate, prediction log and metrics. Only the envelope
differs. The infer route is answered as plain ASGI beside the ``/v1`` predict route
(``PlinthApp.__call__``), sharing its token check, size limit and headers; the metadata and
health routes are ordinary FastAPI routes.

Errors keep the protocol's shape, ``{"error": "..."}`` (what Triton's and KServe's clients
read), and carry Plinth's ``code``, ``hint`` and ``problems`` beside it.
"""

from __future__ import annotations

import asyncio
import re
import time
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from plinth.core import inference_protocol as oip
from plinth.core.contract import Contract
from plinth.core.output import OutputContract
from plinth.core.request_limits import RequestLimits, array_too_long, string_too_long
from plinth.errors import (
    BodyTooLargeError,
    InvalidBodyError,
    InvalidParametersError,
    OverLimitError,
    PlinthError,
    Problem,
    TooManyRecordsError,
)
from plinth.errors.request import INVALID_KEY, INVALID_PARAMETER
from plinth.http.auth import require_role
from plinth.http.edge import (
    JSON_OPTIONS,
    PREDICT_ROLES,
    error_headers,
    internal_error,
    json_response,
    new_request_id,
    parse_json,
    runtime_of,
)
from plinth.http.predict import (
    SPLIT_HINT,
    DisconnectedError,
    PredictHandler,
    Receive,
    Scope,
    Send,
    respond_bytes,
)
from plinth.runtime import Runtime
from plinth.services.tracing import RequestTrace
from plinth.store import VersionRecord
from plinth.version import __version__

INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
HEADER_LENGTH = b"inference-header-content-length"
#: The protocol extensions Plinth implements, as the server metadata lists them.
EXTENSIONS = ["binary_tensor_data"]
_MAX_LISTED = 5

router = APIRouter(tags=["v2"])


def v2_error_body(error: PlinthError, request_id: str) -> dict[str, Any]:
    """The protocol's ``{"error": "..."}``, readable alone, with Plinth's details beside it."""
    detail = error.to_dict()["error"]
    text = f"{error.code}: {error.message}"
    problems = detail.get("problems", [])
    if problems:
        listed = "; ".join(f"[{p['code']}] {p['message']}" for p in problems[:_MAX_LISTED])
        more = len(error.problems) - min(len(problems), _MAX_LISTED)
        text += f" Problems: {listed}{f'; and {more} more' if more > 0 else ''}."
    return {**detail, "error": text, "request_id": request_id}


class InferHandler(PredictHandler):
    """``POST /v2/models/{name}[/versions/{v}]/infer``: JSON tensors or binary ones."""

    async def __call__(  # type: ignore[override]
        self, name: str, version: str | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        received = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = new_request_id(headers.get(b"x-request-id"))
        content_type = b"application/json"
        trace = self._start_trace("POST /v2/models/{name}/infer", name, request_id, headers)
        error_code: str | None = None
        extra: dict[bytes, bytes] = {}  # x-plinth-revision once routed, even if it then fails
        try:
            client = scope.get("client")
            status, data = await self._infer(
                name, version, headers, receive, received, request_id, trace,
                client[0] if client else "unknown", extra,
            )  # fmt: skip
            if HEADER_LENGTH in extra:
                content_type = b"application/octet-stream"
        except DisconnectedError:
            return
        except PlinthError as exc:
            error_code = exc.code
            # Retry-After for any error that says when (shed by admission, auth limit).
            status, data = exc.status, _dumps(v2_error_body(exc, request_id))
            extra.update((k.encode(), v.encode()) for k, v in error_headers(exc).items())
        except Exception as exc:  # a bug of ours: log it, answer 500 with the request id
            error = internal_error(request_id, exc)
            error_code = error.code
            status, data = error.status, _dumps(v2_error_body(error, request_id))
        if trace is not None:
            extra[b"traceparent"] = self._end_trace(trace, status, error_code)
        await respond_bytes(send, status, data, content_type, request_id, extra, self.identity)

    async def _infer(
        self,
        name: str,
        version_text: str | None,
        headers: dict[bytes, bytes],
        receive: Receive,
        received: float,
        request_id: str,
        trace: RequestTrace | None,
        client: str | None,
        extra: dict[bytes, bytes],
    ) -> tuple[int, bytes]:
        """The reply's status and body; its extra headers go into ``extra``."""
        await self._authorize(headers, client or "")
        version = parse_version(version_text)
        body = await self._read_body(headers, receive)
        encoding = headers.get(b"content-encoding")
        if encoding:
            body = _decompress(body, encoding, self.max_body_bytes)
        header, binary = _split(body, headers.get(HEADER_LENGTH))
        request = oip.parse_request(parse_json(header, oip.BODY_HINT, self.limits), binary)
        runtime: Runtime = self.state.runtime
        inferred = await infer(
            runtime, name, version, request, request_id, received, trace, self.max_records,
            self.limits,
        )  # fmt: skip
        if inferred.revision is not None:
            extra[b"x-plinth-revision"] = str(inferred.revision).encode()
        if inferred.error is not None:
            raise inferred.error
        tensors = inferred.tensors
        if request.outputs is not None:
            binary_names = {o.name for o in request.outputs if o.binary}
        else:
            binary_names = {t.name for t in tensors} if request.binary_output else set()
        reply: dict[str, Any] = {
            "model_name": name,
            "model_version": str(inferred.version),
            **({"id": request.id} if request.id is not None else {}),
            "parameters": inferred.parameters(request_id),
            "outputs": [],
        }
        blobs: list[bytes] = []
        for tensor in tensors:
            entry: dict[str, Any] = {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": tensor.shape,
            }
            if tensor.name in binary_names:
                blob = oip.raw_bytes(tensor)
                entry["parameters"] = {"binary_data_size": len(blob)}
                blobs.append(blob)
            else:
                entry["data"] = oip.json_data(tensor)
            reply["outputs"].append(entry)
        head = _dumps(reply)
        if not blobs:
            return 200, head
        extra[HEADER_LENGTH] = str(len(head)).encode()
        return 200, b"".join([head, *blobs])


@dataclass
class Inferred:
    """One routed inference: the version and route that answered, and the outputs; or, when
    the routed request failed, its ``error`` (the caller raises it) and the revision that
    routed it, which the reply names either way."""

    version: int
    route: str
    revision: int | None
    tensors: list[oip.OutputTensor]
    warnings: int
    reviews: int
    error: PlinthError | None = None

    def parameters(self, request_id: str) -> dict[str, Any]:
        """The reply's ``parameters``: scalars only, as the gRPC form can carry them."""
        return {
            "request_id": request_id,
            "route": self.route,
            "warnings": self.warnings,
            "reviews": self.reviews,
        }


async def infer(
    runtime: Runtime,
    name: str,
    version: int | None,
    request: oip.InferRequest,
    request_id: str,
    received: float,
    trace: RequestTrace | None,
    max_records: int,
    limits: RequestLimits | None = None,
) -> Inferred:
    """One v2 inference, REST or gRPC: tensors to records, the router (the /v1 path from
    there on), answers to output tensors. Raises the request's error until it is routed;
    a routed request's error is returned in ``Inferred.error``, beside its revision."""
    if limits is not None:
        check_tensors(request.inputs, limits)
    serving = runtime.require_serving()
    contract_model = (await serving.pool.get(name, version)).model
    records = oip.to_records(request.inputs, contract_model.contract.feature_names)
    if len(records) > max_records:
        raise TooManyRecordsError(len(records), max_records, hint=SPLIT_HINT)
    key = request.parameters.get("key")
    if key is not None and not isinstance(key, str):
        raise InvalidBodyError(
            "The inference request is malformed.",
            problems=[
                Problem(
                    INVALID_KEY,
                    "parameters.key must be a string",
                    'Send the key as a string, e.g. "parameters": {"key": "order-1234"}.',
                    "parameters.key",
                )
            ],
        )
    routed = await serving.router.predict(
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
    if routed.error is not None:
        return Inferred(
            routed.version or 0, routed.route, routed.revision, [], 0, 0, error=routed.error
        )
    assert routed.version is not None
    answering = contract_model
    if routed.version != contract_model.version:  # a canary or a fallback answered
        answering = (await serving.pool.get(name, routed.version)).model
    output = answering.output
    return Inferred(
        version=routed.version,
        route=routed.route,
        revision=routed.revision,
        tensors=oip.to_outputs(routed.answers, output.task, output.classes, request.outputs),
        warnings=sum(len(a.get("warnings", [])) for a in routed.answers),
        reviews=sum(1 for a in routed.answers if "review" in a),
    )


def check_tensors(tensors: list[oip.Tensor], limits: RequestLimits) -> None:
    """Elements per tensor and characters per ``BYTES`` element, however they came (JSON,
    the binary extension, gRPC's contents or raw contents); 413 ``request.over_limit``."""
    problems: list[Problem] = []
    for i, tensor in enumerate(tensors):
        where = f"inputs[{i}]"
        if tensor.values.size > limits.max_array_items:
            problems.append(array_too_long(tensor.values.size, limits.max_array_items, where))
        elif tensor.datatype == oip.BYTES and tensor.values.size:
            values = tensor.values.ravel()
            longest = max((len(v) for v in values if isinstance(v, str | bytes)), default=0)
            if longest > limits.max_string_chars:
                problems.append(string_too_long(longest, limits.max_string_chars, where))
    if problems:
        raise OverLimitError(problems)


def _decompress(body: bytes, encoding: bytes, limit: int) -> bytes:
    """A gzip or deflate body (Triton's ``request_compression_algorithm``), inflated to at
    most ``limit`` bytes: the size limit holds for what the body unpacks to."""
    kind = encoding.decode("latin-1").strip().lower()
    if kind == "identity":
        return body
    if kind not in ("gzip", "deflate"):
        raise InvalidBodyError(
            f"Content-Encoding {kind!r} is not one this server reads.",
            hint="Send the body as it is, or gzip or deflate it.",
        )
    inflater = zlib.decompressobj(31 if kind == "gzip" else 15)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidBodyError(
            f"The body is not valid {kind} data: {exc}.",
            hint=f"Compress the whole body with {kind}, or drop Content-Encoding.",
        ) from None
    if len(data) > limit:
        raise BodyTooLargeError(len(data), limit, hint=SPLIT_HINT)
    return data


def _split(body: bytes, header_length: bytes | None) -> tuple[bytes, memoryview]:
    """The JSON header and the binary tensor data after it (binary extension)."""
    if header_length is None:
        return body, memoryview(b"")
    text = header_length.decode("latin-1").strip()
    if not text.isdigit() or int(text) > len(body):
        raise InvalidBodyError(
            f"Inference-Header-Content-Length is {text!r}; the body has {len(body)} bytes.",
            hint="Set it to the length in bytes of the JSON header that starts the body.",
        )
    length = int(text)
    return body[:length], memoryview(body)[length:]


def parse_version(text: str | None) -> int | None:
    """A version named in a path or a gRPC request (empty: the served one)."""
    if text is None or text == "":
        return None
    if text.isdigit():
        return int(text)
    raise InvalidParametersError(
        "The request's parameters are invalid.",
        problems=[
            Problem(
                INVALID_PARAMETER,
                f"the model version must be a whole number, not {text!r}",
                hint="Plinth's versions are 1, 2, 3 …; GET /v2/models/NAME shows them.",
                field="path.version",
            )
        ],
    )


def _dumps(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, option=JSON_OPTIONS)


# -- metadata and health (FastAPI) ------------------------------------------------------------


@router.get("/v2")
async def server_metadata() -> Response:
    """The server's name, version and protocol extensions."""
    return json_response({"name": "plinth", "version": __version__, "extensions": EXTENSIONS})


@router.get("/v2/health/live")
async def live() -> Response:
    """Alive: the process answers (as ``/healthz``)."""
    return json_response({"live": True})


@router.get("/v2/health/ready")
async def ready(request: Request) -> Response:
    """Ready: the store answers and every registered model loaded (as ``/readyz``)."""
    runtime = runtime_of(request)
    try:
        await asyncio.to_thread(runtime.store.ping)
    except PlinthError:
        return json_response({"ready": False}, 503)
    is_ready = not runtime.require_serving().load_errors
    return json_response({"ready": is_ready}, 200 if is_ready else 503)


@router.get("/v2/models/{name}")
@router.get("/v2/models/{name}/versions/{version}")
async def model_metadata(request: Request, name: str, version: str | None = None) -> Response:
    """The version's inputs (one tensor per contract field) and outputs."""
    record = await _record(request, name, parse_version(version))
    versions = await asyncio.to_thread(runtime_of(request).store.list_versions, name)
    return json_response(
        oip.model_metadata(
            name,
            [str(v.version) for v in versions],
            f"plinth_{record.flavor}",
            Contract.from_dict(record.metadata["contract"]),
            OutputContract.from_dict(record.metadata["output_contract"]),
        )
    )


@router.post("/v2/models/{name}/infer", dependencies=[Depends(require_role(*PREDICT_ROLES))])
@router.post(
    "/v2/models/{name}/versions/{version}/infer",
    dependencies=[Depends(require_role(*PREDICT_ROLES))],
)
async def infer_route(name: str, version: str | None = None) -> Response:
    """Score input tensors (JSON ``data`` or the binary tensor data extension).

    Documentation only: ``PlinthApp`` answers this path itself (``InferHandler``), before
    FastAPI routes, so this body never runs.
    """
    raise AssertionError("PlinthApp dispatches the infer route")  # pragma: no cover


@router.get("/v2/models/{name}/ready")
@router.get("/v2/models/{name}/versions/{version}/ready")
async def model_ready(request: Request, name: str, version: str | None = None) -> Response:
    """Ready when this worker has the version (the served one by default) loaded."""
    pinned = parse_version(version)
    record = await _record(request, name, pinned)
    loaded = runtime_of(request).require_serving().pool.versions_of(name)
    is_ready = record.version in loaded
    return json_response({"name": name, "ready": is_ready}, 200 if is_ready else 503)


async def _record(request: Request, name: str, version: int | None) -> VersionRecord:
    runtime = runtime_of(request)
    if version is None:
        version = runtime.require_serving().router.serving(name)
    return await asyncio.to_thread(runtime.store.get_version, name, version)
