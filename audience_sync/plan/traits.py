"""One computed trait's plan in DuckDB: (email, value) snapshot in, value changes out.

Each source row is normalised (its email) and formatted (its value, see
:mod:`audience_sync.traits.values`) before it gets here, so a row holds either a value or the
reason it has none. Per email, with S the deduplicated snapshot, C the confirmed values, D the
desired values (the last acted-on snapshot) and P the contacts parked by a recent skip:

  S          one row per email: its value when every row of the email agrees; otherwise no
             value and the reason ``conflicting_values`` (two different values, or a value and
             an invalid one: which is right cannot be known, so neither is sent)
  invalid    S rows without a value: reported per contact, never sent, never cleared
  set        S values that differ from C (a full sync: every S value), minus recent P ``set``
  clear      C emails absent from S altogether, only with ``clear_missing`` (minus P ``clear``)
  unpark     P ``set`` whose value is no longer D's (or no longer valid), P ``clear`` back in S
  deltas     S values that differ from D; D emails absent from S -> NULL

``changed`` (for the ``max_changed_fraction`` guard) counts confirmed values that would change
or be cleared; a contact's first value is not a change. All of it is SQL over tables loaded
from Arrow; no Python object per email.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine

from audience_sync.plan.engine import PARKED, DuckSession, EngineSettings
from audience_sync.plan.state_io import load_query
from audience_sync.state.statuses import ChangeAction
from audience_sync.state.tables import TS

VALUES = pa.schema([pa.field("email", pa.string()), pa.field("value", pa.string())])
DESIRED = pa.schema(
    [
        pa.field("email", pa.string()),
        pa.field("value", pa.string()),
        pa.field("desired", pa.string()),
    ]
)
SET = ChangeAction.SET.value
CLEAR = ChangeAction.CLEAR.value
CONFLICTING = "conflicting_values"


@dataclass(frozen=True)
class TraitCounts:
    snapshot: int  # distinct emails in the source (valid and invalid values)
    valid: int
    invalid: dict[str, int] = field(default_factory=dict)  # per reason, per contact
    confirmed_before: int = 0
    planned_set: int = 0
    planned_clear: int = 0
    changed: int = 0  # confirmed values that would change or be cleared
    parked_set: int = 0
    parked_clear: int = 0
    unpark: int = 0
    deltas: int = 0
    fingerprint: str = ""

    @property
    def unchanged(self) -> int:
        return self.valid - self.planned_set - self.parked_set


class TraitSnapshot(DuckSession):
    """A DuckDB connection holding one trait's snapshot and the state it is diffed against.

    Use as a context manager: :meth:`add` the formatted batches, :meth:`load_state` (or
    :meth:`load_tables` in tests), :meth:`compute`, then stream :meth:`changes`,
    :meth:`invalid`, :meth:`deltas` and :meth:`unparked`.
    """

    def __init__(self, settings: EngineSettings) -> None:
        super().__init__(settings)
        self.duck.execute("CREATE TABLE raw (email VARCHAR, value VARCHAR, reason VARCHAR)")

    def add(self, emails: pa.Array, values: pa.Array, reasons: pa.Array) -> None:
        """One batch: normalised emails (no nulls), each with its formatted value or the
        reason it has none (exactly one of the two per row)."""
        if len(emails) == 0:
            return
        batch = pa.table(
            {
                "email": emails.cast(pa.string()),
                "value": values.cast(pa.string()),
                "reason": reasons.cast(pa.string()),
            }
        )
        self.duck.register("batch", batch)
        try:
            self.duck.execute("INSERT INTO raw SELECT email, value, reason FROM batch")
        finally:
            self.duck.unregister("batch")

    def load_state(self, engine: Engine, audience_id: int, *, parked_before: datetime) -> None:
        """Read C, D and the parked contacts of this trait from the state database."""
        a = {"a": audience_id}
        load_query(
            engine,
            self.duck,
            "state",
            "SELECT email, value, desired FROM memberships WHERE audience_id = :a "
            "AND (value IS NOT NULL OR desired IS NOT NULL)",
            a,
            DESIRED,
        )
        load_query(
            engine,
            self.duck,
            "parked",
            text(
                "SELECT email, action, CASE WHEN parked_at >= :cutoff THEN 1 ELSE 0 END "
                "FROM parked_contacts WHERE audience_id = :a"
            ).bindparams(bindparam("cutoff", type_=TS)),
            {"cutoff": parked_before, **a},
            PARKED,
            columnar=False,
        )

    def load_tables(self, state: pa.Table, parked: pa.Table | None = None) -> None:
        """C and D from an Arrow table ``(email, value, desired)`` instead (tests, tools)."""
        for name, table, schema in (("state", state, DESIRED), ("parked", parked, PARKED)):
            columns = ", ".join(f'"{f.name}" {_duck(f.type)}' for f in schema)
            self.duck.execute(f'CREATE TABLE "{name}" ({columns})')
            if table is not None and table.num_rows:
                self.duck.register("loaded", table)
                try:
                    self.duck.execute(f'INSERT INTO "{name}" SELECT * FROM loaded')
                finally:
                    self.duck.unregister("loaded")

    def compute(self, *, full: bool, clear_missing: bool) -> TraitCounts:
        d = self.duck
        # One row per email; disagreeing rows (two values, or a value and a reason) conflict.
        d.execute(
            "CREATE TABLE s AS SELECT email, "
            "CASE WHEN count(DISTINCT coalesce('v' || value, 'r' || reason)) = 1 "
            "THEN min(value) END AS value, "
            "CASE WHEN count(DISTINCT coalesce('v' || value, 'r' || reason)) = 1 "
            f"THEN min(reason) ELSE '{CONFLICTING}' END AS reason "
            "FROM raw GROUP BY email"
        )
        d.execute("DROP TABLE raw")
        d.execute("CREATE TABLE sv AS SELECT email, value FROM s WHERE value IS NOT NULL")
        d.execute("CREATE TABLE c AS SELECT email, value FROM state WHERE value IS NOT NULL")
        d.execute("CREATE TABLE dd AS SELECT email, desired FROM state WHERE desired IS NOT NULL")
        d.execute("DROP TABLE state")
        d.execute(
            "CREATE TABLE unpark AS "
            f"SELECT p.email, p.action FROM parked p WHERE p.action = '{SET}' AND ("
            "  p.email NOT IN (SELECT email FROM sv) OR EXISTS (SELECT 1 FROM sv "
            "  LEFT JOIN dd ON dd.email = sv.email WHERE sv.email = p.email "
            "  AND sv.value IS DISTINCT FROM dd.desired)) "
            f"UNION ALL SELECT p.email, p.action FROM parked p WHERE p.action = '{CLEAR}' "
            "AND p.email IN (SELECT email FROM s)"
        )
        # Parked and still parked: a recent skip that no longer-applies is not held back.
        d.execute(
            "CREATE TABLE held AS SELECT p.email, p.action FROM parked p WHERE p.recent = 1 "
            "AND NOT EXISTS (SELECT 1 FROM unpark u WHERE u.email = p.email "
            "AND u.action = p.action)"
        )
        held = "(SELECT email FROM held WHERE action = '{}')"
        if full:
            d.execute(f"CREATE TABLE changes AS SELECT email, '{SET}' AS action, value FROM sv")
        else:
            d.execute(
                f"CREATE TABLE changes AS SELECT sv.email, '{SET}' AS action, sv.value "
                "FROM sv LEFT JOIN c ON c.email = sv.email "
                "WHERE sv.value IS DISTINCT FROM c.value "
                f"AND sv.email NOT IN {held.format(SET)}"
            )
        if clear_missing:
            held_clear = "" if full else f"AND email NOT IN {held.format(CLEAR)}"
            d.execute(
                f"INSERT INTO changes SELECT email, '{CLEAR}', NULL FROM c "
                f"WHERE email NOT IN (SELECT email FROM s) {held_clear}"
            )
        d.execute(
            "CREATE TABLE deltas AS SELECT sv.email, sv.value AS desired FROM sv "
            "LEFT JOIN dd ON dd.email = sv.email WHERE sv.value IS DISTINCT FROM dd.desired "
            "UNION ALL SELECT email, NULL FROM dd WHERE email NOT IN (SELECT email FROM s)"
        )
        self._computed = True
        snapshot, valid, fingerprint = self._one(
            "SELECT count(*), count(value), lower(hex(coalesce(bit_xor(md5_number("
            "email || chr(0) || coalesce(value, '') || chr(0) || coalesce(reason, ''))), "
            "0::UHUGEINT))) FROM s"
        )
        invalid = {
            str(reason): int(count)
            for reason, count in d.execute(
                "SELECT reason, count(*) FROM s WHERE value IS NULL GROUP BY reason ORDER BY 1"
            ).fetchall()
        }
        planned = dict(d.execute("SELECT action, count(*) FROM changes GROUP BY action").fetchall())
        changed_values = self._one(
            "SELECT count(*) FROM sv JOIN c ON c.email = sv.email WHERE sv.value <> c.value"
        )[0]
        parked = dict(d.execute("SELECT action, count(*) FROM held GROUP BY action").fetchall())
        return TraitCounts(
            snapshot=int(snapshot),
            valid=int(valid),
            invalid=invalid,
            confirmed_before=int(self._one("SELECT count(*) FROM c")[0]),
            planned_set=int(planned.get(SET, 0)),
            planned_clear=int(planned.get(CLEAR, 0)),
            changed=int(changed_values) + int(planned.get(CLEAR, 0)),
            parked_set=0 if full else int(parked.get(SET, 0)),
            parked_clear=0 if full or not clear_missing else int(parked.get(CLEAR, 0)),
            unpark=int(self._one("SELECT count(*) FROM unpark")[0]),
            deltas=int(self._one("SELECT count(*) FROM deltas")[0]),
            fingerprint=str(fingerprint),
        )

    def changes(self) -> Iterator[pa.RecordBatch]:
        """``(email, action, value)`` batches to plan, in email order."""
        return self._stream("SELECT email, action, value FROM changes ORDER BY email")

    def invalid(self) -> Iterator[pa.RecordBatch]:
        """``(email, reason)`` batches of contacts whose value cannot be sent, in email order."""
        return self._stream("SELECT email, reason FROM s WHERE value IS NULL ORDER BY email")

    def deltas(self) -> Iterator[pa.RecordBatch]:
        """``(email, desired)`` batches (NULL: the contact left the source), in email order."""
        return self._stream("SELECT email, desired FROM deltas ORDER BY email")

    def unparked(self) -> Iterator[pa.RecordBatch]:
        """``(email, action)`` batches of parked skips that no longer apply."""
        return self._stream("SELECT email, action FROM unpark ORDER BY email")


def _duck(kind: pa.DataType) -> str:
    return "BIGINT" if pa.types.is_integer(kind) else "VARCHAR"
