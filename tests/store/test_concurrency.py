"""Several processes and threads on one database: numbering, migrations and the log stay right.

Processes are started with ``spawn`` so each child opens its own Store from scratch, as
separate uvicorn workers or CLI invocations do.
"""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from plinth.store import PredictionRecord, Store, VersionRecord

T0 = datetime(2025, 3, 1, tzinfo=UTC)
SPAWN = multiprocessing.get_context("spawn")
TIMEOUT_S = 120


def _record(sha: str) -> VersionRecord:
    return VersionRecord(
        name="iris", version=0, sha256=sha, flavor="sklearn", task="classification", created_at=T0
    )


def _register_many(url: str, worker: int, count: int, barrier: Any, results: Any) -> None:
    try:
        with Store(url) as store:
            barrier.wait(TIMEOUT_S)
            numbers = [store.add_version(_record(f"{worker}-{i}")).version for i in range(count)]
            shared = store.add_version(_record("shared")).version
        results.put(("ok", worker, numbers, shared))
    except Exception as error:  # reported to the parent, which fails the test with it
        results.put(("error", worker, repr(error), None))


def _open_fresh(url: str, worker: int, barrier: Any, results: Any) -> None:
    try:
        barrier.wait(TIMEOUT_S)
        with Store(url) as store:
            store.ping()
            version = store.add_version(_record(f"worker-{worker}")).version
        results.put(("ok", worker, version, None))
    except Exception as error:  # reported to the parent, which fails the test with it
        results.put(("error", worker, repr(error), None))


def _run(target: Any, args_per_worker: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Start one process per argument tuple, release them together, collect their results."""
    barrier = SPAWN.Barrier(len(args_per_worker))
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(target=target, args=(*args, barrier, results)) for args in args_per_worker
    ]
    for process in processes:
        process.start()
    try:
        collected = [results.get(timeout=TIMEOUT_S) for _ in processes]
    finally:
        for process in processes:
            process.join(TIMEOUT_S)
    assert [p.exitcode for p in processes] == [0] * len(processes)
    errors = [r for r in collected if r[0] == "error"]
    assert errors == []
    return sorted(collected, key=lambda r: r[1])


def test_concurrent_registrations_get_distinct_numbers(database_url: str) -> None:
    with Store(database_url) as store:
        store.ping()  # migrate once up front; the race under test is numbering
    per_worker = 15

    results = _run(_register_many, [(database_url, w, per_worker) for w in range(2)])

    numbers = [n for _, _, got, _ in results for n in got]
    # Both registered the same artifact: one version, seen by both.
    shared = {r[3] for r in results}
    assert len(shared) == 1
    assert sorted([*numbers, *shared]) == list(range(1, 2 * per_worker + 2))
    # Each worker's own registrations come back in increasing order.
    assert all(got == sorted(got) for _, _, got, _ in results)
    with Store(database_url) as store:
        assert len(store.list_versions("iris")) == 2 * per_worker + 1


def test_processes_migrating_a_fresh_database_at_once(database_url: str) -> None:
    workers = 3

    results = _run(_open_fresh, [(database_url, w) for w in range(workers)])

    assert sorted(r[2] for r in results) == list(range(1, workers + 1))


def test_threads_share_one_store(store: Store) -> None:
    threads, batches, batch_rows = 6, 10, 16
    failures: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for batch in range(batches):
                store.insert_predictions(
                    [_prediction(f"{worker:02d}{batch:03d}{row:03d}") for row in range(batch_rows)]
                )
                store.add_version(_record(f"t{worker}-{batch}"))
                store.list_predictions(limit=5)
        except BaseException as error:  # surfaced below; a thread cannot fail the test itself
            failures.append(error)

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(TIMEOUT_S)

    assert failures == []
    assert store.count_predictions() == threads * batches * batch_rows
    versions = [v.version for v in store.list_versions("iris")]
    assert versions == list(range(1, threads * batches + 1))


def _prediction(suffix: str) -> PredictionRecord:
    return PredictionRecord(
        id=f"01J{suffix:0>23}",
        ts=T0 + timedelta(microseconds=int(suffix)),
        model="iris",
        version=1,
        sha256="a" * 64,
        route="champion",
        input={"x": 1.0},
        features={"x": 1.0},
        output={"prediction": 0},
        confidence=None,
        latency_ms=0.5,
        warnings=[],
        request_id=suffix,
    )
