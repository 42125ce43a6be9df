"""The shared daily budget: two ledgers on one store stand for two workers or replicas."""

from __future__ import annotations

import threading
from datetime import date

from plinth.services.spend import SharedLedger
from plinth.store import Store
from plinth.store.spend import SpendStore

DAY = date(2026, 12, 5)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def ledger(store: Store, clock: Clock) -> SharedLedger:
    made = SharedLedger(store, sync_s=1.0, near=0.9, clock=clock)
    made.today = lambda: DAY
    return made


def spend_until_refused(workers: list[SharedLedger], cost: float, budget: float) -> int:
    """Workers take turns calling while their check says the budget is not spent."""
    calls = 0
    for turn in range(100):
        worker = workers[turn % len(workers)]
        if worker.spent("llm", budget) >= budget:
            if all(w.spent("llm", budget) >= budget for w in workers):
                return calls
            continue
        worker.add("llm", cost, budget)
        calls += 1
    raise AssertionError("the budget never stopped the calls")


def test_two_workers_together_stop_at_the_budget(store: Store) -> None:
    clock = Clock()  # frozen: no worker ever re-reads because time passed
    a, b = ledger(store, clock), ledger(store, clock)
    calls = spend_until_refused([a, b], cost=0.004, budget=0.02)
    assert calls == 5  # 5 x 0.004 = the budget; per-process ledgers would allow 10
    assert abs(SpendStore(store).spent("llm", DAY) - 0.02) < 1e-12


def test_far_from_the_budget_a_check_reads_nothing_until_it_is_stale(store: Store) -> None:
    clock = Clock()
    a, b = ledger(store, clock), ledger(store, clock)
    a.spent("llm", 100.0)
    b.add("llm", 1.0, 100.0)  # written at once: a budgeted call is counted exactly
    assert SpendStore(store).spent("llm", DAY) == 1.0
    assert a.spent("llm", 100.0) == 0.0  # a read a moment ago: not asked again
    clock.now = 1.0
    assert a.spent("llm", 100.0) == 1.0


def test_without_a_budget_spend_is_written_every_sync_period(store: Store) -> None:
    clock = Clock()
    a = ledger(store, clock)
    a.spent("free")
    a.add("free", 0.5)
    a.add("free", 0.25)
    assert SpendStore(store).spent("free", DAY) == 0.0
    assert a.spent("free") == 0.75
    clock.now = 1.0
    a.add("free", 0.25)
    assert SpendStore(store).spent("free", DAY) == 1.0
    a.add("free", 0.5)
    a.flush()  # on shutdown: nothing spent is lost
    assert SpendStore(store).spent("free", DAY) == 1.5


def test_concurrent_additions_are_not_lost(store: Store) -> None:
    spend = SpendStore(store)

    def pay() -> None:
        for _ in range(25):
            spend.add("llm", DAY, 1.0)

    threads = [threading.Thread(target=pay) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert spend.spent("llm", DAY) == 100.0
    assert spend.spent("llm", date(2026, 12, 6)) == 0.0


def test_a_new_utc_day_starts_from_zero_and_keeps_yesterdays_total(store: Store) -> None:
    clock = Clock()
    a = ledger(store, clock)
    a.add("llm", 0.01, 0.01)
    assert a.spent("llm", 0.01) >= 0.01
    a.today = lambda: date(2026, 12, 6)
    assert a.spent("llm", 0.01) == 0.0
    assert SpendStore(store).spent("llm", DAY) == 0.01
