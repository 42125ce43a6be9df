"""Migrations build exactly the tables ``plinth.store.schema`` describes, on every backend."""

from __future__ import annotations

import ast

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from plinth.errors import StoreError
from plinth.store import Store, partitions
from plinth.store.migrations import (
    SCRIPT_LOCATION,
    is_at_newest,
    known_revisions,
    newest_script_revision,
)
from plinth.store.schema import VERSION_TABLE, metadata

# Revision ids deployed databases already record, oldest first: never renamed or reordered.
RELEASED = ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0014"]


def _chain_literals(source: str) -> dict[str, object]:
    """``revision`` and ``down_revision`` of one script, which must be plain literals."""
    found: dict[str, object] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            for target in targets:
                if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                    assert isinstance(node.value, ast.Constant), (target.id, ast.unparse(node))
                    found[target.id] = node.value.value
    return found


def test_the_migrations_form_one_linear_chain_of_static_ids() -> None:
    """A chain computed from the files present changes with them; a fork leaves two heads."""
    scripts = sorted((SCRIPT_LOCATION / "versions").glob("[0-9]*.py"))
    literals = {p.name: _chain_literals(p.read_text()) for p in scripts}
    for name, found in literals.items():
        assert set(found) == {"revision", "down_revision"}, name
        assert name.startswith(f"{found['revision']}_"), name  # the file is named by its id
    directory = ScriptDirectory(str(SCRIPT_LOCATION))
    assert len(directory.get_heads()) == 1 and len(directory.get_bases()) == 1
    newest_first = [s.revision for s in directory.walk_revisions()]
    assert len(newest_first) == len(scripts)
    for script in directory.walk_revisions():
        assert not script.is_merge_point and not script.is_branch_point, script.revision
        if script.down_revision is not None:
            assert script.down_revision in newest_first, script.revision
    chain = newest_first[::-1]
    assert [literals[p.name]["revision"] for p in scripts] == chain  # file order is chain order
    assert chain[: len(RELEASED)] == RELEASED


def test_migrated_database_matches_schema_module(store: Store, database_url: str) -> None:
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            opts = {"version_table": VERSION_TABLE, "include_name": _declared}
            context = MigrationContext.configure(conn, opts=opts)
            assert context.get_current_revision() == known_revisions()[0]
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def _declared(name: str | None, kind: str, _parent: object) -> bool:
    # The log's daily partitions (PostgreSQL) are made at run time, not declared.
    return not (kind == "table" and name is not None and partitions.is_partition(name))


def test_database_from_a_newer_plinth_is_refused(store: Store, database_url: str) -> None:
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999_future'"))
    finally:
        engine.dispose()

    with pytest.raises(StoreError) as refused:
        Store(database_url)
    assert refused.value.code == "store.schema_too_new"
    assert "9999_future" in refused.value.message


def test_the_highest_numbered_script_is_alembics_head() -> None:
    # Opening a store trusts this to skip Alembic; a script out of order would break it.
    assert newest_script_revision() == known_revisions()[0]


def test_only_a_database_at_the_newest_revision_skips_alembic(database_url: str) -> None:
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            assert not is_at_newest(conn)  # never migrated: no version table
        Store(database_url).close()
        with engine.begin() as conn:
            assert is_at_newest(conn)
            conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0009'"))
            assert not is_at_newest(conn)
            conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999_future'"))
            assert not is_at_newest(conn)
    finally:
        engine.dispose()


def test_migrate_false_leaves_a_fresh_database_empty(database_url: str) -> None:
    with Store(database_url, migrate=False) as store:
        store.ping()
        with pytest.raises(StoreError) as missing:
            store.count_predictions()
    assert missing.value.code == "store.schema_missing"
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_counting_a_window_per_version_reads_the_index_alone(store: Store) -> None:
    # The alert evaluator runs this count every evaluation; visiting table rows made it
    # cost seconds of a serving core on a log of a million rows (migration 0006).
    if store._engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plan is stable on an empty table; PostgreSQL's depends on stats")
    query = (
        "EXPLAIN QUERY PLAN SELECT version, count(*) FROM predictions "
        "WHERE model = 'm' AND ts >= '2026-01-01' AND ts < '2026-01-02' GROUP BY version"
    )
    with store._engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(query))
    assert "COVERING INDEX ix_predictions_model_ts_version" in plan, plan


def test_label_lookup_by_key_uses_the_partial_key_index(store: Store) -> None:
    # 0007 keeps only rows with a key in (model, key); a lookup by key must still find it.
    if store._engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plan is stable on an empty table; PostgreSQL's depends on stats")
    query = "EXPLAIN QUERY PLAN SELECT id FROM predictions WHERE model = 'm' AND key IN ('a', 'b')"
    with store._engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(query))
    assert "INDEX ix_predictions_model_key" in plan, plan


def test_a_logged_prediction_writes_three_index_entries_not_four(store: Store) -> None:
    # Primary key, (model, ts, version) and, only for keyed rows, (model, key): migration 0007.
    names = {ix["name"] for ix in sa.inspect(store._engine).get_indexes("predictions")}
    assert "ix_predictions_ts" not in names
    assert names >= {"ix_predictions_model_ts_version", "ix_predictions_model_key"}
