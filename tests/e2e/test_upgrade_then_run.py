"""A state database written by the previous release (revision 0005: every run's snapshot staged
in ``snapshot_members``) is upgraded to head, keeps its confirmed state, parked skips, ledger and
history, and the next run plans only the real changes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from audience_sync.state import desired, migrate
from audience_sync.state.db import make_engine, utcnow
from audience_sync.state.tables import (
    memberships,
    parked_contacts,
    run_audiences,
    run_changes,
    sync_runs,
)
from tests.harness import LIST_ID, Harness

KEY = "vip"
FIELD = 300
A, B, C, D, E = (f"{name}@example.com" for name in "abcde")


def _write_release_0005_state(engine: Engine) -> None:
    """What the 0005 release left after two runs: run 1 (failed audience, its snapshot kept)
    and run 2 (done: a, b, c confirmed on, d skipped and parked, snapshot a-d)."""
    now = utcnow()
    hour_ago = now - timedelta(hours=1)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audiences (id, key, list_id, profile_field_id, source_description, "
                "created_at, updated_at) VALUES (1, :key, :list, :field, 'file', :t, :t)"
            ),
            {"key": KEY, "list": LIST_ID, "field": FIELD, "t": hour_ago},
        )
        for run_id, run_status, audience_status in (
            (1, "failed", "failed"),
            (2, "succeeded", "done"),
        ):
            conn.execute(
                text(
                    "INSERT INTO sync_runs (id, trigger, status, started_at, finished_at, host, "
                    "pid, planned_count, confirmed_count, skipped_count, failed_count) "
                    "VALUES (:r, 'scheduled', :s, :t, :t, 'h', 1, 0, 0, 0, 0)"
                ),
                {"r": run_id, "s": run_status, "t": hour_ago},
            )
            conn.execute(
                text(
                    "INSERT INTO run_audiences (run_id, audience_id, status, source_description, "
                    "rows_read, invalid_count, invalid_reasons, source_notes, snapshot_count, "
                    "confirmed_on_before, planned_on, planned_off, unchanged_count, parked_count) "
                    "VALUES (:r, 1, :s, 'file', 4, 0, '{}', '{}', 4, 0, 4, 0, 0, 0)"
                ),
                {"r": run_id, "s": audience_status},
            )
        staged = [(1, A), (2, A), (2, B), (2, C), (2, D), (2, B)]  # repeats were allowed
        conn.execute(
            text("INSERT INTO snapshot_members (run_id, audience_id, email) VALUES (:r, 1, :e)"),
            [{"r": r, "e": e} for r, e in staged],
        )
        conn.execute(
            text(
                "INSERT INTO memberships (audience_id, email, value, confirmed_run_id, "
                "confirmed_at) VALUES (1, :e, 'on', 2, :t)"
            ),
            [{"e": e, "t": hour_ago} for e in (A, B, C)],
        )
        conn.execute(
            text(
                "INSERT INTO parked_contacts (audience_id, email, action, reason, run_id, "
                "parked_at) VALUES (1, :e, 'on', 'NotSubscribed', 2, :t)"
            ),
            {"e": D, "t": hour_ago},
        )
        conn.execute(
            text(
                "INSERT INTO run_changes (run_id, audience_id, email, action, status, reason) "
                "VALUES (2, 1, :e, 'on', :s, :reason)"
            ),
            [{"e": e, "s": "confirmed", "reason": None} for e in (A, B, C)]
            + [{"e": D, "s": "skipped", "reason": "NotSubscribed"}],
        )
        if conn.dialect.name == "postgresql":
            for table in ("audiences", "sync_runs"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 2)"))


def test_a_database_of_the_previous_release_upgrades_and_then_runs(harness: Harness) -> None:
    h = harness
    h.extra_toml = "[guards]\nmax_removed_fraction = 0.5"
    h.add_contacts(subscribed=[A, B, C, D, E])
    h.add_audience(KEY, FIELD, [B, C, D, E])  # a left the audience, e joined
    h.sandbox.world.set_field_values(LIST_ID, FIELD, {A: "on", B: "on", C: "on"})
    engine = make_engine(h.state_url)
    try:
        migrate.upgrade(engine, "0005")
        _write_release_0005_state(engine)
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        with engine.connect() as conn:
            rows = conn.execute(
                select(memberships.c.email, memberships.c.value, memberships.c.desired)
            ).all()
            assert sorted(tuple(r) for r in rows) == [
                (A, "on", "on"),
                (B, "on", "on"),
                (C, "on", "on"),
                (D, None, "on"),  # a member Listrak skipped: wanted, never confirmed
            ]
            assert desired.snapshot_run(conn, 1) == 2  # the latest snapshot a run acted on
            assert desired.desired_at(conn, 1, 2) == {A, B, C, D}
            assert conn.execute(select(parked_contacts.c.email)).scalars().all() == [D]
            assert len(conn.execute(select(run_changes)).all()) == 4
            assert len(conn.execute(select(sync_runs)).all()) == 2
            assert len(conn.execute(select(run_audiences)).all()) == 2
    finally:
        engine.dispose()

    outcome = h.run()
    assert outcome.status == "succeeded"
    # only the real changes: a off, e on; d stays parked (its skip is recent)
    assert h.change_statuses(outcome.run_id) == {
        A: ("off", "confirmed", None),
        E: ("on", "confirmed", None),
    }
    assert h.members_on(KEY) == {B, C, E}
    assert h.confirmed() == {A: "off", B: "on", C: "on", E: "on"}
    with h.engine.connect() as conn:
        assert desired.desired_at(conn, 1, outcome.run_id) == {B, C, D, E}
    assert h.change_count(h.run().run_id) == 0
