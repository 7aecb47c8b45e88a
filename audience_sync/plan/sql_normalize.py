""":func:`~audience_sync.normalize.normalize_email` inside PostgreSQL, for the in-database
planner: the same canonical forms and reasons, with no member row passing through Python.

SQL cannot do IDNA 2008 or Unicode NFC and lowercasing exactly as Python does, so each
distinct raw value is classified in SQL as

* simple: plain ASCII matching :data:`~audience_sync.normalize._SIMPLE_EMAIL` once the ASCII
  whitespace around it is trimmed and it is lowercased in the "C" collation (which only maps
  A-Z). The pattern starts and ends with a non-space character, so ``str.strip()`` (which
  strips more, e.g. ``\\x1c``) removes exactly what ``btrim`` does, and the canonical form is
  the one the Arrow path computes: proven equal there, and the same RE2-compatible pattern is
  evaluated here by PostgreSQL's regex engine;
* empty: NULL, or nothing but that ASCII whitespace;
* residual: everything else. Only these distinct values are read, normalised by
  ``normalize_email`` in Python and written back to a mapping table joined in SQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from audience_sync.normalize import _LONG_LABEL, _SIMPLE_EMAIL, MAX_EMAIL_LENGTH, normalize_email

ASCII_WHITESPACE = " \t\n\x0b\x0c\r"
LONG_LABEL_OCTETS = 64  # what _LONG_LABEL finds: a host label of 64 octets or more
RESIDUAL_PAGE_ROWS = 50_000
# Table names are composed from code only; the statements use them as identifiers.
MEMBERS_TABLE = "indb_members"
RESIDUAL_TABLE = "indb_residual"
RESIDUAL = "email IS NULL AND reason IS NULL"


def classify_params() -> dict[str, Any]:
    """The bound values of :func:`stage_members_sql`: the rules, never formatted into SQL."""
    return {
        "nz_whitespace": ASCII_WHITESPACE,
        "nz_simple": _SIMPLE_EMAIL,
        "nz_long_label": _LONG_LABEL,
        "nz_max_length": MAX_EMAIL_LENGTH,
        "nz_label_limit": LONG_LABEL_OCTETS,
    }


def stage_members_sql(raw_values: str) -> str:
    """``CREATE TEMP TABLE indb_members (raw, n, email, reason)`` from ``raw_values``, a
    subquery with one text column ``raw`` (one row per source row): each distinct raw value
    once with its number of rows, its canonical form if simple, ``'empty'`` if blank; both
    NULL for a residual value. Dropped at commit."""
    return (
        f"CREATE TEMP TABLE {MEMBERS_TABLE} ON COMMIT DROP AS "
        "SELECT raw, n, "
        "CASE WHEN octet_length(canon) <= :nz_max_length AND canon ~ :nz_simple "
        # A label is no longer than its domain: the costly unanchored pattern runs only on
        # domains of 64 characters or more.
        "AND (octet_length(canon) - strpos(canon, '@') < :nz_label_limit "
        "OR canon !~ :nz_long_label) THEN canon END AS email, "
        # Blank: nothing left once the ASCII whitespace is trimmed.
        "CASE WHEN raw IS NULL OR canon = '' THEN 'empty' END AS reason "
        'FROM (SELECT raw, n, lower(btrim(raw, :nz_whitespace) COLLATE "C") AS canon '
        f"FROM (SELECT raw, count(*) AS n FROM ({raw_values}) AS source_rows GROUP BY raw) "
        # OFFSET 0 keeps PostgreSQL from inlining ``canon`` into each of its five uses, which
        # computed it five times a row.
        "AS grouped OFFSET 0) AS classified"
    )


def resolve_residual(conn: Connection) -> int:
    """Normalise the residual values of ``indb_members`` with ``normalize_email`` and write
    their canonical form or reason back; returns how many distinct values that was."""
    conn.execute(
        text(
            f"CREATE TEMP TABLE {RESIDUAL_TABLE} (raw text PRIMARY KEY, email text, "
            "reason text) ON COMMIT DROP"
        )
    )
    page = text(
        f"SELECT raw FROM {MEMBERS_TABLE} WHERE {RESIDUAL} AND (CAST(:after AS text) IS NULL "
        f'OR raw COLLATE "C" > :after) ORDER BY raw COLLATE "C" LIMIT {RESIDUAL_PAGE_ROWS}'
    )
    insert = text(f"INSERT INTO {RESIDUAL_TABLE} (raw, email, reason) VALUES (:r, :e, :why)")
    after: str | None = None
    total = 0
    while True:
        values = [str(v) for v in conn.execute(page, {"after": after}).scalars()]
        if not values:
            break
        rows = []
        for raw in values:
            email, reason = normalize_email(raw)
            rows.append({"r": raw, "e": email, "why": reason})
        conn.execute(insert, rows)
        total += len(values)
        after = values[-1]
    if total:
        conn.execute(
            text(
                f"UPDATE {MEMBERS_TABLE} AS m SET email = r.email, reason = r.reason "
                f"FROM {RESIDUAL_TABLE} AS r WHERE m.raw = r.raw"
            )
        )
    return total
