"""The ASGI application behind ``plinth serve``.

The predict route takes the raw ``Request`` and renders with orjson: no pydantic model
per record on the hot path. Errors are mapped once: a ``PlinthError`` becomes its own
status and JSON body; anything else becomes a 500 with a request id and never a trace.

Every HTTP reply, success or error, from any route, says who it was for and who answered:
``x-request-id`` (the caller's, or a fresh one that the error body repeats),
``x-plinth-worker`` and ``x-plinth-replica``; a routed prediction adds ``x-plinth-revision``.
The fast routes write them themselves; ``PlinthApp.__call__`` adds them to the rest.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive, Scope, Send

from plinth.config.policies import Policies
from plinth.config.settings import Settings
from plinth.core.request_limits import RequestLimits
from plinth.errors import (
    HttpStatusError,
    InvalidParametersError,
    MissingExtraError,
    PathNotFoundError,
    PlinthError,
    Problem,
    QueryTooLargeError,
)
from plinth.errors.request import INVALID_PARAMETER
from plinth.http.auth import Auth, require_role
from plinth.http.contracts import router as contracts_router
from plinth.http.deployments import router as deployments_router
from plinth.http.edge import (
    PREDICT_ROLES,
    error_body,
    error_headers,
    identity_headers,
    internal_error,
    json_response,
    new_request_id,
    runtime_of,
)
from plinth.http.feedback import router as feedback_router
from plinth.http.monitoring import router as monitoring_router
from plinth.http.predict import PREDICT_PATH, PredictHandler
from plinth.http.privacy import router as privacy_router
from plinth.http.review import router as review_router
from plinth.http.schemas import ERROR_RESPONSES, PredictRequest, PredictResponse
from plinth.http.training import router as training_router
from plinth.http.v2 import INFER_PATH, InferHandler, v2_error_body
from plinth.http.v2 import router as v2_router
from plinth.runtime import Runtime
from plinth.services.views import prediction_view, version_view
from plinth.ui.routes import PREFIX as CONSOLE_PREFIX
from plinth.ui.routes import error_page as console_error_page
from plinth.ui.routes import mount as mount_console
from plinth.version import __version__


def error_response(error: PlinthError, request_id: str, request: Request | None = None) -> Response:
    """The error in ``/v1``'s shape, in the Open Inference Protocol's under ``/v2``, or, for a
    console page (``/ui``), as an HTML page for a person."""
    path = request.url.path if request is not None else ""
    if request is not None and _is_console(request):
        response = console_error_page(request, error)
        response.headers["x-request-id"] = request_id
        response.headers.update(error_headers(error))
        return response
    body = v2_error_body(error, request_id) if _is_v2(path) else error_body(error, request_id)
    # Retry-After for any error that says when: overloaded, too many failures, store down.
    headers = {"x-request-id": request_id, **error_headers(error)}
    return json_response(body, error.status, headers)


def _is_v2(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def _is_console(request: Request) -> bool:
    path = request.url.path
    return path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


#: Where ``PlinthApp`` keeps a request's id in the ASGI scope, for the routes and handlers.
REQUEST_ID = "plinth.request_id"


def _request_id(request: Request) -> str:
    found = request.scope.get(REQUEST_ID)
    return found if isinstance(found, str) else new_request_id(request.headers.get("x-request-id"))


class PlinthApp(FastAPI):
    """FastAPI, except that the predict route is answered before FastAPI's own routing, and
    every other reply gets the request id and who answered in its headers."""

    predict_handler: PredictHandler | None = None
    infer_handler: InferHandler | None = None
    limits: RequestLimits | None = None
    identity: list[tuple[bytes, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if self.limits is not None:
            try:  # before any route parses it: a huge query string costs every parser
                self.limits.check_query(scope.get("query_string", b""))
            except QueryTooLargeError as exc:
                await _refuse(exc, scope, receive, self._identified(scope, send))
                return
        if scope["method"] == "POST" and self.predict_handler:
            match = PREDICT_PATH.fullmatch(scope["path"])
            if match is not None:
                await self.predict_handler(match.group(1), scope, receive, send)
                return
            match = INFER_PATH.fullmatch(scope["path"])
            if match is not None and self.infer_handler is not None:
                await self.infer_handler(match.group(1), match.group(2), scope, receive, send)
                return
        await super().__call__(scope, receive, self._identified(scope, send))

    def _identified(self, scope: Scope, send: Send) -> Send:
        """``send`` that adds ``x-request-id`` (kept in the scope, so an error body names the
        same id) and who answered to the reply's headers, unless a route set them."""
        request_id = new_request_id(dict(scope["headers"]).get(b"x-request-id"))
        scope[REQUEST_ID] = request_id
        added = [(b"x-request-id", request_id.encode("latin-1", "replace")), *self.identity]

        async def identified(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in added if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        return identified


async def _refuse(error: PlinthError, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer ``error`` before routing: JSON in ``/v1``'s shape, or ``/v2``'s under /v2."""
    request_id = str(scope[REQUEST_ID])
    path = scope.get("path", "")
    body = v2_error_body(error, request_id) if _is_v2(path) else error_body(error, request_id)
    await json_response(body, error.status, {"x-request-id": request_id})(scope, receive, send)


def create_app_from_handoff() -> PlinthApp:
    """The factory ``plinth serve`` names to uvicorn: each worker builds its app from the
    settings the command resolved (``Settings.from_handoff``)."""
    return create_app(Settings.from_handoff())


def create_app(settings: Settings | None = None, *, policies: Policies | None = None) -> PlinthApp:
    """Build the app; ``plinth serve`` calls this once per worker process.

    The lifespan opens one Runtime (store, policies, services), starts its request path and
    background work, and stops and closes it on shutdown; routes reach it through
    ``plinth.http.edge.runtime_of``.
    """
    settings = settings or Settings()
    if policies is None:
        policies = settings.policies()  # a bad plinth.toml stops start-up, every problem listed

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await asyncio.to_thread(Runtime.open, settings, policies=policies)
        app.state.runtime = runtime
        app.state.auth = Auth(
            runtime.tokens,
            settings.auth_refresh_s,
            max_failures=settings.auth_max_failures,
            failure_window_s=settings.auth_failure_window_s,
        )
        grpc_server: Any = None
        try:
            await runtime.start_serving()
            await runtime.start_background()
            if settings.grpc_port is not None:
                try:
                    from plinth.http.grpc_service import start_server
                except ImportError as exc:
                    raise MissingExtraError(
                        "grpc", "grpcio", str(exc), needed_by="plinth serve --grpc-port"
                    ) from exc

                grpc_server = await start_server(
                    runtime,
                    app.state.auth,
                    settings.grpc_host,
                    settings.grpc_port,
                    max_body_bytes=settings.max_body_bytes,
                    max_records=settings.max_records_per_request,
                    limits=settings.request_limits(),
                )
            # Everything loaded so far (libraries, models) lives as long as the process: move
            # it out of the collector's sight, so a full collection under load walks only what
            # requests allocate (shorter GC pauses, a steadier p99).
            gc.collect()
            gc.freeze()
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(5.0)
            gc.unfreeze()  # an app built and stopped in a longer process must not leak
            await runtime.stop()
            await asyncio.to_thread(runtime.close)

    app = PlinthApp(
        title="Plinth",
        summary="Serve a trained model behind an input contract, log and replay every prediction.",
        version=__version__,
        lifespan=lifespan,
    )
    limits = settings.request_limits()
    app.limits = app.state.limits = limits
    app.identity = identity_headers(settings.replica)
    app.predict_handler = PredictHandler(
        app.state,
        max_body_bytes=settings.max_body_bytes,
        max_records=settings.max_records_per_request,
        replica=settings.replica,
        limits=limits,
    )
    app.infer_handler = InferHandler(
        app.state,
        max_body_bytes=settings.max_body_bytes,
        max_records=settings.max_records_per_request,
        replica=settings.replica,
        limits=limits,
    )

    @app.exception_handler(PlinthError)
    async def plinth_error(request: Request, exc: PlinthError) -> Response:
        return error_response(exc, _request_id(request), request)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            Problem(
                INVALID_PARAMETER,
                str(e.get("msg", "invalid")),
                hint="See the OpenAPI document at /docs.",
                field=".".join(str(p) for p in e.get("loc", ())),
            )
            for e in exc.errors()
        ]
        error = InvalidParametersError("The request's parameters are invalid.", problems=problems)
        return error_response(error, _request_id(request), request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        error: PlinthError = (
            PathNotFoundError(str(exc.detail))
            if exc.status_code == 404
            else HttpStatusError(str(exc.detail), exc.status_code)
        )
        return error_response(error, _request_id(request), request)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        request_id = _request_id(request)
        return error_response(internal_error(request_id, exc), request_id, request)

    @app.post(
        "/v1/models/{name}/predict",
        tags=["predict"],
        dependencies=[Depends(require_role(*PREDICT_ROLES))],
        response_model=PredictResponse,
        responses=ERROR_RESPONSES,
    )
    async def predict(name: str, body: PredictRequest, version: int | None = None) -> Response:
        """Score ``{"records": [...]}`` (1 to 10,000 records) with the served version.

        Documentation only: ``PlinthApp`` answers this path itself, before FastAPI routes
        (see ``plinth.http.predict``), so this body never runs.
        """
        raise AssertionError("PlinthApp dispatches the predict route")  # pragma: no cover

    @app.get("/v1/models", tags=["models"])
    async def list_models(request: Request) -> Response:
        """Every registered model, its newest version and the version this worker serves."""
        runtime = runtime_of(request)
        summaries = await asyncio.to_thread(runtime.store.list_models)
        serving_now = runtime.require_serving()
        serving = {m.name: serving_now.router.serving(m.name) for m in serving_now.pool.loaded}
        return json_response(
            {
                "models": [
                    {
                        "name": s.name,
                        "task": s.task,
                        "latest_version": s.latest_version,
                        "versions": s.versions,
                        "serving_version": serving.get(s.name),
                        "updated_at": s.updated_at.isoformat(),
                    }
                    for s in summaries
                ]
            }
        )

    @app.get("/v1/models/{name}", tags=["models"])
    async def show_model(request: Request, name: str, profile: bool = False) -> Response:
        """A model's versions with contracts, metrics and lineage."""
        store = runtime_of(request).store
        versions = await asyncio.to_thread(store.list_versions, name)
        if not versions:
            await asyncio.to_thread(store.get_version, name)  # raises the not-found error
        return json_response(
            {"name": name, "versions": [version_view(v, with_profile=profile) for v in versions]}
        )

    @app.get("/v1/predictions/{prediction_id}", tags=["predictions"])
    async def get_prediction(request: Request, prediction_id: str) -> Response:
        """The full logged record of one prediction."""
        store = runtime_of(request).store
        record = await asyncio.to_thread(store.get_prediction, prediction_id)
        return json_response(prediction_view(record))

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> Response:
        """Alive: the process answers."""
        return json_response({"status": "ok", "pid": os.getpid()})

    @app.get("/readyz", tags=["ops"])
    async def readyz(request: Request) -> Response:
        """Ready: the store answers (and takes writes, after the log failed to commit) and
        every registered model loaded; otherwise 503 naming what is wrong."""
        runtime = runtime_of(request)
        serving = runtime.require_serving()
        try:
            await asyncio.to_thread(runtime.store.ping)
            writer = serving.log_writer
            failure = None if writer is None else await asyncio.to_thread(writer.probe)
            if failure is not None:
                raise failure
        except PlinthError as exc:
            return json_response({"status": "unavailable", "store": exc.to_dict()["error"]}, 503)
        errors = serving.load_errors
        loaded = sorted(f"{m.name}:{m.version}" for m in serving.pool.loaded)
        if errors:
            return json_response({"status": "degraded", "loaded": loaded, "errors": errors}, 503)
        return json_response({"status": "ready", "loaded": loaded})

    app.include_router(deployments_router, dependencies=[Depends(require_role("admin"))])
    app.include_router(privacy_router, dependencies=[Depends(require_role("admin"))])
    app.include_router(contracts_router, dependencies=[Depends(require_role("admin"))])
    app.include_router(feedback_router)
    app.include_router(review_router)
    app.include_router(monitoring_router)
    mount_console(app)  # the web console at /ui: same process, same services and roles
    app.include_router(training_router)
    app.include_router(v2_router)

    @app.get("/metrics", tags=["ops"])
    async def metrics() -> Response:
        """Prometheus text format; aggregates all workers in multiprocess mode."""
        return Response(_render_metrics(), media_type=CONTENT_TYPE_LATEST)

    return app


def _render_metrics() -> bytes:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
