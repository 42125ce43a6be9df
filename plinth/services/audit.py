"""The audit trail of admin actions, readable with ``plinth audit``.

Every admin action that changes what is served or stored records who did it, what, to
which target and when, in the service that does it (so the CLI, HTTP and the console all
record it): deployment changes (``deployment.<action>``), contract edits
(``contract.edit``), retraining asked for or approved by a person (``training.request``,
``training.approve``), forgetting a subject (``subject.forget``), creating and revoking API
tokens (``token.create``, ``token.revoke``). A secret never goes in: a token is named by
its id, a forgotten subject by its counts only.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Any

from plinth.store import Store
from plinth.store.audit import AuditEvent, AuditStore


def current_user() -> str:
    """Who runs this CLI command: the operating-system user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's random uid)
        return "unknown"


def record(store: Store, action: str, target: str, who: str, **detail: Any) -> AuditEvent:
    """Append one admin action to the trail (now) and return it."""
    event = AuditEvent(datetime.now(UTC), who, action, target, detail)
    AuditStore(store).append(event)
    return event


def read(
    store: Store, *, limit: int = 100, action: str | None = None, since: datetime | None = None
) -> list[AuditEvent]:
    """The newest admin actions first."""
    return AuditStore(store).read(limit=limit, action=action, since=since)
