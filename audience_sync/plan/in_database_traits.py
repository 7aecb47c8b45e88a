"""One computed trait's plan computed inside the PostgreSQL state database (``planner =
"in_database"``): :class:`~audience_sync.plan.traits.TraitSnapshot`'s rules written as SQL
over the source query's rows, in the caller's transaction.

Emails are normalised as for audiences (:mod:`~audience_sync.plan.sql_normalize`). Values are
formatted by :func:`~audience_sync.traits.values.format_array` itself: only the DISTINCT raw
values cross into Python (as the driver returns them, so typed as the embedded planner sees
them), and their formatted value or reason goes back to a TEMP table joined in SQL. A trait
usually has few distinct values; one with millions (a lifetime spend) moves that many values.

Staging tables are TEMP tables dropped at commit, named unqualified (the connection's
``search_path``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, MetaData, Table, Text, bindparam, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from audience_sync.errors import StateError
from audience_sync.plan.in_database import (
    FINGERPRINT_BITS,
    as_subquery,
    duckdb_fingerprint,
    planning_failed,
    query_failed,
)
from audience_sync.plan.sql_normalize import (
    MEMBERS_TABLE,
    classify_params,
    resolve_residual,
    stage_members_sql,
)
from audience_sync.plan.traits import CLEAR, CONFLICTING, SET, TraitCounts
from audience_sync.state.bulk import insert_batches
from audience_sync.state.parents import require_run_and_audience
from audience_sync.state.statuses import ChangeStatus
from audience_sync.state.tables import TS
from audience_sync.traits.values import FieldSpec, format_array, format_value

# Table names are composed from code only.
ROWS_TABLE = "indbt_rows"
DISTINCT_TABLE = "indbt_distinct"
FORMATTED_TABLE = "indbt_formatted"
SNAPSHOT_TABLE = "indbt_s"
UNPARK_TABLE = "indbt_unpark"
HELD_TABLE = "indbt_held"
FORMATTED_COLUMNS = ("raw", "value", "reason")
VALUE_PAGE_ROWS = 50_000
INVALID_PREFIX = "invalid value: "


@dataclass(frozen=True)
class TraitQuery:
    """The trait's source query as the in-database planner runs it."""

    query: str
    params: Mapping[str, Any]
    email_column: str  # plain identifiers, checked by the config (planner_placement)
    value_column: str
    trait_key: str
    scrub: Callable[[str], str]  # masks credentials and parameter values in a message


@dataclass(frozen=True)
class InDatabaseTraitOutcome:
    counts: TraitCounts
    rows_read: int
    invalid: dict[str, int]  # rows rejected for their email, by reason
    residual: int  # distinct emails normalised in Python
    distinct_values: int  # distinct raw values formatted in Python


def plan_trait_in_database(
    conn: Connection,
    source: TraitQuery,
    spec: FieldSpec,
    *,
    run_id: int,
    audience_id: int,
    full: bool,
    clear_missing: bool,
    parked_before: datetime,
    staged: Callable[[], None] = lambda: None,
) -> InDatabaseTraitOutcome:
    """Stage, diff and write the ledger in ``conn``'s transaction (the caller commits, before
    anything is sent). A failing source query raises :class:`SourceError`, a later failure
    :class:`PlanningError`; one line each, without SQL text or values."""
    _stage_rows(conn, source)
    try:
        rows_read, invalid, residual = _stage_emails(conn)
        distinct_values = _format_values(conn, spec)
        _stage_snapshot(conn, spec)
        staged()
        counts = _write_plan(
            conn,
            run_id=run_id,
            audience_id=audience_id,
            full=full,
            clear_missing=clear_missing,
            parked_before=parked_before,
        )
    except SQLAlchemyError as exc:
        raise planning_failed(f"trait {source.trait_key!r}", exc, source.scrub) from None
    return InDatabaseTraitOutcome(
        counts=counts,
        rows_read=rows_read,
        invalid=invalid,
        residual=residual,
        distinct_values=distinct_values,
    )


