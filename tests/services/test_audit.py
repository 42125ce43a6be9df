"""The audit trail: admin actions recorded with who, what and when, never a secret; on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from plinth.services import audit
from plinth.services.auth import Tokens
from plinth.services.privacy import forget
from plinth.services.registry.contracts import update_contract
from plinth.services.registry.versions import Registry
from plinth.services.rollout.deployments import Deployments
from plinth.store import Store
from tests.support import churn_model, churn_table


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


def _trail(store: Store) -> list[tuple[str, str, str]]:
    return [(e.action, e.target, e.who) for e in reversed(audit.read(store))]


def test_every_deployment_change_is_recorded(registry: Registry) -> None:
    train = churn_table()
    for _ in range(2):
        registry.register(churn_model(train), name="churn", train=train, target="churn")
    deployments = Deployments(registry.store)
    deployments.deploy("churn", 1, reason="pin", who="alice")
    deployments.deploy("churn", 2, canary=10, who="alice")
    deployments.end_canary("churn", reason="odd", evidence={}, who="console:bob",
                           action="stop-canary")  # fmt: skip
    deployments.deploy("churn", 2, canary=25, who="api:ops")
    deployments.promote("churn", who="carol")
    deployments.rollback("churn", who="carol")
    assert _trail(registry.store) == [
        ("deployment.deploy", "churn", "alice"),
        ("deployment.canary", "churn", "alice"),
        ("deployment.stop-canary", "churn", "console:bob"),
        ("deployment.canary", "churn", "api:ops"),
        ("deployment.promote", "churn", "carol"),
        ("deployment.rollback", "churn", "carol"),
    ]
    newest = audit.read(registry.store, limit=1)[0]
    assert newest.detail == {
        "revision": 6, "spec": "champion 1, canary 2 at 25%", "reason": "back to revision 4",
    }  # fmt: skip


def test_a_contract_edit_is_recorded(registry: Registry) -> None:
    train = churn_table()
    registry.register(churn_model(train), name="churn", train=train, target="churn")
    document = registry.store.get_version("churn", 1).metadata["contract"]
    update_contract(registry.store, "churn", 1, document, reason="same again", who="dana")
    [event] = audit.read(registry.store, action="contract.edit")
    assert (event.target, event.who) == ("churn:1", "dana")
    assert event.detail == {"contract_revision": 1, "reason": "same again"}
