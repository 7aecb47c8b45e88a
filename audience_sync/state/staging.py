"""Staging one run's snapshot of an audience in chunks, and the queries over staged snapshots.

One row per (run, audience, email) read from the source; repeats across chunks are allowed and
collapsed where the snapshot is read, so staging is a plain bulk insert (COPY on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from audience_sync.state.tables import snapshot_members


def stage_emails(conn: Connection, run_id: int, audience_id: int, emails: Sequence[str]) -> None:
    """Bulk-insert one chunk of normalised emails (COPY on PostgreSQL, executemany elsewhere)."""
    if not emails:
        return
    if conn.dialect.name == "postgresql":
        _copy_postgres(conn, run_id, audience_id, emails)
        return
    if conn.dialect.name == "sqlite":
        _insert_sqlite(conn, run_id, audience_id, emails)
        return
    conn.execute(
        insert(snapshot_members),
        [{"run_id": run_id, "audience_id": audience_id, "email": e} for e in emails],
    )


def _insert_sqlite(conn: Connection, run_id: int, audience_id: int, emails: Sequence[str]) -> None:
    # Straight to the driver (no per-row dicts), in index order so the B-tree inserts stay
    # local: 1M members staged in ~5 s instead of ~10 s.
    driver = conn.connection.driver_connection
    assert driver is not None, "an open connection has its driver connection"
    cursor = driver.cursor()
    try:
        cursor.executemany(
            "INSERT INTO snapshot_members (run_id, audience_id, email) VALUES (?, ?, ?)",
            [(run_id, audience_id, email) for email in sorted(emails)],
        )
    finally:
        cursor.close()


def _copy_postgres(conn: Connection, run_id: int, audience_id: int, emails: Sequence[str]) -> None:
    raw = conn.connection.driver_connection
    assert raw is not None, "an open connection has its driver connection"
    with (
        raw.cursor() as cursor,
        cursor.copy("COPY snapshot_members (run_id, audience_id, email) FROM STDIN") as copy,
    ):
        for email in emails:
            copy.write_row((run_id, audience_id, email))


def snapshot_query(run_id: int, audience_id: int) -> Select[tuple[str]]:
    """The distinct emails of one staged snapshot."""
    return (
        select(snapshot_members.c.email)
        .where(snapshot_members.c.run_id == run_id, snapshot_members.c.audience_id == audience_id)
        .distinct()
    )


def snapshot_size(conn: Connection, run_id: int, audience_id: int) -> int:
    query = select(func.count(func.distinct(snapshot_members.c.email))).where(
        snapshot_members.c.run_id == run_id, snapshot_members.c.audience_id == audience_id
    )
    return int(conn.execute(query).scalar_one())


def drop_staged(conn: Connection, run_id: int, audience_id: int) -> None:
    """Forget a snapshot that was not read completely."""
    conn.execute(
        delete(snapshot_members).where(
            snapshot_members.c.run_id == run_id, snapshot_members.c.audience_id == audience_id
        )
    )


def drop_snapshots_before(conn: Connection, audience_id: int, run_id: int) -> None:
    """Keep only the newest staged snapshot of an audience (the one ``verify`` compares with)."""
    conn.execute(
        delete(snapshot_members).where(
            snapshot_members.c.audience_id == audience_id, snapshot_members.c.run_id < run_id
        )
    )
