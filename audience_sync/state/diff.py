"""What a plan counted, and the planned changes read back in order.

The diff itself runs in DuckDB (:mod:`audience_sync.plan.engine`):
  on  = in the snapshot and not confirmed ``on``
  off = confirmed ``on`` and not in the snapshot
minus contacts parked by an earlier skip for the same action (unless the skip is older than
``retry_skipped_after``). A full sync ignores confirmed state and parking for ``on``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, CursorResult

from audience_sync.state.statuses import ChangeAction, ChangeStatus

if TYPE_CHECKING:
    import pyarrow as pa
from audience_sync.state.tables import (
    memberships,
    run_changes,
)


@dataclass(frozen=True)
class PlanCounts:
    snapshot: int
    confirmed_on_before: int
    planned_on: int
    planned_off: int
    parked_on: int
    parked_off: int

    @property
    def unchanged(self) -> int:
        return self.snapshot - self.planned_on - self.parked_on


def confirmed_on_count(conn: Connection, audience_id: int) -> int:
    query = select(func.count()).where(
        memberships.c.audience_id == audience_id, memberships.c.value == ChangeAction.ON
    )
    return int(conn.execute(query).scalar_one())


def changes_in_order(
    conn: Connection,
    run_id: int,
    audience_id: int,
    *,
    status: ChangeStatus = ChangeStatus.PLANNED,
) -> CursorResult[tuple[str, str, str | None]]:
    """Stream ``(email, action, value)`` rows of a run's changes in email order (``value``:
    a trait's value to set, else NULL)."""
    query = (
        select(run_changes.c.email, run_changes.c.action, run_changes.c.value)
        .where(
            run_changes.c.run_id == run_id,
            run_changes.c.audience_id == audience_id,
            run_changes.c.status == status,
        )
        .order_by(run_changes.c.email)
    )
    return conn.execution_options(stream_results=True, yield_per=10_000).execute(query)


def sent_values_in_order(
    conn: Connection, run_id: int, audience_id: int, *, trait: bool, batch_rows: int = 100_000
) -> Iterator[pa.RecordBatch]:
    """The run's planned changes as Arrow batches of ``(email, value)`` in email order, the
    value being what is sent: an audience's CheckBox ``on``/``off``, a trait's value (blank
    clears it)."""
    import pyarrow as pa

    rows = changes_in_order(conn, run_id, audience_id)
    for partition in rows.partitions(batch_rows):
        emails, actions, values = zip(*partition, strict=True)
        sent = [value or "" for value in values] if trait else actions
        yield pa.RecordBatch.from_arrays(
            [pa.array(emails, type=pa.string()), pa.array(sent, type=pa.string())],
            names=["email", "value"],
        )
