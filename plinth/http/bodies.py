"""JSON in and out for every route: orjson, one size limit, one error for a bad body."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from plinth.errors import RequestError


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def read_json(
    request: Request,
    max_bytes: int,
    *,
    hint: str,
    too_large_hint: str,
    optional: bool = False,
) -> Any:
    """The parsed body (None for an empty ``optional`` one); 413 past ``max_bytes``, 422 if
    it is not JSON. A declared Content-Length over the limit is refused before reading."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise too_large(int(length), max_bytes, too_large_hint)
    body = await request.body()
    if len(body) > max_bytes:
        raise too_large(len(body), max_bytes, too_large_hint)
    if optional and not body.strip():
        return None
    return parse_json(body, hint)


def parse_json(body: bytes, hint: str) -> Any:
    """The parsed body, or a 422 ``request.malformed_json`` saying what is wrong with it."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(
            f"The body is not valid JSON: {exc}.",
            code="request.malformed_json",
            status=422,
            hint=hint,
        ) from exc


def too_large(size: int, limit: int, hint: str) -> RequestError:
    return RequestError(
        f"The body is {size} bytes; the limit is {limit}.",
        code="request.too_large",
        status=413,
        hint=hint,
    )
