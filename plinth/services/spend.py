"""A remote model's daily budget as one total for every worker and replica.

The in-process ``plinth.flavors.remote.Ledger`` counts what one process spent; with two
workers or two replicas each would spend the whole budget. ``SharedLedger`` keeps the day's
total in the store (``remote_spend``: one row per model per UTC day, added to atomically).

For a model with a budget every paid call is added at once (one upsert, which also returns
the new total), so the total is exact. The check before a call reads the total again only
when what this process knows is older than ``sync_s`` or close enough to the budget that
the other processes' calls since could cross it (within ``1 - near`` of the budget or two
of the largest calls seen); otherwise it costs nothing. So the workers together stop at the
budget, give or take the calls already in flight, not at a multiple of it. A model without
a budget only writes its spend every ``sync_s`` (for the report and the gauges).

If the store cannot be reached the ledger keeps counting locally and tries again at the
next call: a budget check never fails a prediction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from plinth.errors import PlinthError
from plinth.store import Store
from plinth.store.spend import SpendStore

log = logging.getLogger("plinth.remote")


@dataclass
class _Day:
    day: date
    shared: float = 0.0  # the store's total when last read (this process's part included)
    pending: float = 0.0  # spent here since, not yet written
    largest: float = 0.0  # the dearest call seen today, for the margin near the budget
    read_at: float = -1e18  # monotonic time of that read
    alerted: bool = False

    @property
    def total(self) -> float:
        return self.shared + self.pending


class SharedLedger:
    """Money spent per model name per UTC day, summed across processes in the store."""

    def __init__(
        self,
        store: Store,
        *,
        sync_s: float = 1.0,
        near: float = 0.9,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spend = SpendStore(store)
        self.sync_s = sync_s
        self.near = near
        self.clock = clock
        self.today: Callable[[], date] = _utc_today
        self._days: dict[str, _Day] = {}
        self._lock = threading.Lock()

    def spent(self, model: str, budget: float | None = None) -> float:
        """Today's total for ``model`` across every process, as fresh as the budget needs."""
        with self._lock:
            entry = self._entry(model)
            if self._stale(entry) or (budget is not None and self._close(entry, budget)):
                self._sync(model, entry)
            return entry.total

    def add(self, model: str, amount: float, budget: float | None = None) -> float:
        """Count ``amount`` spent now; returns today's total as this process knows it."""
        with self._lock:
            entry = self._entry(model)
            entry.pending += amount
            entry.largest = max(entry.largest, amount)
            if (budget is not None and amount > 0) or self._stale(entry):
                self._sync(model, entry)
            return entry.total

    def first_alert_today(self, model: str) -> bool:
        with self._lock:
            entry = self._entry(model)
            if entry.alerted:
                return False
            entry.alerted = True
            return True

    def flush(self) -> None:
        """Write what this process spent and has not written yet (on shutdown)."""
        with self._lock:
            for model, entry in self._days.items():
                if entry.pending:
                    self._sync(model, entry)

    # -- inside the lock ----------------------------------------------------------------------

    def _entry(self, model: str) -> _Day:
        today = self.today()
        entry = self._days.get(model)
        if entry is None or entry.day != today:
            if entry is not None and entry.pending:
                self._sync(model, entry)  # yesterday's last calls still count for yesterday
            entry = self._days[model] = _Day(today)
        return entry

    def _stale(self, entry: _Day) -> bool:
        return self.clock() - entry.read_at >= self.sync_s

    def _close(self, entry: _Day, budget: float) -> bool:
        margin = max((1.0 - self.near) * budget, 2.0 * entry.largest)
        return entry.total + margin >= budget

    def _sync(self, model: str, entry: _Day) -> None:
        try:
            if entry.pending:
                entry.shared = self.spend.add(model, entry.day, entry.pending)
                entry.pending = 0.0
            else:
                entry.shared = self.spend.spent(model, entry.day)
        except PlinthError as exc:
            log.warning(
                "could not sync %s's spend with the store (%s); counting locally", model, exc
            )
        entry.read_at = self.clock()


def _utc_today() -> date:
    return datetime.now(UTC).date()
