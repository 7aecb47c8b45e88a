"""What a plan counted, and the planned changes read back in order.

The diff itself runs in DuckDB (:mod:`audience_sync.plan.engine`):
  on  = in the snapshot and not confirmed ``on``
  off = confirmed ``on`` and not in the snapshot
minus contacts parked by an earlier skip for the same action (unless the skip is older than
``retry_skipped_after``). A full sync ignores confirmed state and parking for ``on``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from audience_sync.state.statuses import ChangeAction, ChangeStatus
from audience_sync.state.tables import memberships

if TYPE_CHECKING:
    import pyarrow as pa


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


# A change's value as sent: an audience's CheckBox ``on``/``off`` (its action), a trait's value,
# blank for none (which clears it).
_SENT_VALUE = {False: "action", True: "coalesce(value, '')"}


@contextmanager
def sent_values_in_order(
    engine: Engine, run_id: int, audience_id: int, *, trait: bool, workdir: Path | None = None
) -> Iterator[pa.RecordBatchReader]:
    """The run's planned changes as Arrow batches of ``(email, value)`` in email order, the
    value being what is sent: an audience's CheckBox ``on``/``off``, a trait's value (blank
    clears it). Read straight from the driver (:func:`audience_sync.plan.state_io.read_query`,
    a large SQLite read through a file in ``workdir``), no Python object per row; closed on
    leaving the block."""
    import pyarrow as pa

    from audience_sync.plan.state_io import read_query

    sql = (
        f"SELECT email, {_SENT_VALUE[trait]} AS value FROM run_changes "
        "WHERE run_id = :run_id AND audience_id = :audience_id AND status = :status "
        "ORDER BY email"
    )
    params = {"run_id": run_id, "audience_id": audience_id, "status": ChangeStatus.PLANNED.value}
    schema = pa.schema([pa.field("email", pa.string()), pa.field("value", pa.string())])
    with read_query(engine, sql, params, schema, workdir=workdir) as reader:
        yield reader