def _stage_rows(conn: Connection, source: TraitQuery) -> None:
    # Bound alone (the email rules are bound in a later statement): no reserved names.
    statement = (
        f"CREATE TEMP TABLE {ROWS_TABLE} ON COMMIT DROP AS SELECT "
        f"CAST(q.{source.email_column} AS text) AS raw_email, q.{source.value_column} AS native, "
        f"CAST(q.{source.value_column} AS text) AS raw_value "
        f"FROM {as_subquery(source.query)} AS q"
    )
    try:
        conn.execute(text(statement), dict(source.params))
    except (SQLAlchemyError, StateError) as exc:
        raise query_failed(f"trait {source.trait_key!r}", exc, source.scrub) from None


def _stage_emails(conn: Connection) -> tuple[int, dict[str, int], int]:
    """``indb_members``: each distinct raw email's canonical form or reason. Returns (rows
    read, rows rejected for their email by reason, residual emails normalised in Python)."""
    conn.execute(
        text(stage_members_sql(f"SELECT raw_email AS raw FROM {ROWS_TABLE}")), classify_params()
    )
    residual = resolve_residual(conn)
    by_reason = conn.execute(
        text(f"SELECT reason, sum(n) FROM {MEMBERS_TABLE} GROUP BY reason")
    ).all()
    rows_read = sum(int(n) for _, n in by_reason)
    invalid = {str(reason): int(n) for reason, n in by_reason if reason is not None}
    return rows_read, invalid, residual


def _format_values(conn: Connection, spec: FieldSpec) -> int:
    """``indbt_formatted (raw, value, reason)``: each distinct non-NULL raw value formatted by
    :func:`format_array`, paged by its text form. Returns how many values that was."""
    from audience_sync.sources.trait_sources import values_array

    conn.execute(
        text(
            f"CREATE TEMP TABLE {DISTINCT_TABLE} ON COMMIT DROP AS SELECT DISTINCT ON "
            f"(raw_value) raw_value AS raw, native FROM {ROWS_TABLE} "
            "WHERE raw_value IS NOT NULL ORDER BY raw_value"
        )
    )
    conn.execute(text(f'CREATE INDEX ON {DISTINCT_TABLE} (raw COLLATE "C")'))
    conn.execute(
        text(
            f"CREATE TEMP TABLE {FORMATTED_TABLE} (raw text PRIMARY KEY, value text, "
            "reason text) ON COMMIT DROP"
        )
    )
    page = text(
        f"SELECT raw, native FROM {DISTINCT_TABLE} WHERE CAST(:after AS text) IS NULL "
        f'OR raw COLLATE "C" > :after ORDER BY raw COLLATE "C" LIMIT {VALUE_PAGE_ROWS}'
    )
    formatted = Table(FORMATTED_TABLE, MetaData(), *(Column(c, Text) for c in FORMATTED_COLUMNS))
    after: str | None = None
    total = 0
    while True:
        rows = conn.execute(page, {"after": after}).all()
        if not rows:
            break
        values, reasons = format_array(spec, values_array([native for _, native in rows]))
        raws = [raw for raw, _ in rows]
        mapping = list(zip(raws, values.to_pylist(), reasons.to_pylist(), strict=True))
        insert_batches(conn, formatted, FORMATTED_COLUMNS, [mapping])  # COPY
        total += len(rows)
        after = str(rows[-1][0])
    return total


