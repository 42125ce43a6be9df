"""The one object that reads and writes the database: registry rows and the prediction log.

One ``Store`` per process is enough: it is safe to share between threads (each call checks a
connection out of the pool), and several processes may open the same database at once
(SQLite in WAL mode, or PostgreSQL). Every database failure leaves here as a ``StoreError``
with a hint; callers never see a driver exception.
"""

from __future__ import annotations

import dataclasses
import os
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, NoReturn

import orjson
import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, Connection, Engine, Row, make_url

from plinth.errors import (
    ConfigError,
    DatabaseUrlError,
    ModelNotFoundError,
    PlinthError,
    PredictionNotFoundError,
    SchemaMissingError,
    SchemaTooNewError,
    SqliteSynchronousError,
    StoreClosedError,
    StoreConflictError,
    StoreFailureError,
    StoreUnavailableError,
    UnstorableValueError,
    VersionNotFoundError,
)
from plinth.store import migrations, partitions
from plinth.store.prediction_log import Layouts, PredictionAppender, RowBuilder
from plinth.store.records import ModelSummary, PredictionRecord, VersionRecord, split_trace
from plinth.store.schema import VERSION_TABLE, model_versions, models, predictions

SQLITE_SYNCHRONOUS: Final = ("OFF", "NORMAL", "FULL", "EXTRA")
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
# Any fixed 64-bit number; every Plinth process agrees on it ("plinth" in ASCII).
MIGRATION_LOCK_KEY: Final = 0x706C696E7468
PRUNE_CHUNK_ROWS: Final = 5_000
REGISTER_ATTEMPTS: Final = 5
MAX_LISTED: Final = 20
_WRITE: Final = "plinth_write"


def _dumps(value: Any) -> str:
    # orjson writes the shortest text that parses back to the same float, so floats
    # round-trip bit for bit. NaN and infinity have no JSON spelling and become null.
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


