"""Roles at the HTTP edge: a token -> role table and a ``require_role`` dependency.

Roles: ``predict`` may score and send labels, ``reviewer`` may work the review queue,
``admin`` may do everything. Tokens live in the store (``plinth tokens create``) and in
``PLINTH_TOKENS``; while there is none at all, auth is off (the laptop default), so a
first ``plinth tokens create --role admin`` is what switches it on. The table is cached
and reloaded every ``auth_refresh_s`` seconds, so a request costs a dict lookup.

Send the token as ``Authorization: Bearer <token>``.

A client address that sends ``max_failures`` missing or invalid tokens within
``failure_window_s`` is refused (429 ``auth.too_many_failures`` with ``Retry-After``) until
the window passes, valid token or not, so guessing tokens costs a window per few guesses.
Behind a proxy the address is the proxy's unless uvicorn trusts its forwarded headers.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from fastapi import Request

from plinth.core.ratelimit import FailureLimiter
from plinth.errors import (
    AuthError,
    ForbiddenError,
    InvalidTokenError,
    MissingTokenError,
    TooManyFailuresError,
)
from plinth.http.edge import auth_of
from plinth.services.auth import Tokens, hash_token


class Auth:
    """The cached token table of one worker."""

    def __init__(
        self,
        tokens: Tokens,
        refresh_s: float = 5.0,
        *,
        max_failures: int = 10,
        failure_window_s: float = 60.0,
    ) -> None:
        self.tokens = tokens
        self.refresh_s = refresh_s
        self.failures = FailureLimiter(max_failures, failure_window_s)
        self._table: dict[str, tuple[str, str]] = {}
        self._loaded = -float("inf")
        self._lock = asyncio.Lock()

    async def table(self) -> dict[str, tuple[str, str]]:
        if time.monotonic() - self._loaded > self.refresh_s:
            async with self._lock:
                if time.monotonic() - self._loaded > self.refresh_s:
                    self._table = await asyncio.to_thread(self.tokens.table)
                    self._loaded = time.monotonic()
        return self._table

    async def role(self, request: Request) -> str | None:
        """The caller's role; None while auth is off. Raises 401 for a bad token."""
        client = request.client.host if request.client is not None else ""
        role, name = await self.role_of(request.headers.get("authorization", ""), client)
        if name is not None:
            request.state.token_name = name
        return role

    async def role_of(self, header: str, client: str = "") -> tuple[str | None, str | None]:
        """(role, token name) for an ``Authorization`` header; (None, None) while auth is
        off. Raises 401 for a missing or unknown token, 429 for a client past its failures."""
        table = await self.table()
        if not table:
            return None, None
        now = time.monotonic()
        wait = self.failures.retry_after(client, now) if client else 0.0
        if wait > 0:
            raise TooManyFailuresError(
                f"Too many requests from {client or 'this client'} had no valid token.",
                retry_after_s=max(1, math.ceil(wait)),
            )
        try:
            return self._lookup(table, header)
        except AuthError:
            if client:  # an edge that cannot tell its caller's address does not count
                self.failures.failed(client, now)
            raise

    @staticmethod
    def _lookup(table: dict[str, tuple[str, str]], header: str) -> tuple[str, str]:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MissingTokenError(
                "This server requires an API token.",
            )
        entry = table.get(hash_token(token.strip()))
        if entry is None:
            raise InvalidTokenError(
                "The API token is not valid (unknown or revoked).",
            )
        return entry


def require_role(*roles: str) -> Callable[[Request], Awaitable[str | None]]:
    """A FastAPI dependency: the caller's token must carry one of ``roles`` (admin always
    passes). Use as ``Depends(require_role("reviewer"))``; returns the role (None when auth
    is off, or when the app has no token table at all)."""
    allowed = frozenset(roles) | {"admin"}

    async def dependency(request: Request) -> str | None:
        auth = auth_of(request)
        if auth is None:
            return None
        role = await auth.role(request)
        check_role(role, allowed)
        return role

    return dependency


def check_role(role: str | None, allowed: frozenset[str]) -> None:
    """403 unless ``role`` is one of ``allowed`` (None means auth is off: anyone may)."""
    if role is not None and role not in allowed:
        raise ForbiddenError(
            f"A {role} token may not use this route.",
            hint=f"This route needs one of the roles: {', '.join(sorted(allowed))}.",
        )
