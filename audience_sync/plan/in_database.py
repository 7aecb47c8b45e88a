"""One audience's plan computed inside the PostgreSQL state database (``planner =
"in_database"``): the source query's members staged by ``INSERT ... SELECT``, normalised in
SQL (:mod:`~audience_sync.plan.sql_normalize`), diffed against ``memberships`` and written to
the ledger by set-based statements, all in the caller's transaction. The rules are
:class:`~audience_sync.plan.engine.SnapshotPlan`'s, written as SQL; no member row passes
through Python (only the distinct residual values the SQL rules cannot normalise).

Staging tables are TEMP tables dropped at commit; the statements name tables unqualified, so
they follow the connection's ``search_path``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from audience_sync.errors import PlanningError, SourceError, StateError
from audience_sync.plan.engine import Counts
from audience_sync.plan.sql_normalize import (
    MEMBERS_TABLE,
    classify_params,
    resolve_residual,
    stage_members_sql,
)
from audience_sync.state.parents import require_run_and_audience
from audience_sync.state.statuses import ChangeAction, ChangeStatus
from audience_sync.state.tables import TS

SNAPSHOT_TABLE = "indb_snapshot"
DIFF_TABLE = "indb_diff"
ON = ChangeAction.ON.value
OFF = ChangeAction.OFF.value
FINGERPRINT_BITS = 128


@dataclass(frozen=True)
class SourceQuery:
    """The audience's source query as the in-database planner runs it."""

    query: str
    params: Mapping[str, Any]
    email_column: str  # a plain identifier, checked by the config (planner_placement)
    audience_key: str
    scrub: Callable[[str], str]  # masks credentials and parameter values in a message


@dataclass(frozen=True)
class InDatabaseOutcome:
    counts: Counts
    rows_read: int
    invalid: dict[str, int]
    residual: int


def plan_in_database(
    conn: Connection,
    source: SourceQuery,
    *,
    run_id: int,
    audience_id: int,
    full: bool,
    parked_before: datetime,
    reconcile: bool = False,
    staged: Callable[[], None] = lambda: None,
) -> InDatabaseOutcome:
    """Stage, diff and write the ledger in ``conn``'s transaction (the caller commits, before
    anything is sent). ``staged`` runs once the snapshot is staged, before the ledger writes.

    A failing source query raises :class:`SourceError`; a later failure of the state
    database its :class:`StateError` (the run stops, as when the embedded planner's ledger
    write fails). One line each, without SQL text or values."""
    rows_read, invalid, residual = stage_snapshot(conn, source)
    staged()
    try:
        counts = write_plan(
            conn,
            run_id=run_id,
            audience_id=audience_id,
            full=full,
            parked_before=parked_before,
            reconcile=reconcile,
        )
    except SQLAlchemyError as exc:
        raise PlanningError(
            f"audience {source.audience_key!r}: in-database planning failed: "
            f"{source.scrub(_first_line(exc))}"
        ) from None
    return InDatabaseOutcome(counts=counts, rows_read=rows_read, invalid=invalid, residual=residual)


def stage_snapshot(conn: Connection, source: SourceQuery) -> tuple[int, dict[str, int], int]:
    """``indb_snapshot``: the distinct canonical emails of the source query. Returns (rows
    read, rejected rows by reason, distinct residual values normalised in Python)."""
    params = classify_params()
    clash = sorted(set(params) & set(source.params))
    if clash:
        raise SourceError(
            f"audience {source.audience_key!r}: source parameter name(s) {', '.join(clash)} "
            "are reserved by the in-database planner"
        )
    raw_values = (
        f"SELECT CAST(source_query.{source.email_column} AS text) AS raw "
        f"FROM {as_subquery(source.query)} AS source_query"
    )
    owner = f"audience {source.audience_key!r}"
    try:
        conn.execute(text(stage_members_sql(raw_values)), {**params, **source.params})
    except (SQLAlchemyError, StateError) as exc:
        raise query_failed(owner, exc, source.scrub) from None
    try:
        residual = resolve_residual(conn)
        by_reason = conn.execute(
            text(f"SELECT reason, sum(n) FROM {MEMBERS_TABLE} GROUP BY reason")
        ).all()
        conn.execute(
            text(
                f"CREATE TEMP TABLE {SNAPSHOT_TABLE} ON COMMIT DROP AS "
                f"SELECT DISTINCT email FROM {MEMBERS_TABLE} WHERE email IS NOT NULL"
            )
        )
        # Temporary tables are never analysed by autovacuum; the diff's join plans need sizes.
        conn.execute(text(f"ANALYZE {SNAPSHOT_TABLE}"))
    except SQLAlchemyError as exc:
        raise planning_failed(owner, exc, source.scrub) from None
    rows_read = sum(int(n) for _, n in by_reason)
    invalid = {str(reason): int(n) for reason, n in by_reason if reason is not None}
    return rows_read, invalid, residual


