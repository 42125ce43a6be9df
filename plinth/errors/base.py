"""The root of the tree, the per-field ``Problem``, and the registry the catalogue reads.

A *leaf* class owns one code (its class attribute ``code``), a default HTTP ``status`` and
a default ``hint``; a *family* (``ContractError``, ``StoreError``…) groups the leaves whose
codes share a prefix and owns no code, so only leaves are raised. Defining a leaf registers
its code here; defining two leaves with one code fails at import. ``problem_code``
registers the codes of the per-record / per-field findings that travel inside an error
(or as warnings), so the catalogue lists every code a caller can meet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

MAX_LISTED_PROBLEMS = 100

ProblemKind = Literal["problem", "warning", "problem or warning", "item outcome"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one field of one record, as a caller sees it."""

    code: str
    message: str
    hint: str = ""
    field: str | None = None
    record: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}


class PlinthError(Exception):
    """Root of every error Plinth raises on purpose."""

    code: str = ""  # a family has none; a leaf owns one
    status: int = 500
    hint: str = ""
    # For the catalogue, where a leaf's status is set per instance ("the server's").
    status_varies: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:
            return
        owner = _LEAVES.setdefault(cls.code, cls)
        if owner is not cls and owner.__qualname__ != cls.__qualname__:
            raise TypeError(f"{cls.__name__} and {owner.__name__} both claim {cls.code!r}")
        _LEAVES[cls.code] = cls  # a module reloaded in place redefines its classes

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        problems: Iterable[Problem] = (),
    ) -> None:
        if not self.code:
            raise TypeError(f"{type(self).__name__} is a family of errors; raise one of its leaves")
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint
        self.problems = list(problems)

    def __str__(self) -> str:
        text = f"[{self.code}] {self.message}"
        if self.hint:
            text += f" Hint: {self.hint}"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Leaves build their message from structured arguments; rebuild from the result.
        return (_restore, (type(self), self.message, self.hint, self.status, self.problems))

    def to_dict(self) -> dict[str, Any]:
        """The JSON body a caller receives; long problem lists are capped."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        if self.problems:
            shown = self.problems[:MAX_LISTED_PROBLEMS]
            body["problems"] = [p.to_dict() for p in shown]
            if len(self.problems) > len(shown):
                body["problems_not_shown"] = len(self.problems) - len(shown)
        return {"error": body}

    @classmethod
    def restore(
        cls, message: str, hint: str, status: int, problems: Iterable[Problem] = ()
    ) -> PlinthError:
        """This error as already built elsewhere (a server's answer, a pickle): no
        structured arguments, the message and hint as they were."""
        error = cls.__new__(cls)
        PlinthError.__init__(error, message, hint=hint, problems=problems)
        if status != cls.status:
            error.status = status
        return error


def _restore(
    cls: type[PlinthError], message: str, hint: str, status: int, problems: list[Problem]
) -> PlinthError:
    return cls.restore(message, hint, status, problems)


class NotFoundError(PlinthError):
    """A named thing (model, version, prediction, review item…) does not exist.

    Not a prefix family: every leaf whose code ends in ``not_found`` is also one of these,
    beside its own family, so ``except NotFoundError`` catches them all.
    """

    status = 404


@dataclass(frozen=True)
class ProblemCode:
    """A code carried by a ``Problem`` (inside an error, or as a warning), for the catalogue."""

    code: str
    family: type[PlinthError] | None  # None: not carried by an error (a per-item outcome)
    kind: ProblemKind
    meaning: str


_LEAVES: dict[str, type[PlinthError]] = {}
PROBLEM_CODES: dict[str, ProblemCode] = {}


def problem_code(
    family: type[PlinthError] | None, code: str, meaning: str, kind: ProblemKind = "problem"
) -> str:
    """Declare a problem or warning code; returns the code, to keep as a module constant."""
    known = PROBLEM_CODES.get(code)
    if known is not None and known.meaning != meaning:
        raise TypeError(f"problem code {code!r} is declared twice")
    PROBLEM_CODES[code] = ProblemCode(code, family, kind, meaning)
    return code


def leaves() -> dict[str, type[PlinthError]]:
    """Every leaf class by its code."""
    return dict(_LEAVES)


def error_class(code: str) -> type[PlinthError] | None:
    """The leaf that owns ``code`` (None for a code this version does not know)."""
    return _LEAVES.get(code)


class InternalError(PlinthError):
    """A bug of ours: the traceback is in the server log, never in the answer."""

    code = "internal.error"
    status = 500
    hint = "Quote the request id when reporting it."

    def __init__(self, request_id: str, *, message: str | None = None) -> None:
        super().__init__(
            message or "Internal error; it has been logged.",
            hint=f"Quote request id {request_id} when reporting it.",
        )


class RemoteError(PlinthError):
    """A server answered with an error this client cannot name (not JSON, or a newer code)."""

    code = "http.error"
    status = 502
    status_varies = "the server's"
    hint = "Check the server's log; its answer was not a Plinth error."

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        hint: str | None = None,
        problems: Iterable[Problem] = (),
    ) -> None:
        super().__init__(message, hint=hint, problems=problems)
        self.status = status
        if code:
            self.code = code


class MissingExtraError(PlinthError):
    """An optional dependency is not installed; the hint names the pip command."""

    code = "extra.missing"
    status = 500
    hint = "Install the extra named in the message: pip install 'plinth-ml[EXTRA]'."

    def __init__(
        self, extra: str, module: str, reason: str = "", *, needed_by: str = "This model"
    ) -> None:
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"{needed_by} needs {module}, which is not installed{why}.",
            hint=f"pip install 'plinth-ml[{extra}]'",
        )


class ServerError(PlinthError):
    """This server cannot take the request now; ``server.*`` (503)."""

    status = 503


class NotServingError(ServerError):
    """The process has no serving side (yet): it is starting, or not a server."""

    code = "server.not_serving"
    hint = "Wait for /readyz, or start the server with `plinth serve`."


class OverloadedError(ServerError):
    """Shed at admission: the model's queue would not answer this request in time.

    ``retry_after_s`` becomes the reply's ``Retry-After`` header.
    """

    code = "server.overloaded"
    retry_after_s: int = 1
    hint = (
        "The model's queue is longer than this request's deadline; retry after the "
        "Retry-After header's seconds, with backoff, or add workers or replicas."
    )

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
