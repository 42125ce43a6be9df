"""The SQLite WAL under sustained log commits with a reader coming and going.

Commits ``--rows-per-batch`` rows at a time through ``LogWriter.write`` (as a serving
worker's scoring thread does), paced to ``--batches-per-s`` (0: back to back), while another
connection takes a snapshot for ``--reader-on-ms`` every ``--reader-on-ms + --reader-off-ms``
(the monitor, the console). Prints the commit latency (p50, p99, p99.9, max), the WAL file's
size every 2 s and at its peak, and its size after ``--idle-s`` seconds without commits.
For the A/B of a change, run it on both trees in turn (``PYTHONPATH=<other tree>``).

    .venv/bin/python bench/log_wal.py --seconds 20 --batches-per-s 50
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from plinth.core.ids import new_ids
from plinth.services.serving.logwriter import LogWriter
from plinth.store import PredictionRecord, Store


def _rows(count: int, row_bytes: int) -> list[PredictionRecord]:
    ts = datetime.now(UTC)
    given = {"x": "y" * row_bytes}
    return [
        PredictionRecord(id=i, ts=ts, model="m", version=1, sha256="a" * 64, route="champion",
                         input=given, features=given, output={"prediction": 1}, confidence=0.9,
                         latency_ms=1.0, warnings=[], request_id=i, key=None)
        for i in new_ids(count)
    ]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--rows-per-batch", type=int, default=64)
    p.add_argument("--row-bytes", type=int, default=1500, help="size of each row's input")
    p.add_argument("--batches-per-s", type=float, default=50.0, help="0: back to back")
    p.add_argument("--reader-on-ms", type=float, default=5.0, help="0: no reader")
    p.add_argument("--reader-off-ms", type=float, default=95.0)
    p.add_argument("--idle-s", type=float, default=3.0)
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="plinth-log-wal-"))
    path = folder / "plinth.db"
    wal = Path(f"{path}-wal")
    store = Store(f"sqlite:///{path}")
    writer = LogWriter(store)
    writer.start()
    stop = threading.Event()

    def reader() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            while not stop.is_set():
                conn.execute("BEGIN")
                conn.execute("SELECT max(id) FROM predictions").fetchone()
                time.sleep(args.reader_on_ms / 1000)
                conn.execute("COMMIT")
                time.sleep(args.reader_off_ms / 1000)
        finally:
            conn.close()

    reading = threading.Thread(target=reader, daemon=True)
    if args.reader_on_ms > 0:
        reading.start()
    n, peak, sampled_at = 0, 0, time.monotonic()
    samples: list[int] = []
    latencies: list[float] = []
    began = time.monotonic()
    try:
        while (now := time.monotonic()) - began < args.seconds:
            rows = _rows(args.rows_per_batch, args.row_bytes)
            t = time.perf_counter()
            writer.write(rows)
            latencies.append(time.perf_counter() - t)
            n += 1
            peak = max(peak, wal.stat().st_size)
            if now - sampled_at >= 2:
                samples.append(round(wal.stat().st_size / 2**20))
                sampled_at = now
            if args.batches_per_s:
                time.sleep(max(0.0, began + n / args.batches_per_s - time.monotonic()))
        elapsed = time.monotonic() - began
        load = os.getloadavg()[0]
        stop.set()
        q = statistics.quantiles(latencies, n=1000)
        print(
            f"rows/s {n * args.rows_per_batch / elapsed:,.0f}; commit ms p50 {q[499] * 1e3:.2f} "
            f"p99 {q[989] * 1e3:.2f} p99.9 {q[998] * 1e3:.2f} max {max(latencies) * 1e3:.1f}; "
            f"WAL MiB peak {peak / 2**20:.0f}, every 2 s {samples}; load {load:.1f}"
        )
        time.sleep(args.idle_s)
        print(f"WAL after {args.idle_s:g} s idle: {wal.stat().st_size / 2**20:.1f} MiB")
    finally:
        stop.set()
        writer.close()
        store.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
