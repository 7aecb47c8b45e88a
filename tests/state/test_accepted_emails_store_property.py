"""Property: every address the validator accepts survives the state database and the import file.

Planning goes through the real path (DuckDB, then the bulk writes: COPY on PostgreSQL,
executemany on SQLite); the planned change and the desired-value delta read back unchanged, and
so does the planner's read of confirmed state; the import CSV built from it parses back to the
same address.
"""

from __future__ import annotations

import base64
import csv
import io

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from audience_sync.listrak.imports import build_import_file, split_into_parts
from audience_sync.normalize import normalize_email
from audience_sync.plan.engine import EngineSettings, SnapshotPlan
from audience_sync.plan.writer import plan_emails
from audience_sync.state import ledger
from audience_sync.state.db import utcnow
from audience_sync.state.statuses import RunTrigger
from audience_sync.state.tables import (
    memberships,
    recorded_deltas,
    run_changes,
    snapshot_deltas,
)
from tests.conftest import backend_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Both backends; PostgreSQL's cases (the slowest here) run in `make test-slow`,
    which keeps `make test` under four minutes. CI runs both."""
    return backend_url(request)


_ANY_TEXT = st.text(st.characters(codec=None), min_size=1, max_size=12)
_LABEL = st.one_of(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), _ANY_TEXT)
_TLD = st.sampled_from(["com", "de", "xn--p1ai", "\u0440\u0444", "co", "x-y"])
_RAW = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join([*labels, tld])}",
    st.one_of(_ANY_TEXT, st.from_regex(r"[a-z0-9.+_'-]{1,10}", fullmatch=True)),
    st.lists(_LABEL, min_size=1, max_size=3),
    _TLD,
)


def _plan_and_read_back(engine: Engine, email: str) -> list[list[str]]:
    with engine.begin() as conn:
        run_id = ledger.create_run(conn, trigger=RunTrigger.MANUAL)
        audience_id = ledger.upsert_audience(
            conn, key="probe", list_id=1, field_id=None, source="test"
        )
        ledger.start_run_audience(conn, run_id, audience_id, source="test")
    plan_emails(
        engine, [email], run_id=run_id, audience_id=audience_id, full=False, parked_before=utcnow()
    )
    with engine.begin() as conn:
        planned = list(
            conn.execute(
                select(run_changes.c.email).where(run_changes.c.run_id == run_id)
            ).scalars()
        )
        deltas = list(
            conn.execute(
                select(snapshot_deltas.c.email).where(snapshot_deltas.c.run_id == run_id)
            ).scalars()
        )
        conn.execute(memberships.insert().values(audience_id=audience_id, email=email, value="on"))
    # and the planner reads it back from confirmed state: nothing to turn on again
    with SnapshotPlan(EngineSettings()) as snapshot:
        snapshot.load_state(engine, audience_id, parked_before=utcnow())
        confirmed = [
            row[0]
            for row in snapshot.duck.execute(
                "SELECT email FROM state WHERE flags & 1 = 1"
            ).fetchall()
        ]
    with engine.begin() as conn:
        for table in (run_changes, recorded_deltas, memberships):
            conn.execute(delete(table))
    return [planned, deltas, confirmed]


def _through_import_file(email: str) -> str:
    (part,) = split_into_parts([(email, "on")], column_name="vip", max_bytes=10_000)
    body = base64.b64decode(build_import_file(part, file_name="f.csv", field_id=1).fileStream)
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    assert rows[0] == ["EmailAddress", "vip"]
    assert len(rows) == 2
    return rows[1][0]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_RAW)
@example("user@b\u00fccher.de")
@example("o'neil+tag@example.com")
@example("\u00e9l\u00e8ve@\u00e9cole.fr")
@example("a\u2028b@example.com")
def test_an_accepted_address_survives_the_database_and_the_import_file(
    engine: Engine, raw: str
) -> None:
    email, _ = normalize_email(raw)
    if email is None:
        return
    assert _plan_and_read_back(engine, email) == [[email], [email], [email]]
    assert _through_import_file(email) == email
