"""The Open Inference Protocol over gRPC: KServe v2's ``GRPCInferenceService``.

``plinth serve --grpc-port N`` (``PLINTH_GRPC_PORT``) starts it in every worker, on the
worker's own event loop and beside its HTTP app (the port is shared between workers with
SO_REUSEPORT, as gRPC does by default on Linux). It answers ``ServerLive``, ``ServerReady``,
``ModelReady``, ``ServerMetadata``, ``ModelMetadata``, ``ModelInfer`` and the bidirectional
``ModelStreamInfer`` exactly as the ``/v2`` REST routes do: one translation
(``plinth.core.inference_protocol``) and one inference path (``plinth.http.v2.infer``), so a
gRPC inference goes through the same router, contract, batching, log, review gate, metrics
and traces. Inputs arrive as typed ``contents`` or as ``raw_input_contents``; outputs always
go back as ``raw_output_contents`` (what Triton's clients read fastest).

A failure is a gRPC status (``INVALID_ARGUMENT`` for a 4xx request error, ``NOT_FOUND``,
``UNAUTHENTICATED``, ``PERMISSION_DENIED``, ``RESOURCE_EXHAUSTED``, ``UNAVAILABLE``,
``INTERNAL``) whose details are the REST error's text, with Plinth's code in the trailing
metadata ``plinth-error-code`` and the request id in ``x-request-id``. On a stream a
request's failure is its response's ``error_message`` instead, and the stream goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import numpy as np

from plinth.core import inference_protocol as oip
from plinth.core.contract import Contract
from plinth.core.output import OutputContract
from plinth.core.request_limits import RequestLimits, array_too_long, string_too_long
from plinth.errors import InternalError, OverLimitError, PlinthError, Problem
from plinth.http.auth import Auth, check_role
from plinth.http.edge import PREDICT_ROLES, error_headers, new_request_id
from plinth.http.grpc_messages import MESSAGES, METHODS, SERVICE, STREAMING
from plinth.http.v2 import EXTENSIONS, infer, parse_version, v2_error_body
from plinth.runtime import Runtime
from plinth.version import __version__

log = logging.getLogger("plinth.grpc")

#: Requests of one ``ModelStreamInfer`` stream being scored at once; past it the server
#: stops reading the stream until the oldest is answered.
STREAM_WINDOW = 256

_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def peer_host(peer: str | None) -> str:
    """The client's address in gRPC's peer string, without the port (for the failed-auth
    limit, which counts per address as the HTTP routes do).

    >>> peer_host("ipv4:127.0.0.1:50412"), peer_host("ipv6:[::1]:50412"), peer_host(None)
    ('127.0.0.1', '[::1]', 'unknown')
    """
    kind, _, rest = (peer or "").partition(":")
    if kind in ("ipv4", "ipv6"):
        rest = rest.rsplit(":", 1)[0]
    return rest or "unknown"


def grpc_status(http_status: int) -> grpc.StatusCode:
    """The gRPC status for one of Plinth's HTTP statuses."""
    return {
        401: grpc.StatusCode.UNAUTHENTICATED,
        403: grpc.StatusCode.PERMISSION_DENIED,
        404: grpc.StatusCode.NOT_FOUND,
        413: grpc.StatusCode.RESOURCE_EXHAUSTED,
        429: grpc.StatusCode.RESOURCE_EXHAUSTED,
        503: grpc.StatusCode.UNAVAILABLE,
        504: grpc.StatusCode.DEADLINE_EXCEEDED,
    }.get(
        http_status,
        grpc.StatusCode.INVALID_ARGUMENT if 400 <= http_status < 500 else grpc.StatusCode.INTERNAL,
    )


