"""What every route shares, the fast predict route included: JSON in and out (orjson, one
size limit, one error for a bad body), request ids, who answered, error bodies, the runtime
and the roles.

Both the FastAPI routes and the plain-ASGI predict route (``plinth.http.predict``) use these,
so a 500, a 413 or a request id looks the same whichever path answered.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, cast

import orjson
from fastapi import Request
from fastapi.responses import Response

from plinth.core.ids import new_id
from plinth.core.request_limits import RequestLimits, parse_limited
from plinth.errors import BodyTooLargeError, InternalError, MalformedJsonError, PlinthError

if TYPE_CHECKING:
    from plinth.http.auth import Auth
    from plinth.runtime import Runtime

log = logging.getLogger("plinth.http")

JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
#: Who may score: the predict role, and admin (which may do everything).
PREDICT_ROLES = frozenset({"predict", "admin"})


def runtime_of(request: Request) -> Runtime:
    """The worker's Runtime (set by the app's lifespan)."""
    return cast("Runtime", request.app.state.runtime)


def auth_of(request: Request) -> Auth | None:
    """The worker's token cache, or None for an app built without one."""
    return cast("Auth | None", getattr(request.app.state, "auth", None))


def caller_of(request: Request) -> str:
    """Who made this admin request, for the audit trail: ``api:`` and the token's name
    (never the token), or ``api:anonymous (auth off)``."""
    name = getattr(request.state, "token_name", None)
    return f"api:{name or 'anonymous (auth off)'}"


def identity_headers(replica: str = "") -> list[tuple[bytes, bytes]]:
    """Who answered, behind a load balancer: ``x-plinth-worker`` (the process id) and, when
    the replica has a name, ``x-plinth-replica``. Every HTTP reply carries them."""
    headers = [(b"x-plinth-worker", str(os.getpid()).encode())]
    if replica:
        headers.append((b"x-plinth-replica", replica.encode("latin-1", "replace")))
    return headers


def new_request_id(header: str | bytes | None) -> str:
    """The caller's ``x-request-id`` when it sent one, else a fresh ULID."""
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    return header or new_id()


def internal_error(request_id: str, exc: BaseException) -> InternalError:
    """A bug of ours: logged with its traceback and request id; the 500 every route answers."""
    log.exception("unhandled error in request %s", request_id, exc_info=exc)
    return InternalError(request_id)


def error_body(error: PlinthError, request_id: str) -> dict[str, Any]:
    body = error.to_dict()
    body["error"]["request_id"] = request_id
    return body


def error_headers(error: PlinthError) -> dict[str, str]:
    """Headers an error's reply carries besides the body: ``Retry-After`` for an error that
    says when to retry (429 too many failures, 503 overloaded or store unavailable)."""
    retry = getattr(error, "retry_after_s", None)
    return {} if retry is None else {"retry-after": str(int(retry))}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, option=JSON_OPTIONS),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def limits_of(request: Request) -> RequestLimits | None:
    """The server's request limits (set when the app is built)."""
    return cast("RequestLimits | None", getattr(request.app.state, "limits", None))


async def read_json(
    request: Request,
    max_bytes: int,
    *,
    hint: str,
    too_large_hint: str,
    optional: bool = False,
) -> Any:
    """The parsed body (None for an empty ``optional`` one); 413 past ``max_bytes`` or the
    server's shape limits (``plinth.core.request_limits``), 422 if it is not JSON. A declared
    Content-Length over the limit is refused before reading."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise BodyTooLargeError(int(length), max_bytes, hint=too_large_hint)
    body = await request.body()
    if len(body) > max_bytes:
        raise BodyTooLargeError(len(body), max_bytes, hint=too_large_hint)
    if optional and not body.strip():
        return None
    return parse_json(body, hint, limits_of(request))


def parse_json(body: bytes, hint: str, limits: RequestLimits | None = None) -> Any:
    """The parsed body, or a 422 ``request.malformed_json`` saying what is wrong with it, or
    a 413 ``request.over_limit`` for a body past ``limits`` (nesting, sizes)."""
    try:
        return parse_limited(body, limits)
    except orjson.JSONDecodeError as exc:
        raise MalformedJsonError(str(exc), hint=hint) from exc
