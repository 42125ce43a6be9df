"""Roles at the HTTP edge: a token -> role table and a ``require_role`` dependency.

Roles: ``predict`` may score and send labels, ``reviewer`` may work the review queue,
``admin`` may do everything. Tokens live in the store (``plinth tokens create``) and in
``PLINTH_TOKENS``; while there is none at all, auth is off (the laptop default), so a
first ``plinth tokens create --role admin`` is what switches it on. The table is cached
and reloaded every ``auth_refresh_s`` seconds, so a request costs a dict lookup.

Send the token as ``Authorization: Bearer <token>``.

A client (by address, as uvicorn reports it) that sends ``PLINTH_AUTH_MAX_FAILURES`` missing
or invalid tokens within ``PLINTH_AUTH_FAILURE_WINDOW_S`` is answered 429
``auth.too_many_failures`` with ``Retry-After`` until its oldest failure leaves the window,
without its token being looked at, so guessing tokens costs a guesser time, not the server.
Tokens are looked up by their sha256, never compared as text, so how long a lookup takes
says nothing about a stored token. The count is per worker process (in memory).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

from fastapi import Request

from plinth.errors import (
    ForbiddenError,
    InvalidTokenError,
    MissingTokenError,
    TooManyAuthFailuresError,
)
from plinth.http.edge import auth_of
from plinth.services.auth import Tokens, hash_token


class FailedAuthLimiter:
    """Failed token checks per client in a sliding window; past the limit, a wait."""

    def __init__(
        self,
        max_failures: int = 10,
        window_s: float = 60.0,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients  # the oldest clients are forgotten past this many
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def wait_s(self, client: str) -> float:
        """Seconds ``client`` must wait before its token is looked at (0: go ahead)."""
        times = self._failures.get(client)
        if not times:
            return 0.0
        now = self.clock()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) < self.max_failures:
            return 0.0
        return times[0] + self.window_s - now

    def failed(self, client: str) -> None:
        times = self._failures.pop(client, None) or deque(maxlen=self.max_failures)
        times.append(self.clock())
        self._failures[client] = times  # most recent last
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)


class Auth:
    """The cached token table of one worker, and its failed-token limiter."""

    def __init__(
        self, tokens: Tokens, refresh_s: float = 5.0, *, limiter: FailedAuthLimiter | None = None
    ) -> None:
        self.tokens = tokens
        self.refresh_s = refresh_s
        self.limiter = limiter or FailedAuthLimiter()
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
        client = request.client.host if request.client is not None else "unknown"
        role, name = await self.role_of(request.headers.get("authorization", ""), client)
        if name is not None:
            request.state.token_name = name
        return role

    async def role_of(
        self, header: str, client: str | None = None
    ) -> tuple[str | None, str | None]:
        """(role, token name) for an ``Authorization`` header from ``client`` (its address;
        None: not limited); (None, None) while auth is off. Raises 401 for a missing or
        unknown token, 429 for a client that sent too many of those lately."""
        table = await self.table()
        if not table:
            return None, None
        if client is None:
            return self._lookup(table, header)
        wait = self.limiter.wait_s(client)
        if wait > 0:
            raise TooManyAuthFailuresError(
                f"Too many requests with a missing or invalid token from this client "
                f"({self.limiter.max_failures} in {self.limiter.window_s:g} s).",
                retry_after_s=max(1, math.ceil(wait)),
            )
        try:
            return self._lookup(table, header)
        except (MissingTokenError, InvalidTokenError):
            self.limiter.failed(client)
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
