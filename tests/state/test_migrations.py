"""Alembic migrations on both backends: up from empty, down to nothing, and no drift."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from audience_sync.errors import StateError
from audience_sync.state import migrate
from audience_sync.state.db import make_engine
from audience_sync.state.tables import metadata


def test_upgrade_from_empty_to_head_and_back_down(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert migrate.current_revision(engine) is None
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert set(metadata.tables) <= set(inspect(engine).get_table_names())

        migrate.downgrade(engine, "base")
        assert migrate.current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


def test_metadata_and_migrations_do_not_drift(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
        assert differences == [], (
            f"state/tables.py and migrations/ differ; generate a migration: {differences}"
        )
    finally:
        engine.dispose()


def test_out_of_date_schema_is_refused_with_advice(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with pytest.raises(StateError, match="run `audience-sync db upgrade`"):
            migrate.ensure_current(engine)
        migrate.upgrade(engine)
        migrate.ensure_current(engine)
    finally:
        engine.dispose()


def _insert_change(conn: Connection, email: str, status: str) -> None:
    conn.execute(
        text(
            "INSERT INTO run_changes (run_id, audience_id, email, action, status) "
            "VALUES (1, 1, :email, 'on', :status)"
        ),
        {"email": email, "status": status},
    )


def test_0008_keeps_the_changes_and_what_their_checks_allow(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine, "0007")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO sync_runs (id, trigger, status, started_at, host, pid, "
                    "planned_count, confirmed_count, skipped_count, failed_count) "
                    "VALUES (1, 'manual', 'running', CURRENT_TIMESTAMP, 'h', 1, 0, 0, 0, 0)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO audiences (id, key, list_id, source_description, created_at, "
                    "updated_at) VALUES (1, 'a', 1, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            _insert_change(conn, "kept@example.com", "planned")
        for revision in ("0008", "0007", "0008"):
            if revision == "0007":
                migrate.downgrade(engine, revision)
            else:
                migrate.upgrade(engine, revision)
            with engine.begin() as conn:
                rows = conn.execute(text("SELECT email, action, status FROM run_changes")).all()
                assert [tuple(r) for r in rows] == [("kept@example.com", "on", "planned")]
                conn.execute(text("UPDATE run_changes SET status = 'confirmed'"))
                conn.execute(text("UPDATE run_changes SET status = 'planned'"))
            for bad_status in ("bogus", "Planned"):
                with pytest.raises(IntegrityError), engine.begin() as conn:
                    _insert_change(conn, f"{revision}@example.com", bad_status)
            with pytest.raises(IntegrityError), engine.begin() as conn:
                conn.execute(text("UPDATE run_changes SET action = 'maybe'"))
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                ddl = conn.execute(
                    text("SELECT sql FROM sqlite_master WHERE name = 'run_changes'")
                ).scalar_one()
            assert " IN (" not in ddl
            assert "\"status\" = 'planned' OR" in ddl
    finally:
        engine.dispose()


FOREIGN_KEYS_0009 = {
    "run_changes": {
        "fk_run_changes_run_id_sync_runs",
        "fk_run_changes_audience_id_audiences",
        "fk_run_changes_import_id_listrak_imports",
    },
    "memberships": {"fk_memberships_audience_id_audiences"},
    "import_results": {"fk_import_results_import_id_listrak_imports"},
}


def _seed_0009(conn: Connection) -> None:
    conn.execute(
        text(
            "INSERT INTO sync_runs (id, trigger, status, started_at, host, pid, planned_count, "
            "confirmed_count, skipped_count, failed_count) "
            "VALUES (1, 'manual', 'running', CURRENT_TIMESTAMP, 'h', 1, 0, 0, 0, 0)"
        )
    )
    conn.execute(
        text(
            "INSERT INTO audiences (id, key, list_id, source_description, created_at, "
            "updated_at) VALUES (1, 'a', 1, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        )
    )
    conn.execute(
        text(
            "INSERT INTO listrak_imports (id, run_id, audience_id, list_id, field_id, part, route, "
            "file_name, first_email, last_email, row_count, byte_count, status, created_at, "
            "found_by_name) VALUES (1, 1, 1, 1, 2, 1, 'list_import', 'f.csv', 'a@x.com', "
            "'b@x.com', 2, 40, 'finished', CURRENT_TIMESTAMP, false)"
        )
    )
    conn.execute(
        text(
            "INSERT INTO run_changes (run_id, audience_id, email, action, status, import_id, "
            "reason, value) VALUES (1, 1, 'a@x.com', 'on', 'confirmed', 1, NULL, NULL), "
            "(1, 1, 'b@x.com', 'set', 'skipped', 1, 'NotSubscribed', 'gold'), "
            "(1, 1, 'c@x.com', 'off', 'planned', NULL, NULL, NULL)"
        )
    )
    conn.execute(
        text(
            "INSERT INTO memberships (audience_id, email, value, confirmed_run_id, desired) "
            "VALUES (1, 'a@x.com', 'on', 1, 'on'), (1, 'c@x.com', NULL, NULL, 'off')"
        )
    )
    conn.execute(
        text("INSERT INTO import_results (import_id, email, result) VALUES (1, 'b@x.com', 'x')")
    )


def _ledger_rows(conn: Connection) -> list[tuple[object, ...]]:
    changes = conn.execute(
        text(
            "SELECT run_id, audience_id, email, action, status, import_id, reason, value "
            "FROM run_changes ORDER BY email"
        )
    ).all()
    members = conn.execute(
        text(
            "SELECT audience_id, email, value, confirmed_run_id, desired FROM memberships "
            "ORDER BY email"
        )
    ).all()
    results = conn.execute(text("SELECT import_id, email, result FROM import_results")).all()
    return [tuple(r) for r in [*changes, *members, *results]]


def test_0010_drops_the_bulk_tables_keys_keeping_rows_and_checks(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine, "0009")
        with engine.begin() as conn:
            _seed_0009(conn)
            seeded = _ledger_rows(conn)
        assert len(seeded) == 6
        for revision in ("0010", "0009", "0010"):
            if revision == "0009":
                migrate.downgrade(engine, revision)
            else:
                migrate.upgrade(engine, revision)
            inspector = inspect(engine)
            for table, keys in FOREIGN_KEYS_0009.items():
                names = {str(k["name"]) for k in inspector.get_foreign_keys(table)}
                assert names == (keys if revision == "0009" else set()), (revision, table)
            assert {str(c["name"]) for c in inspector.get_check_constraints("run_changes")} == {
                "ck_run_changes_action",
                "ck_run_changes_status",
            }
            assert [i["name"] for i in inspector.get_indexes("memberships")] == [
                "ix_memberships_audience_value"
            ]
            with engine.connect() as conn:
                assert _ledger_rows(conn) == seeded
            for bad_status in ("bogus", "Planned"):
                with pytest.raises(IntegrityError), engine.begin() as conn:
                    _insert_change(conn, f"{revision}@example.com", bad_status)
            with pytest.raises(IntegrityError), engine.begin() as conn:
                conn.execute(text("UPDATE run_changes SET action = 'maybe'"))
    finally:
        engine.dispose()


def _fillfactor(conn: Connection, table: str) -> str | None:
    options = conn.execute(
        text("SELECT reloptions FROM pg_class WHERE relname = :t AND relkind = 'r'"), {"t": table}
    ).scalar_one()
    return next((o for o in options or [] if o.startswith("fillfactor=")), None)


def test_0011_drops_the_import_index_keeping_rows(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine, "0010")
        with engine.begin() as conn:
            _seed_0009(conn)
            seeded = _ledger_rows(conn)
        for revision in ("0011", "0010", "0011"):
            if revision == "0010":
                migrate.downgrade(engine, revision)
            else:
                migrate.upgrade(engine, revision)
            indexes = {str(i["name"]) for i in inspect(engine).get_indexes("run_changes")}
            expected = set() if revision == "0011" else {"ix_run_changes_import_id"}
            assert indexes == expected, revision
            with engine.connect() as conn:
                assert _ledger_rows(conn) == seeded
                if engine.dialect.name == "postgresql":
                    for table in ("run_changes", "memberships"):
                        expected_option = "fillfactor=45" if revision == "0011" else None
                        assert _fillfactor(conn, table) == expected_option, (revision, table)
    finally:
        engine.dispose()


def _deltas(conn: Connection) -> list[tuple[object, ...]]:
    rows = conn.execute(
        text(
            "SELECT run_id, audience_id, email, desired FROM snapshot_deltas ORDER BY run_id, email"
        )
    ).all()
    return [tuple(r) for r in rows]


def test_0012_moves_the_deltas_and_shows_a_marked_runs_changes_as_its_deltas(
    database_url: str,
) -> None:
    """Upgrading keeps every recorded delta visible under the old name; a run marked after
    the upgrade shows its planned ``on`` changes (not its other ones) as its deltas; and
    downgrading writes those back as rows, so nothing a replay reads is lost either way."""
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine, "0011")
        with engine.begin() as conn:
            _seed_0009(conn)
            conn.execute(
                text(
                    "INSERT INTO run_audiences (run_id, audience_id, status, source_description, "
                    "rows_read, invalid_count, invalid_reasons, source_notes, snapshot_count, "
                    "confirmed_on_before, planned_on, planned_off, unchanged_count, parked_count) "
                    "VALUES (1, 1, 'done', '', 0, 0, '{}', '{}', 2, 0, 2, 0, 0, 0)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO snapshot_deltas (run_id, audience_id, email, desired) "
                    "VALUES (1, 1, 'a@x.com', 'on'), (1, 1, 'b@x.com', 'off')"
                )
            )
            recorded = _deltas(conn)
        migrate.upgrade(engine, "0012")
        assert "snapshot_deltas" not in inspect(engine).get_table_names()
        assert "recorded_deltas" in inspect(engine).get_table_names()
        with engine.begin() as conn:
            assert _deltas(conn) == recorded
            conn.execute(text("DELETE FROM recorded_deltas"))
            conn.execute(
                text(
                    "UPDATE run_audiences SET deltas_are_changes = true "
                    "WHERE run_id = 1 AND audience_id = 1"
                )
            )
            # the seeded changes: a@x.com on, b@x.com set (a trait's), c@x.com off
            shown = _deltas(conn)
        assert shown == [(1, 1, "a@x.com", "on")]
        migrate.downgrade(engine, "0011")
        assert "snapshot_deltas" in inspect(engine).get_table_names()
        with engine.connect() as conn:
            assert _deltas(conn) == shown
        migrate.upgrade(engine, "0012")
        with engine.connect() as conn:
            assert _deltas(conn) == shown
    finally:
        engine.dispose()


def _memberships(conn: Connection) -> list[tuple[object, ...]]:
    rows = conn.execute(
        text(
            "SELECT audience_id, email, value, confirmed_run_id, desired FROM memberships "
            "ORDER BY audience_id, email"
        )
    ).all()
    return [tuple(r) for r in rows]


def _memberships_ddl(conn: Connection) -> str:
    return str(
        conn.execute(
            text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'memberships'")
        ).scalar_one()
    )


def test_0013_keeps_memberships_and_stores_them_by_key_on_sqlite(database_url: str) -> None:
    """The rebuilt table holds the same rows, its primary key and value index still work, and
    on SQLite it is a WITHOUT ROWID table after the upgrade and a rowid table again after the
    downgrade."""
    engine = make_engine(database_url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        migrate.upgrade(engine, "0012")
        with engine.begin() as conn:
            _seed_0009(conn)
            conn.execute(
                text(
                    "INSERT INTO memberships (audience_id, email, value, confirmed_run_id, "
                    "confirmed_at, desired) VALUES (1, 'z@x.com', 'on', 1, CURRENT_TIMESTAMP, "
                    "'on'), (1, 'm@x.com', NULL, NULL, NULL, 'on'), (2, 'a@x.com', 'off', 1, "
                    "CURRENT_TIMESTAMP, NULL)"
                )
            )
            before = _memberships(conn)
        migrate.upgrade(engine, "0013")
        indexes = {i["name"] for i in inspect(engine).get_indexes("memberships")}
        assert "ix_memberships_audience_value" in indexes
        with engine.begin() as conn:
            assert _memberships(conn) == before
            if sqlite:
                assert "WITHOUT ROWID" in _memberships_ddl(conn)
            with pytest.raises(IntegrityError), conn.begin_nested():
                conn.execute(
                    text("INSERT INTO memberships (audience_id, email) VALUES (1, 'z@x.com')")
                )
        migrate.downgrade(engine, "0012")
        with engine.begin() as conn:
            assert _memberships(conn) == before
            if sqlite:
                assert "WITHOUT ROWID" not in _memberships_ddl(conn)
        assert "ix_memberships_audience_value" in {
            i["name"] for i in inspect(engine).get_indexes("memberships")
        }
    finally:
        engine.dispose()
