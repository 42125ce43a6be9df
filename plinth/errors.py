"""Every failure Plinth reports, as one tree with stable machine codes.

A caller's mistake is a 4xx listing every problem at once; our own failure is a 5xx
with a reason. Each error carries a ``code`` (stable, dotted), a ``message`` (what
happened), a ``hint`` (how to fix it) and an HTTP ``status`` as a plain int, so the
core can raise them without importing any web code.

    PlinthError
    ├── ConfigError            config.*        (500 / CLI exit 2)
    ├── NotFoundError          *.not_found     404
    ├── ContractError          contract.*      422  (carries every Problem)
    ├── RequestError           request.*       400 / 413 / 422
    ├── RegistryError          registry.*      400 / 409 / 500
    ├── ModelError             model.*         503
    ├── StoreError             store.*         503
    └── MissingExtraError      extra.missing   500
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MAX_LISTED_PROBLEMS = 100


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


@dataclass
class PlinthError(Exception):
    """Root of every error Plinth raises on purpose."""

    message: str
    code: str = "plinth.error"
    hint: str = ""
    status: int = 500
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        text = f"[{self.code}] {self.message}"
        if self.hint:
            text += f" Hint: {self.hint}"
        return text

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


class ConfigError(PlinthError):
    """A setting or file is wrong; the fix is on the operator's side."""

    def __init__(
        self,
        message: str,
        code: str = "config.invalid",
        hint: str = "",
        status: int = 500,
        problems: list[Problem] | None = None,
    ) -> None:
        super().__init__(message, code, hint, status, list(problems or []))


class NotFoundError(PlinthError):
    """A named thing (model, version, prediction) does not exist."""

    def __init__(
        self,
        message: str,
        code: str = "not_found",
        hint: str = "",
        status: int = 404,
        problems: list[Problem] | None = None,
    ) -> None:
        super().__init__(message, code, hint, status, list(problems or []))


class ContractError(PlinthError):
    """Input broke the data contract; ``problems`` lists every violation at once."""

    def __init__(
        self,
        message: str,
        code: str = "contract.invalid",
        hint: str = "",
        status: int = 422,
        problems: list[Problem] | None = None,
    ) -> None:
        super().__init__(message, code, hint, status, list(problems or []))


class RequestError(PlinthError):
    """The request itself is malformed (not JSON, wrong shape, too large)."""

    def __init__(
        self,
        message: str,
        code: str = "request.invalid",
        hint: str = "",
        status: int = 400,
        problems: list[Problem] | None = None,
    ) -> None:
        super().__init__(message, code, hint, status, list(problems or []))


class RegistryError(PlinthError):
    """Registering or loading a model version failed."""

    def __init__(
        self,
        message: str,
        code: str = "registry.invalid",
        hint: str = "",
        status: int = 400,
        problems: list[Problem] | None = None,
    ) -> None:
        super().__init__(message, code, hint, status, list(problems or []))


class ModelError(PlinthError):
    """The model raised or broke its output contract; the caller gets a 503."""

    def __init__(
        self,
        message: str,
        code: str = "model.error",
        hint: str = "",
        status: int = 503,
        problems: list[Problem] | None = None,
    ) -> None:
        super().__init__(message, code, hint, status, list(problems or []))


class StoreError(PlinthError):
    """The database could not be reached or refused a write."""

    def __init__(
        self,
        message: str,
        code: str = "store.unavailable",
        hint: str = "",
        status: int = 503,
        problems: list[Problem] | None = None,
    ) -> None:
        super().__init__(message, code, hint, status, list(problems or []))


class MissingExtraError(PlinthError):
    """An optional dependency is not installed; the hint names the pip command."""

    def __init__(
        self,
        message: str,
        code: str = "extra.missing",
        hint: str = "",
        status: int = 500,
        problems: list[Problem] | None = None,
    ) -> None:
        super().__init__(message, code, hint, status, list(problems or []))