class InferenceService:
    """The servicer: one per worker, over the worker's Runtime."""

    def __init__(
        self,
        runtime: Runtime,
        auth: Auth | None,
        *,
        max_records: int,
        limits: RequestLimits | None = None,
    ) -> None:
        self.runtime = runtime
        self.auth = auth
        self.max_records = max_records
        self.limits = limits or RequestLimits()

    # -- health and metadata ------------------------------------------------------------------

    async def server_live(self, request: Any, context: Any) -> Any:
        return MESSAGES["ServerLiveResponse"](live=True)

    async def server_ready(self, request: Any, context: Any) -> Any:
        try:
            await asyncio.to_thread(self.runtime.store.ping)
        except PlinthError:
            return MESSAGES["ServerReadyResponse"](ready=False)
        ready = not self.runtime.require_serving().load_errors
        return MESSAGES["ServerReadyResponse"](ready=ready)

    async def model_ready(self, request: Any, context: Any) -> Any:
        async def answer(request_id: str) -> Any:
            record = await self._record(request.name, parse_version(request.version))
            loaded = self.runtime.require_serving().pool.versions_of(request.name)
            return MESSAGES["ModelReadyResponse"](ready=record.version in loaded)

        return await self._guard(context, answer)

    async def server_metadata(self, request: Any, context: Any) -> Any:
        return MESSAGES["ServerMetadataResponse"](
            name="plinth", version=__version__, extensions=EXTENSIONS
        )

    async def model_metadata(self, request: Any, context: Any) -> Any:
        async def answer(request_id: str) -> Any:
            record = await self._record(request.name, parse_version(request.version))
            versions = await asyncio.to_thread(self.runtime.store.list_versions, request.name)
            meta = oip.model_metadata(
                request.name,
                [str(v.version) for v in versions],
                f"plinth_{record.flavor}",
                Contract.from_dict(record.metadata["contract"]),
                OutputContract.from_dict(record.metadata["output_contract"]),
            )
            tensor = MESSAGES["ModelMetadataResponse.TensorMetadata"]
            return MESSAGES["ModelMetadataResponse"](
                name=meta["name"],
                versions=meta["versions"],
                platform=meta["platform"],
                inputs=[tensor(**t) for t in meta["inputs"]],
                outputs=[tensor(**t) for t in meta["outputs"]],
            )

        return await self._guard(context, answer)

    async def _record(self, name: str, version: int | None) -> Any:
        if version is None:
            version = self.runtime.require_serving().router.serving(name)
        return await asyncio.to_thread(self.runtime.store.get_version, name, version)

    # -- inference ------------------------------------------------------------------------------

    async def model_infer(self, request: Any, context: Any) -> Any:
        received = time.perf_counter()
        metadata = dict(context.invocation_metadata() or ())
        request_id = new_request_id(metadata.get("x-request-id"))
        trace = self._start_trace("ModelInfer", request.model_name, request_id, metadata)
        client = peer_host(context.peer())

        async def answer(request_id: str) -> Any:
            return await self._infer(request, metadata, client, request_id, received, trace)

        return await self._guard(context, answer, request_id, trace)

    async def model_stream_infer(
        self, requests: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        """``ModelStreamInfer``: every request on the stream is answered as ``ModelInfer``
        answers it, in the order sent. The requests are scored concurrently (up to
        ``STREAM_WINDOW`` at once, so one stream's requests share micro-batches), and a
        request's error is that response's ``error_message``: the stream stays open."""
        metadata = dict(context.invocation_metadata() or ())
        client = peer_host(context.peer())
        window = asyncio.Semaphore(STREAM_WINDOW)
        pending: asyncio.Queue[asyncio.Task[Any] | None] = asyncio.Queue()

        async def read() -> None:
            try:
                async for request in requests:
                    received = time.perf_counter()
                    await window.acquire()  # past the window: stop reading (flow control)
                    one = self._stream_one(request, metadata, client, received)
                    pending.put_nowait(asyncio.create_task(one))
            finally:
                pending.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (task := await pending.get()) is not None:
                response = await task
                window.release()
                yield response
            await reader  # the client's half closed: raise what ended it, if anything did
        finally:
            reader.cancel()
            while not pending.empty():
                left = pending.get_nowait()
                if left is not None:
                    left.cancel()

    async def _stream_one(
        self, request: Any, metadata: dict[str, Any], client: str, received: float
    ) -> Any:
        """One streamed request's response: its reply, or its error as ``error_message``
        with the request's ``id`` and Plinth's ``request_id`` and ``error_code`` beside it."""
        request_id = new_request_id(None)  # one per request: the stream's requests are many
        trace = self._start_trace("ModelStreamInfer", request.model_name, request_id, metadata)

        async def answer(request_id: str) -> Any:
            return await self._infer(request, metadata, client, request_id, received, trace)

        outcome = await self._run(answer, request_id, trace)
        if isinstance(outcome, PlinthError):
            reply = MESSAGES["ModelInferResponse"](
                model_name=request.model_name, model_version=request.model_version, id=request.id
            )
            reply.parameters["request_id"].string_param = request_id
            reply.parameters["error_code"].string_param = outcome.code
            for key, value in error_headers(outcome).items():  # retry-after: shed, store down
                reply.parameters[key].string_param = value
            message = v2_error_body(outcome, request_id)["error"]
        else:
            reply, message = outcome, ""
        final = request.parameters.get("triton_enable_empty_final_response")
        if final is not None and final.bool_param:
            # Triton's flag for decoupled models; here every request has exactly one
            # response, so each is the final one.
            reply.parameters["triton_final_response"].bool_param = True
        return MESSAGES["ModelStreamInferResponse"](error_message=message, infer_response=reply)

    async def _infer(
        self,
        request: Any,
        metadata: dict[str, Any],
        client: str,
        request_id: str,
        received: float,
        trace: Any,
    ) -> Any:
        """One ``ModelInferRequest`` through ``plinth.http.v2.infer``; raises its error."""
        await self._authorize(metadata, client)
        version = parse_version(request.model_version)
        check_limits(request, self.limits)
        parsed = oip.InferRequest(
            id=request.id or None,
            inputs=_inputs(request),
            outputs=[oip.RequestedOutput(o.name, binary=True) for o in request.outputs] or None,
            parameters=_parameters(request.parameters),
        )
        inferred = await infer(
            self.runtime,
            request.model_name,
            version,
            parsed,
            request_id,
            received,
            trace,
            self.max_records,
            self.limits,
        )
        if inferred.error is not None:
            raise inferred.error
        reply = MESSAGES["ModelInferResponse"](
            model_name=request.model_name,
            model_version=str(inferred.version),
            id=request.id,
        )
        for key, value in inferred.parameters(request_id).items():
            _set_parameter(reply.parameters[key], value)
        for tensor in inferred.tensors:
            reply.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
            reply.raw_output_contents.append(oip.raw_bytes(tensor))
        return reply

    def _start_trace(
        self, method: str, model: str, request_id: str, metadata: dict[str, Any]
    ) -> Any:
        """The request's span when tracing is on, a child of the caller's ``traceparent``."""
        tracing = self.runtime.tracing
        if tracing is None:
            return None
        parent = metadata.get("traceparent")
        return tracing.start_request(
            f"{SERVICE}/{method}",
            model,
            request_id,
            parent.encode("latin-1") if parent else None,
        )

    async def _authorize(self, metadata: dict[str, Any], client: str | None = None) -> None:
        if self.auth is not None:
            role, _ = await self.auth.role_of(str(metadata.get("authorization", "")), client or "")
            check_role(role, PREDICT_ROLES)

    async def _run(
        self, answer: Callable[[str], Awaitable[Any]], request_id: str, trace: Any
    ) -> Any:
        """``answer``'s reply, or the ``PlinthError`` it raised (a bug of ours becomes an
        ``InternalError``, logged); the request's span ends either way."""
        try:
            reply = await answer(request_id)
        except PlinthError as exc:
            error: PlinthError = exc
        except Exception as exc:  # a bug of ours: log it, answer INTERNAL with the request id
            log.exception("unhandled error in gRPC request %s", request_id, exc_info=exc)
            error = InternalError(request_id)
        else:
            if trace is not None:
                trace.tracing.end_request(trace, 200, None)
            return reply
        if trace is not None:
            trace.tracing.end_request(trace, error.status, error.code)
        return error

    async def _guard(
        self,
        context: Any,
        answer: Callable[[str], Awaitable[Any]],
        request_id: str | None = None,
        trace: Any = None,
    ) -> Any:
        """Run ``answer``; a ``PlinthError`` (or a bug of ours) becomes a gRPC status."""
        request_id = request_id or new_request_id(None)
        outcome = await self._run(answer, request_id, trace)
        if not isinstance(outcome, PlinthError):
            return outcome
        trailing = [("plinth-error-code", outcome.code), ("x-request-id", request_id)]
        trailing.extend(error_headers(outcome).items())  # retry-after: shed, store unavailable
        context.set_trailing_metadata(tuple(trailing))
        await context.abort(
            grpc_status(outcome.status), v2_error_body(outcome, request_id)["error"]
        )
        raise AssertionError("context.abort raises")  # pragma: no cover


def check_limits(request: Any, limits: RequestLimits) -> None:
    """The JSON body's limits as they apply to a protobuf request (the message size is
    gRPC's own ``max_receive_message_length``; each tensor's elements and strings are
    checked by ``plinth.http.v2.infer``): tensors and parameters per request, characters
    per parameter; 413 ``request.over_limit`` (``RESOURCE_EXHAUSTED``)."""
    problems: list[Problem] = []
    for count, where in ((len(request.inputs), "inputs"), (len(request.parameters), "parameters")):
        if count > limits.max_array_items:
            problems.append(array_too_long(count, limits.max_array_items, where))
    for key, value in request.parameters.items():
        longest = max(len(key), len(value.string_param))
        if longest > limits.max_string_chars:
            where = f"parameters.{key[:40]}"
            problems.append(string_too_long(longest, limits.max_string_chars, where))
    if problems:
        raise OverLimitError(problems)


def _inputs(request: Any) -> list[oip.Tensor]:
    """The request's tensors, from ``raw_input_contents`` or the typed ``contents``."""
    raw = list(request.raw_input_contents)
    header = {
        "inputs": [
            {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": list(tensor.shape),
                **(
                    {"parameters": {"binary_data_size": len(raw[i])}}
                    if raw
                    else {"data": _contents(tensor)}
                ),
            }
            for i, tensor in enumerate(request.inputs)
            if not raw or i < len(raw)
        ]
    }
    return oip.parse_request(header, b"".join(raw)).inputs


def _contents(tensor: Any) -> list[Any]:
    name = _CONTENTS.get(tensor.datatype)
    if name is None:
        return []  # parse_request names the datatype as the problem
    return list(getattr(tensor.contents, name))


def _parameters(parameters: Any) -> dict[str, Any]:
    out = {}
    for key, value in parameters.items():
        which = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, which) if which else None
    return out


