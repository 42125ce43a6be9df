"""The log's privacy duties beside serving: retention per model, and forgetting a subject.

Retention is the server's own job, not only ``plinth prune``'s: in ``plinth serve`` one
process across all workers and replicas (whoever holds the ``log.retention`` lease in the
store, the same lease every background job uses) deletes each model's rows older than its
``[models.NAME.log] retention`` every ``PLINTH_RETENTION_INTERVAL_S``. Models without a
retention keep their rows until ``plinth prune``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from plinth.config.policies import Policies
from plinth.errors import PlinthError
from plinth.services import audit
from plinth.services.process import worker_id
from plinth.store import Store
from plinth.store.monitoring import MonitoringStore
from plinth.store.privacy import Forgotten, PrivacyStore

log = logging.getLogger("plinth.privacy")

LEASE = "log.retention"


def _now() -> datetime:
    return datetime.now(UTC)


class LogRetention:
    """Deletes each model's log rows past its retention, under a store lease."""

    def __init__(
        self,
        store: Store,
        policies: Policies,
        *,
        holder: str | None = None,
        lease_s: float = 60.0,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.policies = policies
        self.rows = PrivacyStore(store)
        self.leases = MonitoringStore(store)
        self.holder = holder or worker_id()
        self.lease_s = lease_s
        self.clock = clock

    def run_once(self) -> dict[str, int]:
        """Prune every model with a retention now; rows deleted per model."""
        now = self.clock()
        deleted: dict[str, int] = {}
        names = {m.name for m in self.store.list_models()} | set(self.policies.log_models)
        for name in sorted(names):
            retention = self.policies.log(name).retention
            if retention is None:
                continue
            try:
                deleted[name] = self.rows.prune_model(name, now - retention)
            except PlinthError as exc:  # one model's trouble must not stop the others
                log.error("log retention for %s failed: %s", name, exc)
                continue
            if deleted[name]:
                log.info(
                    "log retention: deleted %d rows of %s older than %s",
                    deleted[name],
                    name,
                    now - retention,
                )
        return deleted

    def try_run(self) -> dict[str, int] | None:
        """Run if this process holds (or can take) the lease; None if another one does."""
        now = self.clock()
        if not self.leases.acquire_lease(
            LEASE, self.holder, now, now + timedelta(seconds=self.lease_s)
        ):
            return None
        return self.run_once()

    def release(self) -> None:
        with contextlib.suppress(PlinthError):
            self.leases.release_lease(LEASE, self.holder)

    @property
    def active(self) -> bool:
        """Whether any model has a retention (else there is nothing to run)."""
        return self.policies.log_default.retention is not None or any(
            p.retention is not None for p in self.policies.log_models.values()
        )


def forget(
    store: Store,
    key: str,
    *,
    model: str | None = None,
    who: str = "unknown",
    policies: Policies | None = None,
) -> Forgotten:
    """Delete every logged prediction, label and review item for request key ``key``, and
    record the action (counts only, never the key) in the audit trail. With ``policies``,
    a model whose log hashes request keys (``hash_request_key``) is searched for the keyed
    hash of ``key`` too: forgetting takes the raw value a person knows."""
    stored_as = None if policies is None else (lambda name: policies.stored_key(name, key))
    forgotten = PrivacyStore(store).forget(key, model=model, stored_as=stored_as)
    audit.record(
        store,
        "subject.forget",
        model or "*",
        who,
        predictions=forgotten.predictions,
        labels=forgotten.labels,
        label_history=forgotten.label_history,
        review_items=forgotten.review_items,
    )
    # Counts only: the key is the subject's identifier and stays out of the server log.
    log.warning(
        "forgot a subject: %d predictions, %d labels, %d review items",
        forgotten.predictions,
        forgotten.labels,
        forgotten.review_items,
    )
    return forgotten