# Bound values typed for PostgreSQL, which cannot deduce one type for a parameter used both
# as an inserted value and in a comparison.
_ON = "CAST(:on AS text)"
_OFF = "CAST(:off AS text)"
_PLANNED = "CAST(:planned AS text)"
_IN_SNAPSHOT = f"SELECT 1 FROM {SNAPSHOT_TABLE} AS s WHERE s.email = {{}}.email"
_RECENTLY_PARKED = (
    "SELECT 1 FROM parked_contacts AS p WHERE p.audience_id = :a AND p.email = {}.email "
    "AND p.action = CAST(:{} AS text) AND p.parked_at >= :cutoff"
)
# One join of the snapshot with the audience's confirmed-or-desired ``on`` rows, keeping only
# the emails where they differ: every change and delta is among them, and they are few.
_DIFF = (
    f"CREATE TEMP TABLE {DIFF_TABLE} ON COMMIT DROP AS "
    "SELECT coalesce(s.email, m.email) AS email, s.email IS NOT NULL AS in_snapshot, "
    f"coalesce(m.value = {_ON}, false) AS confirmed_on, "
    f"coalesce(m.desired = {_ON}, false) AS desired_on "
    f"FROM {SNAPSHOT_TABLE} AS s FULL JOIN (SELECT email, value, desired FROM memberships "
    f"WHERE audience_id = :a AND (value = {_ON} OR desired = {_ON})) AS m ON m.email = s.email "
    f"WHERE s.email IS NULL OR m.email IS NULL OR m.value IS DISTINCT FROM {_ON} "
    f"OR m.desired IS DISTINCT FROM {_ON}"
)
_PLAN_CHANGE = "INSERT INTO run_changes (run_id, audience_id, email, action, status) "
_RECORD_DELTA = "INSERT INTO recorded_deltas (run_id, audience_id, email, desired) "