class Store:
    """Registry and prediction log over SQLite (embedded) or PostgreSQL (shared)."""

    url: str
    dialect: str

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: str = "NORMAL",
        sqlite_busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_MS / 1000,
        migrate: bool = True,
        pool_size: int = 5,
        max_overflow: int = 10,
    ) -> None:
        parsed = _parse_url(url)
        self.url = url
        self._closed = False
        self.dialect = parsed.get_backend_name()
        self._where = parsed.render_as_string(hide_password=True)
        self._parsed = parsed
        self._busy_timeout_s = sqlite_busy_timeout_s
        if self.dialect == "sqlite":
            self._engine = _sqlite_engine(parsed, sqlite_synchronous, sqlite_busy_timeout_s)
        else:
            self._engine = _postgresql_engine(parsed, pool_size, max_overflow)
        # Writers on SQLite start with BEGIN IMMEDIATE (see _sqlite_begin); PostgreSQL
        # ignores the option.
        self.write_engine = self._engine.execution_options(**{_WRITE: True})
        self._log_rows = RowBuilder(self._engine.dialect, _dumps, UnstorableValueError)
        #: Turns positional log rows back into records (see plinth.store.prediction_log).
        self.layouts = Layouts(self._contract_fields)
        _dispose_after_fork(self._engine)
        if migrate:
            try:
                self._migrate()
                self.ensure_log_partitions()
            except BaseException:
                self._engine.dispose()
                raise

    def close(self, *, wait_s: float = 5.0) -> None:
        """Close every pooled connection; safe to call twice.

        Waits (briefly) for connections still checked out by other threads — a background
        job finishing its query — because a connection returned to a disposed pool is never
        closed properly, only garbage-collected.
        """
        pool = self._engine.pool
        checkedout = getattr(pool, "checkedout", None)
        if callable(checkedout):
            deadline = time.monotonic() + wait_s
            while checkedout() > 0 and time.monotonic() < deadline:
                time.sleep(0.01)
        self._closed = True
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self._where!r})"

    def ping(self, *, write: bool = False) -> None:
        """Round-trip to the database; raises ``StoreError(store.unavailable)`` if it fails.

        ``write=True`` commits a real (no-op) write, so a database that answers reads but
        cannot take writes (locked by another process, its disk full) fails it too.
        """
        if not write:
            with self.reading() as conn:
                conn.execute(sa.select(1))
            return
        with self.writing() as conn:
            conn.exec_driver_sql(f"UPDATE {VERSION_TABLE} SET version_num = version_num")

    # -- registry ---------------------------------------------------------------------------

    def add_version(
        self, record: VersionRecord, *, guard: Callable[[Connection, int], None] | None = None
    ) -> VersionRecord:
        """Store a new version with the next number for its name, or return the existing one.

        Registration is idempotent on (name, sha256). Numbering is safe across processes:
        SQLite serialises writers; on PostgreSQL the models row is locked, and a unique
        violation from any remaining race is retried. ``guard`` runs in the same transaction
        with the version's number (a training job's lease check, ``TrainingStore``); if it
        raises, nothing is stored.
        """
        created_at = _aware(record.created_at, "created_at")
        with self.translated_errors("register a model version"):
            for attempt in range(1, REGISTER_ATTEMPTS + 1):
                try:
                    with self.write_engine.begin() as conn:
                        added = self._add_version(conn, record, created_at)
                        if guard is not None:
                            guard(conn, added.version)
                        return added
                except exc.IntegrityError:
                    if attempt == REGISTER_ATTEMPTS:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _add_version(
        self, conn: Connection, record: VersionRecord, created_at: datetime
    ) -> VersionRecord:
        from sqlalchemy.dialects import postgresql as pg  # not at import: `plinth models` on SQLite

        insert = pg.insert(models) if self.dialect == "postgresql" else sqlite.insert(models)
        conn.execute(
            insert.values(name=record.name, created_at=created_at).on_conflict_do_nothing(
                index_elements=["name"]
            )
        )
        # Row lock: concurrent registrations of one name queue here instead of racing.
        conn.execute(sa.select(models.c.name).where(models.c.name == record.name).with_for_update())
        existing = conn.execute(
            sa.select(model_versions).where(
                model_versions.c.name == record.name, model_versions.c.sha256 == record.sha256
            )
        ).first()
        if existing is not None:
            return _version(existing)
        number: int = conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(model_versions.c.version), 0) + 1).where(
                model_versions.c.name == record.name
            )
        ).scalar_one()
        conn.execute(
            model_versions.insert().values(
                name=record.name,
                version=number,
                sha256=record.sha256,
                flavor=record.flavor,
                task=record.task,
                created_at=created_at,
                metadata=record.metadata,
            )
        )
        return dataclasses.replace(record, version=number, created_at=created_at)

    def find_version(self, name: str, sha256: str) -> VersionRecord | None:
        """The version of ``name`` whose artifact has this hash, if registered."""
        with self.reading() as conn:
            row = conn.execute(
                sa.select(model_versions).where(
                    model_versions.c.name == name, model_versions.c.sha256 == sha256
                )
            ).first()
        return None if row is None else _version(row)

    def _contract_fields(self, name: str, version: int) -> list[str]:
        contract = self.get_version(name, version).metadata.get("contract") or {}
        return [str(f["name"]) for f in contract.get("fields", [])]

    def get_version(self, name: str, version: int | None = None) -> VersionRecord:
        """One version, or the latest when ``version`` is None; the error lists what exists."""
        query = sa.select(model_versions).where(model_versions.c.name == name)
        if version is None:
            query = query.order_by(model_versions.c.version.desc()).limit(1)
        else:
            query = query.where(model_versions.c.version == version)
        with self.reading() as conn:
            row = conn.execute(query).first()
            if row is not None:
                return _version(row)
            self._raise_version_not_found(conn, name, version)

    def _raise_version_not_found(
        self, conn: Connection, name: str, version: int | None
    ) -> NoReturn:
        numbers = (
            conn.execute(
                sa.select(model_versions.c.version)
                .where(model_versions.c.name == name)
                .order_by(model_versions.c.version)
            )
            .scalars()
            .all()
        )
        if numbers:
            raise VersionNotFoundError(
                f"model '{name}' has no version {version}",
                hint=f"Versions of '{name}': {_listing([str(n) for n in numbers])}.",
            )
        names = conn.execute(sa.select(models.c.name).order_by(models.c.name)).scalars().all()
        raise ModelNotFoundError(
            f"model '{name}' is not registered",
            hint=(
                f"Registered models: {_listing(list(names))}."
                if names
                else "No models are registered yet; register one with `plinth register`."
            ),
        )

    def list_versions(self, name: str) -> list[VersionRecord]:
        """Every version of ``name``, oldest first; empty if the name is unknown."""
        with self.reading() as conn:
            rows = conn.execute(
                sa.select(model_versions)
                .where(model_versions.c.name == name)
                .order_by(model_versions.c.version)
            ).all()
        return [_version(row) for row in rows]

    def list_models(self) -> list[ModelSummary]:
        """Every model name with its latest version, sorted by name."""
        mv = model_versions
        agg = (
            sa.select(
                mv.c.name,
                sa.func.max(mv.c.version).label("latest"),
                sa.func.count().label("n"),
            )
            .group_by(mv.c.name)
            .subquery()
        )
        query = (
            sa.select(mv.c.name, mv.c.version, mv.c.task, mv.c.created_at, agg.c.n)
            .join(agg, sa.and_(mv.c.name == agg.c.name, mv.c.version == agg.c.latest))
            .order_by(mv.c.name)
        )
        with self.reading() as conn:
            rows = conn.execute(query).all()
        return [
            ModelSummary(
                name=row.name,
                latest_version=row.version,
                versions=row.n,
                task=row.task,
                updated_at=row.created_at,
            )
            for row in rows
        ]

    def update_version_metadata(
        self, name: str, version: int, metadata: dict[str, Any]
    ) -> VersionRecord:
        """Replace a version's whole metadata document (e.g. after a contract edit)."""
        key = (model_versions.c.name == name, model_versions.c.version == version)
        with self.writing() as conn:
            updated = conn.execute(model_versions.update().where(*key).values(metadata=metadata))
            if updated.rowcount == 0:
                self._raise_version_not_found(conn, name, version)
            row = conn.execute(sa.select(model_versions).where(*key)).one()
        return _version(row)

    # -- prediction log ---------------------------------------------------------------------

    def insert_predictions(self, rows: Sequence[PredictionRecord]) -> None:
        """Write a batch in one transaction: the group commit, one fsync for many replies."""
        if not rows:
            return
        params = self._log_rows.rows(rows)
        with self.writing() as conn:
            conn.exec_driver_sql(self._log_rows.sql, params)

    def prediction_appender(self, *, checkpoints: bool = True) -> PredictionAppender:
        """A dedicated log connection for one thread (see prediction_log); with
        ``checkpoints=False`` its commits never checkpoint SQLite's WAL themselves."""
        self._check_open()
        return PredictionAppender(
            self._engine, self._log_rows, self._database_error, checkpoints=checkpoints
        )

    def get_prediction(self, prediction_id: str) -> PredictionRecord:
        """One logged prediction by id, for replay and audit."""
        with self.reading() as conn:
            row = conn.execute(
                sa.select(predictions).where(predictions.c.id == prediction_id)
            ).first()
        if row is None:
            raise PredictionNotFoundError(
                f"no prediction with id '{prediction_id}'",
                hint="Predictions older than the retention window (`plinth prune --older-than`, "
                "30 days by default) are deleted; check the id came from this deployment.",
            )
        return _prediction(row, self.layouts)

    def list_predictions(
        self, model: str | None = None, limit: int = 100, since: datetime | None = None
    ) -> list[PredictionRecord]:
        """The newest predictions first, optionally for one model and from ``since`` on."""
        if limit <= 0:
            return []
        query = sa.select(predictions)
        if model is not None:
            query = query.where(predictions.c.model == model)
        if since is not None:
            query = query.where(predictions.c.ts >= _aware(since, "since"))
        if model is None:  # ULIDs sort by time: the primary key is the all-models time index
            query = query.order_by(predictions.c.id.desc()).limit(limit)
        else:
            query = query.order_by(predictions.c.ts.desc(), predictions.c.id.desc()).limit(limit)
        with self.reading() as conn:
            rows = conn.execute(query).all()
        return [_prediction(row, self.layouts) for row in rows]

    def count_predictions(self, model: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(predictions)
        if model is not None:
            query = query.where(predictions.c.model == model)
        with self.reading() as conn:
            count: int = conn.execute(query).scalar_one()
        return count

    def prune_predictions(self, older_than: datetime) -> int:
        """Delete predictions logged before ``older_than``; returns how many went.

        On PostgreSQL a day wholly before the cut-off goes as a whole partition (a catalogue
        change, no row-by-row delete). What is left (part of a day, the default partition,
        SQLite) is deleted in chunks, each its own transaction, so a large prune never holds
        the write lock long enough to stall the log writer.
        """
        cutoff = _aware(older_than, "older_than")
        total = 0
        if self.dialect == "postgresql":
            with self.writing() as conn:
                for name in partitions.expired_days(conn, cutoff):
                    rows = conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one()
                    conn.exec_driver_sql(f"DROP TABLE {name}")
                    total += int(rows)
        oldest = (
            sa.select(predictions.c.id).where(predictions.c.ts < cutoff).limit(PRUNE_CHUNK_ROWS)
        )
        while True:
            with self.writing() as conn:
                deleted = conn.execute(predictions.delete().where(predictions.c.id.in_(oldest)))
            total += deleted.rowcount
            if deleted.rowcount < PRUNE_CHUNK_ROWS:
                return total

    def ensure_log_partitions(self, now: datetime | None = None) -> list[str]:
        """On PostgreSQL, create the prediction log's daily partitions from yesterday to a
        week ahead (idempotent, safe from many processes); returns the ones made."""
        if self.dialect != "postgresql":
            return []
        with self.writing() as conn:
            return partitions.ensure_around(conn, now or datetime.now(UTC))

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads; database failures become ``StoreError`` (the store
        modules share this, so every table reports trouble the same way)."""
        self._check_open()
        with self.translated_errors("read from the database"), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A transaction on the writer engine (on SQLite: one writer at a time, taken up
        front, so two writers never deadlock upgrading a read lock)."""
        self._check_open()
        with self.translated_errors("write to the database"), self.write_engine.begin() as conn:
            yield conn

    def _check_open(self) -> None:
        # A background job still running at shutdown must not open a fresh pool that
        # nobody will ever close.
        if self._closed:
            raise StoreClosedError(
                "The store is closed.",
            )

    @contextmanager
    def translated_errors(self, action: str) -> Iterator[None]:
        """Turn SQLAlchemy and driver exceptions into ``StoreError`` with a useful hint."""
        try:
            yield
        except exc.DBAPIError as error:
            raise self._database_error(action, error) from error
        except exc.TimeoutError as error:  # every pooled connection busy for 30 s
            raise StoreUnavailableError(
                f"could not {action} ({self._where}): {_reason(error)}",
                hint="All pooled connections stayed busy; look for slow queries or stuck threads.",
            ) from error
        except exc.StatementError as error:
            # A bind value could not be converted (naive datetime, value orjson cannot write).
            raise UnstorableValueError(_reason(error)) from error
        except orjson.JSONEncodeError as error:
            # psycopg calls our JSON serialiser itself, so its failures arrive unwrapped.
            raise UnstorableValueError(str(error)) from error
        except exc.SQLAlchemyError as error:  # pragma: no cover - nothing known raises this
            raise StoreFailureError(
                f"could not {action} ({self._where}): {_reason(error)}"
            ) from error

    def _database_error(self, action: str, error: exc.DBAPIError) -> PlinthError:
        message = f"could not {action} ({self._where}): {_reason(error)}"
        orig = error.orig
        if getattr(orig, "sqlstate", None) == "42P01" or "no such table" in str(orig):
            return SchemaMissingError(
                message,
            )
        if isinstance(error, exc.OperationalError | exc.InterfaceError):
            return StoreUnavailableError(message, hint=self._unavailable_hint(error))
        if isinstance(error, exc.IntegrityError):
            return StoreConflictError(
                message,
            )
        if isinstance(error, exc.DataError):
            return UnstorableValueError(_reason(error))
        return StoreFailureError(message)

    def _unavailable_hint(self, error: exc.SQLAlchemyError) -> str:
        orig = str(getattr(error, "orig", error))
        if self.dialect == "sqlite":
            if "locked" in orig or "busy" in orig:
                return (
                    f"Another process held the write lock for over "
                    f"{self._busy_timeout_s:g} s; look for a stuck process, or move "
                    "to PostgreSQL for heavy concurrent writes."
                )
            if "full" in orig or "I/O" in orig:
                return (
                    f"The disk holding {self._parsed.database} is full or failing: free "
                    "space (`plinth prune`, or remove other files), then it recovers by itself."
                )
            return (
                f"Check that {self._parsed.database} is on a local disk (not a network "
                "share) and readable and writable by this user."
            )
        host = self._parsed.host or "localhost"
        port = self._parsed.port or 5432
        return (
            f"Is PostgreSQL running at {host}:{port}, and does database "
            f"'{self._parsed.database}' exist with access for this user? "
            "Check PLINTH_DATABASE_URL."
        )

    def _migrate(self) -> None:
        """Bring the schema to the newest revision; safe when many processes start at once.

        A cheap read first: a database already at head (the usual case) takes no lock, and
        does not even import Alembic. Otherwise the upgrade runs in one transaction under a
        lock (PostgreSQL advisory lock, SQLite BEGIN IMMEDIATE); a process that waited finds
        the work done and does nothing.
        """
        with self.reading() as conn:
            if migrations.is_at_newest(conn):
                return
        head, known = migrations.known_revisions()
        with self.reading() as conn:
            current = migrations.current_revision(conn)
        if current is not None and current not in known:
            raise SchemaTooNewError(
                f"the database at {self._where} has schema revision {current}, "
                "which this version of Plinth does not know",
            )
        if current == head:
            return
        with self.writing() as conn:
            if self.dialect == "postgresql":
                # Released by the commit at the end of the upgrade transaction.
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
            migrations.upgrade(conn)


# -- engines -----------------------------------------------------------------------------------


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except exc.ArgumentError as error:
        raise _bad_url(url, "it is not a database URL") from error
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.get_driver_name() != "pysqlite":
            raise _bad_url(url, "only the standard sqlite3 driver is supported")
        if parsed.database in (None, "", ":memory:") or "mode=memory" in str(parsed):
            raise _bad_url(url, "an in-memory SQLite database is private to one connection")
        return parsed
    if backend in ("postgresql", "postgres"):
        if parsed.drivername not in ("postgresql", "postgres", "postgresql+psycopg"):
            raise _bad_url(url, "only the psycopg (version 3) driver is supported")
        # A bare postgresql:// would pick psycopg2, which Plinth does not install.
        return parsed.set(drivername="postgresql+psycopg")
    raise _bad_url(url, f"'{backend}' databases are not supported")


def _bad_url(url: str, why: str) -> ConfigError:
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        shown = "(unparseable)"
    return DatabaseUrlError(
        f"cannot use database URL {shown}: {why}",
    )


def _sqlite_engine(url: URL, synchronous: str, busy_timeout_s: float) -> Engine:
    mode = synchronous.upper()
    if mode not in SQLITE_SYNCHRONOUS:
        raise SqliteSynchronousError(
            f"sqlite_synchronous={synchronous!r} is not a SQLite synchronous mode",
            hint=f"Use one of {', '.join(SQLITE_SYNCHRONOUS)}; FULL is the safe default.",
        )
    assert url.database is not None
    path = Path(url.database).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreUnavailableError(
            f"cannot create the folder for the SQLite database {path}: {error.strerror}",
            hint="Point PLINTH_HOME (or PLINTH_DATABASE_URL) at a writable folder.",
        ) from error
    engine = sa.create_engine(
        url,
        json_serializer=_dumps,
        json_deserializer=orjson.loads,
        connect_args={"timeout": busy_timeout_s},
        hide_parameters=True,  # bound values are raw inputs and secrets: never in a message
    )
    event.listen(engine, "connect", _sqlite_on_connect(mode, int(busy_timeout_s * 1000)))
    event.listen(engine, "begin", _sqlite_begin)
    return engine


# What a WAL file is cut back to once a checkpoint has caught up (SQLite's journal_size_limit).
SQLITE_WAL_KEEP_BYTES = 16 * 2**20


def _sqlite_on_connect(synchronous: str, busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module; _sqlite_begin emits BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            # WAL: readers never block the writer and the writer never blocks readers.
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL fsyncs the WAL on every commit. Commits are batched (one per group of
            # replies), so durability across power loss costs one fsync per batch.
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Under sustained writes the passive checkpoints seldom catch up and the WAL
            # grows (262 MB after 40 s at 3,250 req/s); without a limit it keeps that size
            # for good. With one, the first write after a completed checkpoint cuts it back.
            cursor.execute(f"PRAGMA journal_size_limit={SQLITE_WAL_KEEP_BYTES}")
        finally:
            cursor.close()

    return on_connect


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the write lock up front. A deferred transaction that reads and then
    # writes cannot wait for the lock (SQLite reports "database is locked" at once, to
    # avoid deadlock), so read-then-write code such as version numbering must not use one.
    if conn.get_execution_options().get(_WRITE):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def _postgresql_engine(url: URL, pool_size: int, max_overflow: int) -> Engine:
    connect_args: dict[str, Any] = {} if "connect_timeout" in url.query else {"connect_timeout": 10}
    # No server-side prepared statements: behind PgBouncer in transaction mode the next
    # transaction may run on another server connection, where they do not exist.
    connect_args["prepare_threshold"] = None
    return sa.create_engine(
        url,
        json_serializer=_dumps,
        json_deserializer=orjson.loads,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        connect_args=connect_args,
        hide_parameters=True,  # bound values are raw inputs and secrets: never in a message
    )


def _dispose_after_fork(engine: Engine) -> None:
    """A forked child must not reuse its parent's pooled sockets or file handles."""
    ref = weakref.ref(engine)

    def after_fork() -> None:
        forked = ref()
        if forked is not None:
            forked.dispose(close=False)

    os.register_at_fork(after_in_child=after_fork)


# -- rows and values ---------------------------------------------------------------------------


def _version(row: Row[Any]) -> VersionRecord:
    m = row._mapping
    return VersionRecord(
        name=m["name"],
        version=m["version"],
        sha256=m["sha256"],
        flavor=m["flavor"],
        task=m["task"],
        created_at=m["created_at"],
        metadata=m["metadata"],
    )


def _prediction(row: Row[Any], layouts: Layouts) -> PredictionRecord:
    m = row._mapping
    given, seen = layouts.input_and_features(m["model"], m["version"], m["input"], m["features"])
    output, trace_id = split_trace(m["output"])
    return PredictionRecord(
        id=m["id"],
        ts=m["ts"],
        model=m["model"],
        version=m["version"],
        sha256=m["sha256"],
        route=m["route"],
        input=given,
        features=seen,
        output=output,
        confidence=m["confidence"],
        latency_ms=m["latency_ms"],
        warnings=m["warnings"],
        request_id=m["request_id"],
        key=m["key"],
        trace_id=trace_id,
    )


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise UnstorableValueError(
            f"{name}={value.isoformat()} is a naive datetime; pass an aware one, "
            "e.g. datetime.now(UTC)"
        )
    return value.astimezone(UTC)


def _reason(error: exc.SQLAlchemyError) -> str:
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    more = len(items) - MAX_LISTED
    return f"{shown} and {more} more" if more > 0 else shown
