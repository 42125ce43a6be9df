"""The audit trail: admin actions recorded with who, what and when, never a secret; on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from plinth.services import audit
from plinth.services.auth import Tokens
from plinth.services.privacy import forget
from plinth.store import Store


def test_token_and_forget_actions_are_recorded_without_secrets(store: Store) -> None:
    tokens = Tokens(store)
    row, token = tokens.create("admin", "ops", who="alice")
    tokens.revoke(row.id, who="bob")
    forget(store, "subject-secret-key", model="churn", who="carol")

    events = audit.read(store)
    assert [(e.action, e.target, e.who) for e in events] == [
        ("subject.forget", "churn", "carol"),
        ("token.revoke", row.id, "bob"),
        ("token.create", row.id, "alice"),
    ]  # newest first
    assert events[0].detail == {
        "predictions": 0, "labels": 0, "label_history": 0, "review_items": 0,
    }  # fmt: skip
    assert events[2].detail == {"role": "admin", "name": "ops"}
    text = repr(events)
    assert token not in text and "subject-secret-key" not in text
    assert all(e.at.tzinfo is not None for e in events)

    assert [e.action for e in audit.read(store, action="token.create")] == ["token.create"]
    assert len(audit.read(store, limit=1)) == 1
    future = datetime.now(UTC) + timedelta(hours=1)
    assert audit.read(store, since=future) == []
