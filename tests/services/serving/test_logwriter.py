"""The log writer: on SQLite its thread checkpoints the WAL for the scoring threads' commits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from plinth.services.serving.logwriter import CHECKPOINT_EVERY_S, LogWriter
from plinth.store import Store
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
