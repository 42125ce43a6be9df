"""Appending to the prediction log: one INSERT statement, rows as plain tuples.

Every answered record becomes a row, so this is the one write on the request path. Going
through SQLAlchemy's ``Connection.execute`` costs about five times what SQLite spends on the
insert itself for a one-row group (pool checkout, events, per-row parameter processing;
measured 430 µs against 80 µs), so the log writer keeps one DBAPI connection of its own and
hands the driver pre-built tuples. ``Store.insert_predictions`` builds rows the same way, so
the two paths cannot drift apart.

Two things keep rows small, which is most of the insert's cost:

- A record whose keys are exactly its version's contract fields (nearly every record) is
  stored as a JSON array of its values in contract order, not as an object: the keys are in
  the contract already, and key order is not part of a record's meaning. A record with any
  other keys (extra, missing) is kept as sent. ``Layouts`` rebuilds the object on read;
  a contract never changes its fields, so the order is fixed for the version's lifetime.
- Most records reach the model unrepaired, so their ``features`` are the input byte for
  byte. Such a row stores JSON ``null`` as its features ("the input, as is") and readers
  put the input back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Dialect, Engine

from plinth.errors import PlinthError, StoreUnavailableError
from plinth.store.records import TRACE_KEY, PredictionRecord
from plinth.store.schema import predictions

COLUMNS = [c.name for c in predictions.columns]
SQLITE_AUTOCHECKPOINT = 1000  # SQLite's default, in WAL pages
# The WAL's size bound: every connection's journal_size_limit (a WAL that starts over is cut
# back to it), and the size past which the log writer makes it start over (``checkpoint``).
SQLITE_WAL_LIMIT_BYTES = 64 * 2**20
# How long that restarting checkpoint waits for the write lock and for readers: meanwhile
# the scoring threads' commits wait behind it, so it gives up early and tries again later.
SQLITE_RESTART_WAIT_MS = 25
_CATCH_UP_PASSES = 3
_WAL_FRAME_HEADER = 24  # bytes before each page in the WAL file
SAME_AS_INPUT = "null"  # the stored features of a record the model saw exactly as sent


class Layouts:
    """Field order per model version, read once from the version's contract, so a
    positional row can be turned back into the record it stands for."""

    def __init__(self, fields_of: Callable[[str, int], Sequence[str]]) -> None:
        self._fields_of = fields_of
        self._known: dict[tuple[str, int], tuple[str, ...]] = {}

    def fields(self, model: str, version: int) -> tuple[str, ...]:
        key = (model, version)
        found = self._known.get(key)
        if found is None:
            found = self._known[key] = tuple(self._fields_of(model, version))
        return found

    def record(self, model: str, version: int, stored: Any) -> Any:
        """A stored ``input`` (or ``features``) document as the object it stands for."""
        if isinstance(stored, list):
            return dict(zip(self.fields(model, version), stored, strict=True))
        return stored

    def input_and_features(
        self, model: str, version: int, stored_input: Any, stored_features: Any
    ) -> tuple[Any, Any]:
        """(input, features) of a stored row, features ``null`` meaning "the input"."""
        given = self.record(model, version, stored_input)
        seen = given if stored_features is None else self.record(model, version, stored_features)
        return given, seen


class RowBuilder:
    """``PredictionRecord`` -> the tuple of bound values, as SQLAlchemy would bind them."""

    def __init__(
        self,
        dialect: Dialect,
        dumps: Callable[[Any], str],
        invalid: Callable[[str], PlinthError],
    ) -> None:
        self._invalid = invalid  # the store's error for a value it cannot hold
        ts_type = predictions.c.ts.type
        ts_bind = ts_type._cached_bind_processor(dialect)  # UTC check, then the dialect's form
        self._ts: Callable[[Any], Any] = ts_bind if ts_bind is not None else (lambda v: v)
        self._dumps = dumps
        marker = "?" if dialect.paramstyle == "qmark" else "%s"
        quoted = ", ".join(dialect.identifier_preparer.quote(c) for c in COLUMNS)
        self.sql = (
            f"INSERT INTO {predictions.name} ({quoted}) "
            f"VALUES ({', '.join(marker for _ in COLUMNS)})"
        )
        self.copy_sql = f"COPY {predictions.name} ({quoted}) FROM STDIN"

    def rows(self, records: Sequence[PredictionRecord]) -> list[tuple[Any, ...]]:
        try:
            return self._rows(records)
        except (ValueError, TypeError) as error:  # a naive datetime, a value JSON cannot hold
            raise self._invalid(str(error)) from error

    def _rows(self, records: Sequence[PredictionRecord]) -> list[tuple[Any, ...]]:
        dumps = self._dumps
        # A batch's rows share one timestamp and one contract: bind and look up each once.
        stamps = {id(r.ts): r.ts for r in records}
        bound = {key: self._ts(value) for key, value in stamps.items()}
        layouts = {id(r.fields): r.fields for r in records if r.fields is not None}
        key_sets = {key: frozenset(fields) for key, fields in layouts.items()}
        rows = []
        for r in records:
            fields = r.fields
            if fields is not None and r.input.keys() == key_sets[id(fields)]:
                given = dumps([r.input[f] for f in fields])
                features = r.features
                seen = dumps([features[f] for f in fields] if len(features) == len(fields)
                             and features.keys() == key_sets[id(fields)] else features)  # fmt: skip
            else:
                given = dumps(r.input)
                seen = dumps(r.features)
            rows.append(
                (
                    r.id,
                    bound[id(r.ts)],
                    r.model,
                    r.version,
                    r.sha256,
                    r.route,
                    r.request_id,
                    r.key,
                    given,
                    SAME_AS_INPUT if seen == given else seen,
                    dumps(r.output if r.trace_id is None else {**r.output, TRACE_KEY: r.trace_id}),
                    r.confidence,
                    r.latency_ms,
                    dumps(r.warnings),
                )
            )
        return rows


class PredictionAppender:
    """A log connection. Use from one thread at a time (``LogWriter`` serialises it).

    The connection is opened on first use and dropped after any failure; a kept connection
    the database dropped is replaced within the same ``append`` (see there).
    """

    def __init__(
        self,
        engine: Engine,
        builder: RowBuilder,
        errors: Callable[[str, exc.DBAPIError], PlinthError],
        *,
        checkpoints: bool = True,
    ) -> None:
        self._engine = engine
        self._builder = builder
        self._errors = errors
        self._sqlite = engine.dialect.name == "sqlite"
        # SQLite checkpoints the WAL on the commit that crosses 1,000 pages, on whichever
        # thread commits. The scoring thread's appender opts out (its commits are on the
        # request path); the log writer's thread checkpoints for it (``checkpoint``).
        self._manual_checkpoints = self._sqlite and not checkpoints
        self._dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._conn: Any = None
        self._frame_size: int | None = None  # bytes per WAL frame (page and header)

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Commit ``records`` in one transaction; raises ``StoreError`` if they were not.

        A kept connection the database dropped (a restart, a failover, an idle timeout) is
        replaced and the group written again at once, so the first request after the store
        comes back is answered instead of refused. A retry cannot duplicate rows: their ids
        are primary keys, so a commit that did land makes the retry a conflict, not a copy.
        """
        if not records:
            return
        params = self._builder.rows(records)
        while True:
            reused = self._conn is not None
            try:
                self._write(params)
                return
            except self._dbapi_error as error:
                self._discard()
                wrapped = exc.DBAPIError.instance(self._builder.sql, None, error, self._dbapi_error)
                assert isinstance(wrapped, exc.DBAPIError)  # given a driver error, it is one
                failure = self._errors("write the prediction log", wrapped)
                if reused and isinstance(failure, StoreUnavailableError):
                    continue  # the kept connection was dead: reconnect and write once more
                raise failure from error
            except exc.SQLAlchemyError as error:  # e.g. the pool could not connect
                self._discard()
                if isinstance(error, exc.DBAPIError):
                    raise self._errors("write the prediction log", error) from error
                raise

    def _write(self, params: Sequence[Any]) -> None:
        conn = self._connection()
        cursor = conn.cursor()
        try:
            if self._sqlite:
                # The sqlite3 module's own transaction handling is off (see the engine's
                # connect hook): take the write lock up front, as every Plinth writer does.
                cursor.execute("BEGIN IMMEDIATE")
                cursor.executemany(self._builder.sql, params)
                cursor.execute("COMMIT")
            else:  # COPY: 2x faster per row than a pipelined INSERT from 16 rows up
                with cursor.copy(self._builder.copy_sql) as copy:
                    for row in params:
                        copy.write_row(row)
                conn.commit()
        finally:
            cursor.close()

    def checkpoint(self, *, idle: bool = False) -> bool:
        """Copy committed WAL pages into the SQLite database; True if the WAL started over
        or was empty (always True elsewhere). Best effort: a failure leaves it for next time.

        A passive checkpoint never waits, so it cannot finish while readers hold older
        snapshots, and the WAL starts over from its beginning only after one finished with
        no reader left in it: under steady load with readers (monitor, console) that moment
        never comes and the file grows without bound. So when the WAL holds more than
        ``SQLITE_WAL_LIMIT_BYTES``, or the log is ``idle``, a second checkpoint takes the
        write lock, waits at most ``SQLITE_RESTART_WAIT_MS`` for readers to leave and starts
        the WAL over (RESTART; TRUNCATE when idle, which empties the file). If a reader
        stays, it gives up and the next call tries again.
        """
        if not self._sqlite:
            return True
        try:
            cursor = self._connection().cursor()
            try:
                passive = "PRAGMA wal_checkpoint(PASSIVE)"
                _, frames, copied = cursor.execute(passive).fetchone()
                if not idle and frames * self._frame_bytes(cursor) <= SQLITE_WAL_LIMIT_BYTES:
                    return bool(frames == 0)
                # Commits went on while it copied: copy those too, still without the lock,
                # until what is left for the restart (which holds it) is no more than an
                # automatic checkpoint would copy on a commit.
                for _ in range(_CATCH_UP_PASSES):
                    _, frames, done = cursor.execute(passive).fetchone()
                    if done - copied <= SQLITE_AUTOCHECKPOINT:
                        break
                    copied = done
                else:
                    return False  # the log writes faster than it copies: not now
                (waits_ms,) = cursor.execute("PRAGMA busy_timeout").fetchone()
                cursor.execute(f"PRAGMA busy_timeout={SQLITE_RESTART_WAIT_MS}")
                try:
                    mode = "TRUNCATE" if idle else "RESTART"
                    busy, _, _ = cursor.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
                finally:
                    cursor.execute(f"PRAGMA busy_timeout={int(waits_ms)}")
                return not busy
            finally:
                cursor.close()
        except (self._dbapi_error, exc.SQLAlchemyError):
            self._discard()
            return False

    def _frame_bytes(self, cursor: Any) -> int:
        if self._frame_size is None:
            (page,) = cursor.execute("PRAGMA page_size").fetchone()
            self._frame_size = int(page) + _WAL_FRAME_HEADER
        return self._frame_size

    def close(self) -> None:
        """Give the connection back to the pool (call before ``Store.close``)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                if self._manual_checkpoints:  # pooled: the next user checkpoints as usual
                    conn.cursor().execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT}")
                conn.close()
            except self._dbapi_error:  # pragma: no cover - a dead socket closes anyway
                conn.invalidate()

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._engine.raw_connection()
            if self._manual_checkpoints:
                self._conn.cursor().execute("PRAGMA wal_autocheckpoint=0")
        return self._conn

    def _discard(self) -> None:
        # Roll back what may be half done and never reuse a connection that failed.
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):  # invalidating closes what it can
                conn.invalidate()
