"""The database: unreachable, refusing a write, or at a schema this Plinth does not know."""

from __future__ import annotations

from plinth.errors.base import PlinthError


class StoreError(PlinthError):
    """The database could not be reached or refused a write; ``store.*`` (503)."""

    status = 503


class StoreUnavailableError(StoreError):
    """The database cannot be reached, or stayed locked or busy too long.

    Passing (a restart, a lock): the reply carries ``Retry-After`` (``retry_after_s``).
    """

    code = "store.unavailable"
    retry_after_s: int = 1
    hint = (
        "Check the database is running and reachable at PLINTH_DATABASE_URL; a client may "
        "retry after the Retry-After header's seconds, with backoff."
    )


class StoreClosedError(StoreError):
    """The store was used after it was closed (only while shutting down)."""

    code = "store.closed"
    hint = "This happens only while shutting down; the operation was not done."


class StoreWriteError(StoreError):
    """Writing the prediction log (or the review items of a batch) failed."""

    code = "store.write_failed"
    hint = "Check the database is reachable and has space; the request was not logged."


class StoreConflictError(StoreError):
    """A row with the same key is already stored."""

    code = "store.conflict"
    status = 409
    hint = "A row with the same key is already stored (a prediction id used twice?)."


class UnstorableValueError(StoreError):
    """A record holds a value the database cannot store."""

    code = "store.invalid_value"
    status = 500
    hint = (
        "Records must hold JSON-ready values (str keys, 64-bit ints, floats, "
        "lists, dicts) and timezone-aware datetimes."
    )

    def __init__(self, why: str) -> None:
        super().__init__(f"a value cannot be stored: {why}")


class SchemaMissingError(StoreError):
    """The database has no Plinth tables."""

    code = "store.schema_missing"
    status = 500
    hint = (
        "The database has no Plinth tables yet; open it once with "
        "Store(url) (migrate=True, the default) to create them."
    )


class SchemaTooNewError(StoreError):
    """The database was migrated by a newer Plinth."""

    code = "store.schema_too_new"
    status = 500
    hint = "It was migrated by a newer Plinth; upgrade plinth-ml on this machine."


class StoreFailureError(StoreError):
    """The database failed in a way Plinth does not recognise."""

    code = "store.error"
    status = 500
    hint = "See the server log for the database's own error."