def _stage_snapshot(conn: Connection, spec: FieldSpec) -> None:
    """``indbt_s (email, value, reason)``: one row per valid email, its value when all its
    rows agree, else ``conflicting_values`` (as :meth:`TraitSnapshot.compute`)."""
    missing = format_value(spec, None)
    agreed = "count(DISTINCT coalesce('v' || r.value, 'r' || r.reason)) = 1"
    conn.execute(
        text(
            f"CREATE TEMP TABLE {SNAPSHOT_TABLE} ON COMMIT DROP AS "
            f"SELECT r.email, CASE WHEN {agreed} THEN min(r.value) END AS value, "
            f"CASE WHEN {agreed} THEN min(r.reason) ELSE CAST(:conflicting AS text) END "
            "AS reason FROM (SELECT m.email, "
            "CASE WHEN t.raw_value IS NULL THEN CAST(:missing_value AS text) ELSE f.value END "
            "AS value, "
            "CASE WHEN t.raw_value IS NULL THEN CAST(:missing_reason AS text) ELSE f.reason END "
            f"AS reason FROM {ROWS_TABLE} AS t JOIN {MEMBERS_TABLE} AS m ON m.raw = t.raw_email "
            f"LEFT JOIN {FORMATTED_TABLE} AS f ON f.raw = t.raw_value "
            "WHERE m.email IS NOT NULL) AS r GROUP BY r.email"
        ),
        {
            "conflicting": CONFLICTING,
            "missing_value": missing.value,
            "missing_reason": missing.reason,
        },
    )
    conn.execute(text(f"CREATE UNIQUE INDEX ON {SNAPSHOT_TABLE} (email)"))
    # Temporary tables are never analysed by autovacuum; the joins below need sizes.
    conn.execute(text(f"ANALYZE {SNAPSHOT_TABLE}"))


# Bound values typed for PostgreSQL, which cannot deduce one type for a parameter used both
# as an inserted value and in a comparison.
_SET = "CAST(:set AS text)"
_CLEAR = "CAST(:clear AS text)"
_STATE = "memberships AS m ON m.audience_id = :a AND m.email = {}.email"
_IN_S = f"SELECT 1 FROM {SNAPSHOT_TABLE} AS s WHERE s.email = {{}}.email"
_IN_SV = _IN_S + " AND s.value IS NOT NULL"
_NOT_HELD = (
    f"NOT EXISTS (SELECT 1 FROM {HELD_TABLE} AS h WHERE h.email = {{}}.email AND h.action = {{}})"
)
_PLAN = "INSERT INTO run_changes (run_id, audience_id, email, action, value, status) "


