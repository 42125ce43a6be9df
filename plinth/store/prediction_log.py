"""Appending to the prediction log: one INSERT statement, rows as plain tuples.

Every answered record becomes a row, so this is the one write on the request path. Going
through SQLAlchemy's ``Connection.execute`` costs about five times what SQLite spends on the
insert itself for a one-row group (pool checkout, events, per-row parameter processing;
measured 430 µs against 80 µs), so the log writer keeps one DBAPI connection of its own and
hands the driver pre-built tuples. ``Store.insert_predictions`` builds rows the same way, so
the two paths cannot drift apart.

Most records reach the model unrepaired, so their ``features`` document is the ``input``
document byte for byte. Such a row stores JSON ``null`` as its features ("the input, as
is") and readers put the input back (``logged_features``): the row is about a third
smaller, which is a quarter of the insert's cost.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Dialect, Engine

from plinth.errors import PlinthError
from plinth.store.records import PredictionRecord
from plinth.store.schema import predictions

COLUMNS = [c.name for c in predictions.columns]
SAME_AS_INPUT = "null"  # the stored features of a record the model saw exactly as sent


def logged_features(features: Any, input_: Any) -> Any:
    """The features a stored row stands for: its own, or its input when they were the same."""
    return input_ if features is None else features


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

    def rows(self, records: Sequence[PredictionRecord]) -> list[tuple[Any, ...]]:
        try:
            return self._rows(records)
        except (ValueError, TypeError) as error:  # a naive datetime, a value JSON cannot hold
            raise self._invalid(str(error)) from error

    def _rows(self, records: Sequence[PredictionRecord]) -> list[tuple[Any, ...]]:
        dumps = self._dumps
        # A batch's rows share one timestamp: bind each distinct one once.
        stamps = {id(r.ts): r.ts for r in records}
        bound = {key: self._ts(value) for key, value in stamps.items()}
        rows = []
        for r in records:
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
                    dumps(r.output),
                    r.confidence,
                    r.latency_ms,
                    dumps(r.warnings),
                )
            )
        return rows


class PredictionAppender:
    """A log connection. Use from one thread at a time (``LogWriter`` serialises it).

    The connection is opened on first use and dropped after any failure, so a database
    that went away is reconnected by the next group instead of failing every one after.
    """

    def __init__(
        self,
        engine: Engine,
        builder: RowBuilder,
        errors: Callable[[str, exc.DBAPIError], PlinthError],
    ) -> None:
        self._engine = engine
        self._builder = builder
        self._errors = errors
        self._sqlite = engine.dialect.name == "sqlite"
        self._dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._conn: Any = None

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Commit ``records`` in one transaction; raises ``StoreError`` if they were not."""
        if not records:
            return
        params = self._builder.rows(records)
        try:
            conn = self._connection()
            cursor = conn.cursor()
            try:
                if self._sqlite:
                    # The sqlite3 module's own transaction handling is off (see the
                    # engine's connect hook): take the write lock up front, as every
                    # Plinth writer does.
                    cursor.execute("BEGIN IMMEDIATE")
                cursor.executemany(self._builder.sql, params)
                if self._sqlite:
                    cursor.execute("COMMIT")
                else:
                    conn.commit()
            finally:
                cursor.close()
        except self._dbapi_error as error:
            self._discard()
            wrapped = exc.DBAPIError.instance(self._builder.sql, None, error, self._dbapi_error)
            assert isinstance(wrapped, exc.DBAPIError)  # given a driver error, it is one
            raise self._errors("write the prediction log", wrapped) from error
        except exc.SQLAlchemyError as error:  # e.g. the pool could not connect
            self._discard()
            if isinstance(error, exc.DBAPIError):
                raise self._errors("write the prediction log", error) from error
            raise

    def close(self) -> None:
        """Give the connection back to the pool (call before ``Store.close``)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except self._dbapi_error:  # pragma: no cover - a dead socket closes anyway
                conn.invalidate()

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._engine.raw_connection()
        return self._conn

    def _discard(self) -> None:
        # Roll back what may be half done and never reuse a connection that failed.
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):  # invalidating closes what it can
                conn.invalidate()
