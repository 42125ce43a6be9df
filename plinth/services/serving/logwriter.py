"""The prediction log writer: group commit, never a reply before its rows are committed.

Two ways in. The serving batcher calls ``write`` on its scoring thread right after the
model call: the batch already is the group, and committing it there costs no hand-off.
Handing rows to a writer thread instead cost a third of logging's CPU at 64 clients
(queue, wake-ups, futures and a loop callback per batch; docs/architecture.md), and it let
the next batch start before this one's callers were answered. Everything else (batch
scoring, fallback answers) calls ``submit`` and gets a future: one background thread
commits whatever arrived while its previous commit ran in one transaction.

On SQLite that thread also checkpoints the WAL for every log commit (at most every
``CHECKPOINT_EVERY_S``), so a checkpoint never stalls a model call, and keeps the WAL file
bounded: started over once it passes ``SQLITE_WAL_LIMIT_BYTES`` however busy the readers
are, emptied once the log has been idle for an interval (``PredictionAppender.checkpoint``).

When a commit fails because the store is unavailable (down, locked, disk full) the writer
remembers it, and the request path asks ``refuse`` first: predictions are answered at once
with 503 ``store.unavailable`` instead of each scoring and then failing (or waiting out a
lock), while one request per ``probe_s`` goes through to try again, and ``/readyz`` probes
with a real write (``probe``). The first commit that succeeds ends it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future

from plinth.errors import PlinthError, StoreUnavailableError, StoreWriteError
from plinth.services import telemetry
from plinth.store import PredictionRecord, Store
from plinth.store.prediction_log import PredictionAppender

_STOP = object()
CHECKPOINT_EVERY_S = 1.0


class LogWriter:
    """Commits prediction rows in groups; ``submit`` returns a future per call."""

    def __init__(self, store: Store, *, max_rows: int = 5000, probe_s: float = 1.0) -> None:
        self.store = store
        self.max_rows = max_rows
        self.probe_s = probe_s
        self._failure: StoreUnavailableError | None = None  # the last commit's, until one works
        self._probed_at = 0.0
        self._probe_lock = threading.Lock()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="plinth-log-writer", daemon=True)
        self._started = False
        # ``write``'s connection: scoring threads take turns on it (SQLite has one writer
        # anyway), so a worker holds two log connections however many versions it serves.
        self._direct: PredictionAppender | None = None
        self._direct_lock = threading.Lock()
        self._unchecked = False  # log commits since the last checkpoint

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def submit(self, rows: Sequence[PredictionRecord]) -> Future[None]:
        """Queue ``rows``; the future resolves once they are committed (or fails)."""
        done: Future[None] = Future()
        if not rows:
            done.set_result(None)
            return done
        telemetry.LOG_PENDING_ROWS.inc(len(rows))
        self._queue.put((list(rows), done))
        return done

    def write(self, rows: Sequence[PredictionRecord]) -> None:
        """Commit ``rows`` now, on the calling thread; raises ``StoreError`` if they were not."""
        if not rows:
            return
        with self._direct_lock:
            if self._direct is None:
                self._direct = self.store.prediction_appender(checkpoints=False)
            error = self._append(self._direct, rows)
            self._unchecked = True
        if error is not None:
            raise error

    @property
    def failure(self) -> StoreUnavailableError | None:
        """Why the log cannot commit now (None: the last commit worked)."""
        return self._failure

    def refuse(self) -> StoreUnavailableError | None:
        """The error to answer a prediction with at once while the log cannot commit; None
        lets it through (all is well, or it is this ``probe_s``'s one try)."""
        failure = self._failure
        if failure is None:
            return None
        with self._probe_lock:
            now = time.monotonic()
            if now - self._probed_at >= self.probe_s:
                self._probed_at = now
                return None
        return StoreUnavailableError(
            f"Predictions are refused while the prediction log cannot commit: {failure.message}",
            hint=failure.hint,
        )

    def probe(self) -> StoreUnavailableError | None:
        """After a failed commit, try a real write now; None once the store takes writes."""
        if self._failure is None:
            return None
        try:
            self.store.ping(write=True)
        except StoreUnavailableError as exc:
            self._failure = exc
            return exc
        self._failure = None
        telemetry.STORE_UP.set(1)
        return None

    def close(self, timeout: float = 30.0) -> None:
        """Commit everything already submitted, then stop the thread."""
        if self._started:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._started = False
        with self._direct_lock:
            if self._direct is not None:
                self._direct.close()
                self._direct = None

    def _run(self) -> None:
        # The log's own connection lives and dies on this thread.
        appender = self.store.prediction_appender()
        try:
            self._loop(appender)
        finally:
            appender.close()

    def _loop(self, appender: PredictionAppender) -> None:
        stopping = False
        checked = time.monotonic()
        untidy = False  # commits since the WAL was last emptied
        while not stopping:
            if time.monotonic() - checked >= CHECKPOINT_EVERY_S:
                if self._unchecked:
                    self._unchecked = False
                    appender.checkpoint()
                    untidy = True
                elif untidy:  # no commit for a whole interval: empty the WAL
                    untidy = not appender.checkpoint(idle=True)
                checked = time.monotonic()
            try:
                item = self._queue.get(timeout=CHECKPOINT_EVERY_S)
            except queue.Empty:
                continue
            if item is _STOP:
                break
            group = [item]
            count = len(item[0])  # type: ignore[index]
            while count < self.max_rows:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                group.append(nxt)
                count += len(nxt[0])  # type: ignore[index]
            self._commit(group, appender)  # type: ignore[arg-type]

    def _commit(
        self,
        group: list[tuple[list[PredictionRecord], Future[None]]],
        appender: PredictionAppender,
    ) -> None:
        rows = [row for batch, _ in group for row in batch]
        error = self._append(appender, rows)
        self._unchecked = True
        telemetry.LOG_PENDING_ROWS.dec(len(rows))
        for _, done in group:
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

    def _append(
        self, appender: PredictionAppender, rows: Sequence[PredictionRecord]
    ) -> PlinthError | None:
        """One transaction; the error instead of raising (a writer must never die)."""
        started = time.perf_counter()
        error: PlinthError | None = None
        try:
            appender.append(rows)
        except PlinthError as exc:
            error = exc
        except Exception as exc:
            error = StoreWriteError(
                f"Could not write the prediction log: {type(exc).__name__}: {exc}"
            )
        telemetry.LOG_COMMIT_SECONDS.observe(time.perf_counter() - started)
        telemetry.LOG_COMMIT_ROWS.observe(len(rows))
        if isinstance(error, StoreUnavailableError):
            with self._probe_lock:
                self._failure, self._probed_at = error, time.monotonic()
        elif error is None and self._failure is not None:
            self._failure = None
        telemetry.STORE_UP.set(0 if self._failure is not None else 1)
        return error
