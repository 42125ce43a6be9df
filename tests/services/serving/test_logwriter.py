"""The log writer: on SQLite its thread checkpoints the WAL for the scoring threads' commits
and keeps the WAL file bounded."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from plinth.services.serving.logwriter import CHECKPOINT_EVERY_S, LogWriter
from plinth.store import Store
from plinth.store.prediction_log import SQLITE_WAL_LIMIT_BYTES
from tests.store.test_store import prediction


def test_direct_writes_are_checkpointed_by_the_writer_thread(
    store: Store, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("WAL checkpoints are SQLite's")
    wal = Path(store._engine.url.database + "-wal")
    writer = LogWriter(store)
    writer.start()
    sizes = []
    try:
        for round_ in range(4):
            for batch in range(10):
                first = (round_ * 10 + batch) * 100
                rows = [prediction(first + j, input={"x": "y" * 2000}) for j in range(100)]
                writer.write(rows)  # as the scoring thread does: commit on this thread
            sizes.append(wal.stat().st_size)
            time.sleep(CHECKPOINT_EVERY_S * 1.5)  # the writer thread checkpoints meanwhile
    finally:
        writer.close()
    assert store.count_predictions() == 4000
    # Without the writer's checkpoints the WAL would hold all four rounds (its commits
    # never checkpoint); with them each round starts the WAL over.
    assert sizes[-1] < 2 * sizes[0], sizes


def test_the_wal_is_emptied_once_the_log_goes_idle_despite_readers(
    store: Store, database_url: str
) -> None:
    # Sustained writes with a reader taking snapshots on and off (as the monitor and the
    # console do): a passive checkpoint never catches up, so the WAL passes its limit; once
    # the log is idle the writer thread empties it.
    if not database_url.startswith("sqlite"):
        pytest.skip("WAL checkpoints are SQLite's")
    path = str(store._engine.url.database)
    wal = Path(path + "-wal")
    writer = LogWriter(store)
    progress = threading.Condition()
    written = 0  # batches committed so far
    stop = False

    def wait_for_batch(number: int) -> bool:
        """Whether to go on, once ``number`` batches are written (or the writing stopped)."""
        with progress:
            progress.wait_for(lambda: stop or written >= number)
            return not stop

    def reader() -> None:
        # Holds a snapshot for 5 batches, then none for 5: paced by writes, not by time.
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            going = True
            while going:
                conn.execute("BEGIN")
                conn.execute("SELECT count(*) FROM predictions").fetchone()
                mark = written
                wait_for_batch(mark + 5)
                conn.execute("COMMIT")
                going = wait_for_batch(mark + 10)
        finally:
            conn.close()

    reading = threading.Thread(target=reader)
    writer.start()
    reading.start()
    peak = 0
    try:
        while written * 2_000_000 < 2 * SQLITE_WAL_LIMIT_BYTES:  # about twice the limit
            rows = [prediction(written * 100 + j, input={"x": "y" * 20_000}) for j in range(100)]
            writer.write(rows)  # as the scoring thread does: commit on this thread
            peak = max(peak, wal.stat().st_size)
            with progress:
                written += 1
                progress.notify_all()
    finally:
        with progress:
            stop = True
            progress.notify_all()
        reading.join()
    try:
        # Idle now: within a few checkpoint intervals the writer thread empties the WAL.
        deadline = time.monotonic() + 60 * CHECKPOINT_EVERY_S
        while wal.stat().st_size >= 2**20 and time.monotonic() < deadline:
            time.sleep(CHECKPOINT_EVERY_S / 4)
        assert store.count_predictions() == 100 * written
        assert peak > 16 * 2**20  # it did grow
        assert wal.stat().st_size < 2**20, (peak, wal.stat().st_size)  # 1 MiB
    finally:
        writer.close()
