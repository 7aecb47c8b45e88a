"""The CHECK constraints on status, trigger and action columns (revision 0004), on both
backends: built from the enums, refusing unknown values, and added to a database holding data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

import pytest
from sqlalchemy import CheckConstraint, column, insert, inspect, select, table, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from audience_sync.state import migrate
from audience_sync.state.db import make_engine, utcnow
from audience_sync.state.statuses import (
    AudienceKind,
    AudienceStatus,
    ChangeAction,
    ChangeStatus,
    ImportStatus,
    RunStatus,
    RunTrigger,
)
from audience_sync.state.tables import (
    audiences,
    import_results,
    listrak_imports,
    memberships,
    metadata,
    parked_contacts,
    run_audiences,
    run_changes,
    sync_runs,
)

EXPECTED: dict[str, type[StrEnum]] = {
    "ck_sync_runs_trigger": RunTrigger,
    "ck_sync_runs_status": RunStatus,
    "ck_run_audiences_status": AudienceStatus,
    "ck_parked_contacts_action": ChangeAction,
    "ck_listrak_imports_status": ImportStatus,
    "ck_run_changes_action": ChangeAction,
    "ck_run_changes_status": ChangeStatus,
    "ck_audiences_kind": AudienceKind,
}
CHECKED_TABLES = (
    "audiences",
    "sync_runs",
    "run_audiences",
    "parked_contacts",
    "listrak_imports",
    "run_changes",
)
BEFORE_CHECKS = "0003"
DATA_TABLES = (
    "audiences",
    "sync_runs",
    "run_audiences",
    "snapshot_members",
    "memberships",
    "parked_contacts",
    "listrak_imports",
    "run_changes",
    "import_results",
)
# Revision 0006 drops snapshot_members and carries its latest acted-on snapshot into
# memberships.desired (a member never confirmed gets a row without a value).
CARRIED = ("snapshot_members", "memberships")
snapshot_members = table(
    "snapshot_members", column("run_id"), column("audience_id"), column("email")
)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _quoted(sql: str) -> set[str]:
    return set(re.findall(r"'([^']*)'", sql))


def test_metadata_builds_each_check_from_its_enum() -> None:
    found = {
        str(c.name): _quoted(str(c.sqltext))
        for table in metadata.tables.values()
        for c in table.constraints
        if isinstance(c, CheckConstraint)
    }
    assert found == {name: {m.value for m in enum} for name, enum in EXPECTED.items()}


def test_migrated_database_has_the_metadata_checks(engine: Engine) -> None:
    migrate.upgrade(engine)
    inspector = inspect(engine)
    reflected = {
        str(c["name"]): _quoted(str(c["sqltext"]))
        for table in CHECKED_TABLES
        for c in inspector.get_check_constraints(table)
    }
    assert reflected == {name: {m.value for m in enum} for name, enum in EXPECTED.items()}


def test_an_unknown_status_trigger_or_action_is_refused(engine: Engine) -> None:
    migrate.upgrade(engine)
    run = {"started_at": utcnow(), "host": "h", "pid": 1}
    with engine.begin() as conn:
        conn.execute(
            insert(sync_runs).values(trigger=RunTrigger.MANUAL, status=RunStatus.RUNNING, **run)
        )
    for bad in ({"trigger": "cron", "status": "running"}, {"trigger": "manual", "status": "ok"}):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert(sync_runs).values(**bad, **run))
    with engine.begin() as conn:
        audience_id, run_id = _audience_and_run(conn)
        change = {"run_id": run_id, "audience_id": audience_id, "email": "a@x.com"}
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(run_changes).values(**change, action="yes", status="planned"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(run_changes).values(**change, action="on", status="sent"))
    with engine.connect() as conn:
        assert conn.execute(select(run_changes)).all() == []


def test_upgrade_keeps_data_written_before_the_checks_and_downgrade_too(engine: Engine) -> None:
    migrate.upgrade(engine, BEFORE_CHECKS)
    with engine.begin() as conn:
        _write_a_settled_run(conn)
    old_columns = {t: [c["name"] for c in inspect(engine).get_columns(t)] for t in DATA_TABLES}
    before = _dump(engine, old_columns)
    assert all(before[t] for t in DATA_TABLES)

    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    kept = {t: cols for t, cols in old_columns.items() if t != "snapshot_members"}
    after = _dump(engine, kept)
    assert {t: after[t] for t in kept if t not in CARRIED} == {
        t: before[t] for t in kept if t not in CARRIED
    }
    assert set(before["memberships"]) <= set(after["memberships"])
    with engine.connect() as conn:
        desired = dict(conn.execute(select(memberships.c.email, memberships.c.desired)).all())
    assert desired == {"a@x.com": "on", "b@x.com": "on"}
    _assert_foreign_keys_enforced(engine)

    migrate.downgrade(engine, BEFORE_CHECKS)
    assert _dump(engine, old_columns) == before
    assert all(not inspect(engine).get_check_constraints(t) for t in DATA_TABLES)
    _assert_foreign_keys_enforced(engine)


def _audience_and_run(conn: Connection) -> tuple[int, int]:
    now = utcnow()
    audience_id = conn.execute(
        insert(audiences).values(key="vip", list_id=1, created_at=now, updated_at=now)
    ).inserted_primary_key
    run_id = conn.execute(
        insert(sync_runs).values(
            trigger=RunTrigger.SCHEDULED,
            status=RunStatus.SUCCEEDED,
            started_at=now,
            host="h",
            pid=1,
        )
    ).inserted_primary_key
    assert audience_id is not None
    assert run_id is not None
    return int(audience_id[0]), int(run_id[0])


def _write_a_settled_run(conn: Connection) -> None:
    """One row in every table a run writes, as revision 0003's code wrote them."""
    now = utcnow()
    audience_id, run_id = _audience_and_run(conn)
    key = {"run_id": run_id, "audience_id": audience_id}
    conn.execute(insert(run_audiences).values(**key, status="done"))
    conn.execute(insert(snapshot_members), [{**key, "email": e} for e in ("a@x.com", "b@x.com")])
    conn.execute(
        insert(memberships).values(
            audience_id=audience_id,
            email="a@x.com",
            value="on",
            confirmed_run_id=run_id,
            confirmed_at=now,
        )
    )
    conn.execute(
        insert(parked_contacts).values(
            audience_id=audience_id,
            email="b@x.com",
            action="on",
            reason="NotSubscribed",
            run_id=run_id,
            parked_at=now,
        )
    )
    import_id = conn.execute(
        insert(listrak_imports).values(
            **key,
            list_id=1,
            field_id=2,
            part=1,
            route="list_import",
            file_name="f.csv",
            first_email="a@x.com",
            last_email="b@x.com",
            row_count=2,
            byte_count=40,
            status="finished",
            created_at=now,
        )
    ).inserted_primary_key
    assert import_id is not None
    conn.execute(
        insert(run_changes),
        [
            {**key, "email": "a@x.com", "action": "on", "status": "confirmed"},
            {**key, "email": "b@x.com", "action": "on", "status": "skipped"},
        ],
    )
    conn.execute(run_changes.update().values(import_id=int(import_id[0])))
    conn.execute(
        insert(import_results).values(import_id=int(import_id[0]), email="b@x.com", result="x")
    )


def _dump(engine: Engine, columns: dict[str, list[str]]) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's rows, over the columns given (those of the older revision)."""
    dump: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for name, cols in columns.items():
            names = ", ".join(f'"{c}"' for c in cols)
            rows = conn.execute(text(f'SELECT {names} FROM "{name}"')).all()
            dump[name] = sorted((tuple(r) for r in rows), key=repr)
    return dump


def _assert_foreign_keys_enforced(engine: Engine) -> None:
    """The rows still point at their parents, and the database still refuses orphans."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(run_audiences).values(run_id=999, audience_id=999, status="done"))