def _write_plan(
    conn: Connection,
    *,
    run_id: int,
    audience_id: int,
    full: bool,
    clear_missing: bool,
    parked_before: datetime,
) -> TraitCounts:
    require_run_and_audience(conn, run_id=run_id, audience_id=audience_id, what="planned changes")
    p: dict[str, Any] = {
        "r": run_id,
        "a": audience_id,
        "set": SET,
        "clear": CLEAR,
        "planned": ChangeStatus.PLANNED.value,
        "skipped": ChangeStatus.SKIPPED.value,
        "prefix": INVALID_PREFIX,
        "cutoff": parked_before,
    }

    def run(sql: str) -> int:
        statement = text(sql)
        if ":cutoff" in sql:
            statement = statement.bindparams(bindparam("cutoff", type_=TS))
        return int(conn.execute(statement, {k: v for k, v in p.items() if f":{k}" in sql}).rowcount)

    def one(sql: str) -> Any:
        return conn.execute(text(sql), {k: v for k, v in p.items() if f":{k}" in sql}).one()

    # Parked skips that no longer apply: a 'set' whose value is no longer the desired one (or
    # no longer valid), a 'clear' whose contact is back in the source.
    run(
        f"CREATE TEMP TABLE {UNPARK_TABLE} ON COMMIT DROP AS "
        f"SELECT p.email, p.action FROM parked_contacts AS p WHERE p.audience_id = :a "
        f"AND p.action = {_SET} AND (NOT EXISTS ({_IN_SV.format('p')}) OR EXISTS ("
        f"SELECT 1 FROM {SNAPSHOT_TABLE} AS s LEFT JOIN {_STATE.format('s')} "
        "WHERE s.email = p.email AND s.value IS NOT NULL AND s.value IS DISTINCT FROM m.desired))"
        " UNION ALL SELECT p.email, p.action FROM parked_contacts AS p WHERE p.audience_id = :a "
        f"AND p.action = {_CLEAR} AND EXISTS ({_IN_S.format('p')})"
    )
    run(
        f"CREATE TEMP TABLE {HELD_TABLE} ON COMMIT DROP AS SELECT p.email, p.action "
        "FROM parked_contacts AS p WHERE p.audience_id = :a AND p.parked_at >= :cutoff "
        f"AND NOT EXISTS (SELECT 1 FROM {UNPARK_TABLE} AS u WHERE u.email = p.email "
        "AND u.action = p.action)"
    )
    snapshot, valid, fingerprint = one(
        "SELECT count(*), count(value), CAST(bit_xor(CAST('x' || md5(convert_to(email, 'UTF8')"
        " || decode('00', 'hex') || convert_to(coalesce(value, ''), 'UTF8') || decode('00', 'hex')"
        f" || convert_to(coalesce(reason, ''), 'UTF8')) AS bit({FINGERPRINT_BITS}))) AS text) "
        f"FROM {SNAPSHOT_TABLE}"
    )
    invalid = {
        str(reason): int(n)
        for reason, n in conn.execute(
            text(f"SELECT reason, count(*) FROM {SNAPSHOT_TABLE} WHERE value IS NULL GROUP BY 1")
        )
    }
    confirmed = one(
        "SELECT count(*) FROM memberships WHERE audience_id = :a AND value IS NOT NULL"
    )[0]
    changed_values = one(
        f"SELECT count(*) FROM {SNAPSHOT_TABLE} AS s JOIN {_STATE.format('s')} "
        "WHERE s.value <> m.value"
    )[0]
    held = {
        str(action): int(n)
        for action, n in conn.execute(text(f"SELECT action, count(*) FROM {HELD_TABLE} GROUP BY 1"))
    }
    set_from = f"SELECT :r, :a, s.email, {_SET}, s.value, :planned FROM {SNAPSHOT_TABLE} AS s "
    if full:
        planned_set = run(_PLAN + set_from + "WHERE s.value IS NOT NULL")
    else:
        planned_set = run(
            _PLAN + set_from + f"LEFT JOIN {_STATE.format('s')} WHERE s.value IS NOT NULL "
            f"AND s.value IS DISTINCT FROM m.value AND {_NOT_HELD.format('s', _SET)}"
        )
    planned_clear = 0
    if clear_missing:
        not_held = "" if full else f" AND {_NOT_HELD.format('m', _CLEAR)}"
        planned_clear = run(
            _PLAN + f"SELECT :r, :a, m.email, {_CLEAR}, NULL, :planned FROM memberships AS m "
            f"WHERE m.audience_id = :a AND m.value IS NOT NULL AND NOT EXISTS ({_IN_S.format('m')})"
            + not_held
        )
    run(
        "INSERT INTO run_changes (run_id, audience_id, email, action, reason, status) "
        f"SELECT :r, :a, s.email, {_SET}, CAST(:prefix AS text) || s.reason, :skipped "
        f"FROM {SNAPSHOT_TABLE} AS s WHERE s.value IS NULL"
    )
    deltas = run(
        "INSERT INTO recorded_deltas (run_id, audience_id, email, desired) "
        f"SELECT :r, :a, s.email, s.value FROM {SNAPSHOT_TABLE} AS s "
        f"LEFT JOIN {_STATE.format('s')} WHERE s.value IS NOT NULL "
        "AND s.value IS DISTINCT FROM m.desired UNION ALL "
        "SELECT :r, :a, m.email, NULL FROM memberships AS m WHERE m.audience_id = :a "
        f"AND m.desired IS NOT NULL AND NOT EXISTS ({_IN_S.format('m')})"
    )
    unpark = run(
        f"DELETE FROM parked_contacts AS p USING {UNPARK_TABLE} AS u WHERE p.audience_id = :a "
        "AND p.email = u.email AND p.action = u.action"
    )
    return TraitCounts(
        snapshot=int(snapshot),
        valid=int(valid),
        invalid=invalid,
        confirmed_before=int(confirmed),
        planned_set=planned_set,
        planned_clear=planned_clear,
        changed=int(changed_values) + planned_clear,
        parked_set=0 if full else held.get(SET, 0),
        parked_clear=0 if full or not clear_missing else held.get(CLEAR, 0),
        unpark=unpark,
        deltas=deltas,
        fingerprint=duckdb_fingerprint(fingerprint),
    )
