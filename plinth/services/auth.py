"""API tokens and roles: a token -> role table (predict, reviewer, admin).

Tokens live in the store as sha256 hashes only, plus any given by ``PLINTH_TOKENS``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from plinth.errors import (
    TokenNotFoundError,
    TokensSettingError,
    UnknownRoleError,
)
from plinth.services import audit
from plinth.services.feedback.labels import now_utc
from plinth.store import Store
from plinth.store.feedback import FeedbackStore, TokenRow

if TYPE_CHECKING:
    pass


ROLES = ("predict", "reviewer", "admin")


# ---------------------------------------------------------------------- tokens and roles


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_env_tokens(text: str | None) -> dict[str, tuple[str, str]]:
    """``PLINTH_TOKENS="admin:s3cret,reviewer:abc"`` -> {sha256(token): (role, name)}."""
    table: dict[str, tuple[str, str]] = {}
    for entry in (text or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        role, sep, token = entry.partition(":")
        if not sep or role not in ROLES or not token:
            raise TokensSettingError(
                f"PLINTH_TOKENS entry {entry.split(':')[0]!r}:… is not ROLE:TOKEN",
                hint=f"Write role:token pairs separated by commas; roles: {', '.join(ROLES)}.",
            )
        table[hash_token(token)] = (role, f"env-{role}")
    return table


@dataclass
class Tokens:
    """The token -> role table: tokens created in the store plus ``PLINTH_TOKENS``."""

    store: Store
    env_tokens: str | None = None
    clock: Callable[[], datetime] = now_utc
    _sql: FeedbackStore = field(init=False)

    def __post_init__(self) -> None:
        self._sql = FeedbackStore(self.store)

    def create(self, role: str, name: str = "", *, who: str | None = None) -> tuple[TokenRow, str]:
        """A new random token for ``role``; the token itself is shown once, never stored.
        Recorded in the audit trail by its id (``who``: the OS user by default)."""
        if role not in ROLES:
            raise UnknownRoleError(f"role {role!r} is not one of {', '.join(ROLES)}")
        token = "plt_" + secrets.token_urlsafe(24)
        row = TokenRow(
            id="tok_" + secrets.token_hex(4),
            name=name or role,
            role=role,
            token_hash=hash_token(token),
            created_at=self.clock(),
        )
        self._sql.add_token(row)
        audit.record(
            self.store, "token.create", row.id, who or audit.current_user(), role=role,
            name=row.name,
        )  # fmt: skip
        return row, token

    def active(self) -> list[TokenRow]:
        return self._sql.list_tokens()

    def revoke(self, token_id: str, *, who: str | None = None) -> None:
        if not self._sql.revoke_token(token_id, self.clock()):
            raise TokenNotFoundError(f"no active token {token_id!r}")
        audit.record(self.store, "token.revoke", token_id, who or audit.current_user())

    def table(self) -> dict[str, tuple[str, str]]:
        """sha256(token) -> (role, name) for every active token; empty means auth is off."""
        table = {row.token_hash: (row.role, row.name) for row in self._sql.list_tokens()}
        table.update(parse_env_tokens(self.env_tokens))
        return table
