"""API tokens and roles: who may call what."""

from __future__ import annotations

from plinth.errors.base import NotFoundError, PlinthError


class AuthError(PlinthError):
    """No token, an unknown one, or one whose role may not do this; ``auth.*`` (401)."""

    status = 401


class MissingTokenError(AuthError):
    """The server has tokens and the request sent none."""

    code = "auth.missing_token"
    hint = (
        "Send 'Authorization: Bearer <token>'; an admin creates one with "
        "`plinth tokens create --role predict`."
    )


class InvalidTokenError(AuthError):
    """The token is unknown or revoked."""

    code = "auth.invalid_token"
    hint = "Ask an admin for a token: `plinth tokens create --role ...`."


class TooManyAuthFailuresError(AuthError):
    """This client sent too many missing or invalid tokens lately; it must wait."""

    code = "auth.too_many_failures"
    status = 429
    hint = "Wait for the Retry-After seconds, then send a valid token."

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        #: Seconds until this client may try again (the reply's Retry-After header).
        self.retry_after_s = retry_after_s


class ForbiddenError(AuthError):
    """The token's role may not use this route."""

    code = "auth.forbidden"
    status = 403
    hint = "Use a token with a role this route allows (admin may use every route)."


class CsrfError(AuthError):
    """A console form was posted without this session's CSRF token."""

    code = "auth.csrf_failed"
    status = 403
    hint = (
        "Post the console's forms from its own pages (each carries a hidden csrf_token); "
        "reload the page and try again."
    )


class UnknownRoleError(AuthError):
    """A token was asked for with a role that does not exist."""

    code = "auth.invalid_role"
    status = 422
    hint = "predict may score, reviewer may review, admin may do everything."


class TokenNotFoundError(AuthError, NotFoundError):
    """No active token has this id."""

    code = "auth.token_not_found"
    status = 404
    hint = "`plinth tokens list` shows the active tokens and their ids."