def write_plan(
    conn: Connection,
    *,
    run_id: int,
    audience_id: int,
    full: bool,
    parked_before: datetime,
    reconcile: bool,
) -> Counts:
    """The diff of ``indb_snapshot`` against the audience's state, written as the ledger's
    planned changes, the desired-value deltas and the unparked skips
    (:class:`~audience_sync.plan.engine.SnapshotPlan`'s rules)."""
    require_run_and_audience(conn, run_id=run_id, audience_id=audience_id, what="planned changes")
    p: dict[str, Any] = {
        "r": run_id,
        "a": audience_id,
        "on": ON,
        "off": OFF,
        "planned": ChangeStatus.PLANNED.value,
        "cutoff": parked_before,
    }

    def run(sql: str) -> int:
        statement = text(sql)
        if ":cutoff" in sql:
            statement = statement.bindparams(bindparam("cutoff", type_=TS))
        return int(conn.execute(statement, {k: v for k, v in p.items() if f":{k}" in sql}).rowcount)

    snapshot, fingerprint = conn.execute(
        text(
            f"SELECT count(*), CAST(bit_xor(CAST('x' || md5(email) AS bit({FINGERPRINT_BITS})))"
            f" AS text) FROM {SNAPSHOT_TABLE}"
        )
    ).one()
    confirmed_on = conn.execute(
        text(f"SELECT count(*) FROM memberships WHERE audience_id = :a AND value = {_ON}"),
        {"a": audience_id, "on": ON},
    ).scalar_one()
    run(_DIFF)
    conn.execute(text(f"ANALYZE {DIFF_TABLE}"))
    if full:
        planned_on = run(
            f"{_PLAN_CHANGE}SELECT :r, :a, s.email, {_ON}, {_PLANNED} FROM {SNAPSHOT_TABLE} AS s"
        )
    else:
        planned_on = run(
            f"{_PLAN_CHANGE}SELECT :r, :a, d.email, {_ON}, {_PLANNED} FROM {DIFF_TABLE} AS d "
            "WHERE d.in_snapshot AND NOT d.confirmed_on "
            f"AND NOT EXISTS ({_RECENTLY_PARKED.format('d', 'on')})"
        )
    off_filter = "" if full else f" AND NOT EXISTS ({_RECENTLY_PARKED.format('d', 'off')})"
    planned_off = run(
        f"{_PLAN_CHANGE}SELECT :r, :a, d.email, {_OFF}, {_PLANNED} FROM {DIFF_TABLE} AS d "
        "WHERE NOT d.in_snapshot AND d.confirmed_on" + off_filter
    )
    reconcile_off = 0
    if reconcile:
        reconcile_off = run(
            f"{_PLAN_CHANGE}SELECT :r, :a, l.email, {_OFF}, {_PLANNED} FROM (SELECT DISTINCT "
            f"email FROM listrak_values WHERE audience_id = :a AND value = {_ON}) AS l "
            f"WHERE NOT EXISTS ({_IN_SNAPSHOT.format('l')}) AND NOT EXISTS (SELECT 1 FROM "
            "run_changes AS c WHERE c.run_id = :r AND c.audience_id = :a AND c.email = l.email)"
        )
    delta_on = run(
        f"{_RECORD_DELTA}SELECT :r, :a, d.email, {_ON} FROM {DIFF_TABLE} AS d "
        "WHERE d.in_snapshot AND NOT d.desired_on"
    )
    delta_off = run(
        f"{_RECORD_DELTA}SELECT :r, :a, d.email, {_OFF} FROM {DIFF_TABLE} AS d "
        "WHERE NOT d.in_snapshot AND d.desired_on"
    )
    # Parked skips whose desired value changed; the diff above does not depend on them (a
    # parked 'on' left the snapshot, a parked 'off' is in it).
    unpark = run(
        "DELETE FROM parked_contacts AS p WHERE p.audience_id = :a AND ("
        f"(p.action = {_ON} AND NOT EXISTS ({_IN_SNAPSHOT.format('p')})) OR "
        f"(p.action = {_OFF} AND EXISTS ({_IN_SNAPSHOT.format('p')})))"
    )
    parked: dict[str, int] = {}
    if not full:
        statement = text(
            "SELECT action, count(*) FROM parked_contacts WHERE audience_id = :a "
            "AND parked_at >= :cutoff GROUP BY action"
        ).bindparams(bindparam("cutoff", type_=TS))
        parked = {
            str(action): int(n)
            for action, n in conn.execute(statement, {"a": audience_id, "cutoff": parked_before})
        }
    return Counts(
        snapshot=int(snapshot),
        fingerprint=duckdb_fingerprint(fingerprint),
        confirmed_on_before=int(confirmed_on),
        planned_on=planned_on,
        planned_off=planned_off,
        reconcile_off=reconcile_off,
        parked_on=parked.get(ON, 0),
        parked_off=parked.get(OFF, 0),
        unpark=unpark,
        delta_on=delta_on,
        delta_off=delta_off,
    )


def duckdb_fingerprint(md5_xor_bits: str | None) -> str:
    """The embedded planner's fingerprint from the XOR of the emails' MD5 digests as a bit
    string: DuckDB's ``md5_number`` reads a digest as a little-endian integer, and ``hex``
    prints it without leading zeros (``'0'`` for an empty snapshot)."""
    if md5_xor_bits is None:
        return "0"
    digest = int(md5_xor_bits, 2).to_bytes(FINGERPRINT_BITS // 8, "big")
    return format(int.from_bytes(digest, "little"), "x")


def _first_line(exc: SQLAlchemyError) -> str:
    from audience_sync.sources.sql import error_line

    return error_line(exc)


def as_subquery(query: str) -> str:
    """A configured source query, ready to stand in ``FROM (...)``."""
    return f"({query.strip().rstrip(';')})"


def query_failed(
    owner: str, exc: SQLAlchemyError | StateError, scrub: Callable[[str], str]
) -> SourceError:
    """A source query that failed in the state database (bad SQL, no permission to read or to
    create temporary tables): one line for ``owner`` (an audience or a trait), values masked.
    It fails only that unit; the StateError the state engine raises would stop the run."""
    cause = exc.cause if isinstance(exc, StateError) else _first_line(exc)
    return SourceError(f"{owner}: the source query failed in the state database: {scrub(cause)}")


def planning_failed(owner: str, exc: SQLAlchemyError, scrub: Callable[[str], str]) -> PlanningError:
    """A statement of the in-database plan that failed after staging, in one line."""
    return PlanningError(f"{owner}: in-database planning failed: {scrub(_first_line(exc))}")
