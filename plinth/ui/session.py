"""Who is looking at the console, and whether a form really came from it.

Signing in stores the Plinth token itself in an HttpOnly, SameSite=Strict cookie (Secure
over TLS), and every request checks it against the same cached token table as the API: a
revoked token ends its console sessions within ``auth_refresh_s`` on every replica, with
no session table and no server secret to share. Roles are the API's: anyone signed in
reads, reviewers review, admins change deployments. With no tokens at all (the laptop
default) the console is open, as the API is.

CSRF: a random ``plinth_csrf`` cookie, and every form carries HMAC(cookie, session token);
a POST whose field does not match is refused (``auth.csrf_failed``). A cross-site page can
neither read the cookie nor know the token, and SameSite=Strict keeps the browser from
sending either along in the first place.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Protocol, cast
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import Response

from plinth.errors import CsrfError, ForbiddenError, InvalidTokenError, MissingTokenError
from plinth.runtime import Runtime

SESSION_COOKIE = "plinth_session"
CSRF_COOKIE = "plinth_csrf"
CSRF_FIELD = "csrf_token"
#: How long a console sign-in lasts (the token's own revocation ends it sooner).
SESSION_SECONDS = 12 * 3600
MAX_FORM_BYTES = 64 * 1024


class RoleTable(Protocol):
    """The API's cached token table (``plinth.http.auth.Auth``), as the console uses it."""

    async def table(self) -> dict[str, tuple[str, str]]: ...

    async def role_of(
        self, header: str, client: str | None = None
    ) -> tuple[str | None, str | None]: ...


@dataclass(frozen=True)
class Viewer:
    """The person at the console: their role (None while auth is off) and token name."""

    role: str | None
    name: str | None
    auth_on: bool

    def may(self, *roles: str) -> bool:
        """True when auth is off, for admin, or for one of ``roles``."""
        return self.role is None or self.role == "admin" or self.role in roles

    @property
    def is_admin(self) -> bool:
        return self.may("admin")

    @property
    def is_reviewer(self) -> bool:
        return self.may("reviewer")


def runtime_of(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


def _table(request: Request) -> RoleTable | None:
    return cast("RoleTable | None", getattr(request.app.state, "auth", None))


async def check_token(request: Request, token: str) -> tuple[str | None, str | None]:
    """(role, name) of ``token``; raises ``auth.invalid_token`` for an unknown one."""
    table = _table(request)
    if table is None:
        return None, None
    client = request.client.host if request.client is not None else "unknown"
    return await table.role_of(f"Bearer {token}", client)


async def auth_is_on(request: Request) -> bool:
    """Whether any token exists (none: the console is open, as the API is)."""
    table = _table(request)
    return table is not None and bool(await table.table())


async def viewer_of(request: Request) -> Viewer:
    """The signed-in viewer; a 401 (which a page turns into the sign-in page) when tokens
    exist and the session is missing, unknown or revoked."""
    if not await auth_is_on(request):
        return Viewer(None, None, auth_on=False)
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        raise MissingTokenError("Sign in with a Plinth token to use the console.")
    try:
        role, name = await check_token(request, token)
    except InvalidTokenError as exc:
        raise MissingTokenError(
            "Your session's token is no longer valid; sign in again.",
        ) from exc
    return Viewer(role, name, auth_on=True)


def require(viewer: Viewer, *roles: str) -> None:
    """403 unless the viewer may act as one of ``roles`` (admin always may)."""
    if not viewer.may(*roles):
        raise ForbiddenError(
            f"A {viewer.role} token may not do this.",
            hint=f"This needs one of the roles: {', '.join(sorted({*roles, 'admin'}))}.",
        )


# ---------------------------------------------------------------------- cookies and CSRF


def secure(request: Request) -> bool:
    """Served over TLS (directly, or behind a proxy uvicorn trusts)."""
    return request.url.scheme == "https"


def csrf_seed(request: Request) -> str:
    """This browser's CSRF cookie value, or a new one (``ensure_csrf_cookie`` sets it)."""
    seed = request.cookies.get(CSRF_COOKIE)
    if seed and len(seed) >= 32:
        return seed
    existing = getattr(request.state, "csrf_seed", None)
    if existing:
        return str(existing)
    seed = secrets.token_urlsafe(32)
    request.state.csrf_seed = seed
    return seed


def csrf_token(request: Request) -> str:
    """The hidden field every form of this page carries."""
    session = request.cookies.get(SESSION_COOKIE, "")
    return hmac.new(csrf_seed(request).encode(), session.encode(), hashlib.sha256).hexdigest()


def ensure_csrf_cookie(request: Request, response: Response) -> None:
    """Set the CSRF cookie when this request created it."""
    seed = getattr(request.state, "csrf_seed", None)
    if seed:
        response.set_cookie(
            CSRF_COOKIE, seed, httponly=True, samesite="strict", secure=secure(request), path="/ui"
        )


async def read_form(request: Request) -> dict[str, str]:
    """The posted form (urlencoded), after checking its CSRF token."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise CsrfError("The form is too large to be one of the console's.")
    fields = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    sent = fields.pop(CSRF_FIELD, "")
    if CSRF_COOKIE not in request.cookies or not hmac.compare_digest(sent, csrf_token(request)):
        raise CsrfError("The form's CSRF token is missing or does not match this session.")
    return fields


def sign_in(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=secure(request),
        path="/ui",
    )


def sign_out(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/ui", httponly=True, samesite="strict")