def _set_parameter(target: Any, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_param = value
    elif isinstance(value, int | np.integer):
        target.int64_param = int(value)
    elif isinstance(value, float):
        target.double_param = value
    else:
        target.string_param = str(value)


async def start_server(
    runtime: Runtime,
    auth: Auth | None,
    host: str,
    port: int,
    *,
    max_body_bytes: int,
    max_records: int,
    limits: RequestLimits | None = None,
) -> Any:
    """Start the gRPC server on this worker's loop; ``await server.stop(grace)`` ends it.
    A message past ``max_body_bytes`` is refused by gRPC itself (``RESOURCE_EXHAUSTED``)."""
    service = InferenceService(runtime, auth, max_records=max_records, limits=limits)
    methods = {
        "ServerLive": service.server_live,
        "ServerReady": service.server_ready,
        "ModelReady": service.model_ready,
        "ServerMetadata": service.server_metadata,
        "ModelMetadata": service.model_metadata,
        "ModelInfer": service.model_infer,
        "ModelStreamInfer": service.model_stream_infer,
    }
    handlers = {
        name: (
            grpc.stream_stream_rpc_method_handler if name in STREAMING
            else grpc.unary_unary_rpc_method_handler
        )(
            methods[name],
            request_deserializer=MESSAGES[request].FromString,
            response_serializer=MESSAGES[response].SerializeToString,
        )
        for name, (request, response) in METHODS.items()
    }  # fmt: skip
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_body_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 1),
        ]
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server
