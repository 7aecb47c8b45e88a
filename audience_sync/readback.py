"""Read Listrak's actual profile field values back into ``listrak_values``, in chunks.

One paged contact read per list and group of at most 30 fields (Listrak's limit per call);
only subscribed contacts are read, the only ones an ``UpdateSubscribers`` import can change.
Call it while holding the run lock: every read replaces the previous one.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection, Engine
from tqdm import tqdm

from audience_sync.config import AudienceSettings
from audience_sync.listrak.client import MAX_FIELDS_PER_CONTACT_READ, ListrakClient
from audience_sync.normalize import normalize_email
from audience_sync.state import ledger
from audience_sync.state.tables import VALUE_LENGTH, listrak_values
from audience_sync.state.tables import audiences as audiences_table

logger = logging.getLogger("audience_sync.readback")

STAGE_BATCH = 10_000


@dataclass(frozen=True)
class FieldTarget:
    """Where one audience (or computed trait) lives in Listrak. ``canonical``: a trait's
    values are stored as its planner formats them (so they compare with confirmed values);
    an audience's CheckBox values are trimmed and lowercased."""

    audience_id: int
    list_id: int
    field_id: int
    canonical: Callable[[str], str] | None = None


def field_targets(engine: Engine, audiences: Sequence[AudienceSettings]) -> list[FieldTarget]:
    """The configured audiences that have a profile field, with their state ids."""
    targets = []
    with engine.begin() as conn:
        for audience in audiences:
            if audience.profile_field_id is None:
                continue
            audience_id = conn.execute(
                select(audiences_table.c.id).where(audiences_table.c.key == audience.key)
            ).scalar()
            if audience_id is None:
                audience_id = ledger.upsert_audience(
                    conn,
                    key=audience.key,
                    list_id=audience.list_id,
                    field_id=audience.profile_field_id,
                    source="",
                )
            targets.append(
                FieldTarget(int(audience_id), audience.list_id, audience.profile_field_id)
            )
    return targets


def field_batches(targets: Sequence[FieldTarget]) -> list[tuple[int, list[int]]]:
    """``(list_id, field ids)`` calls: grouped by list, at most 30 distinct fields per call."""
    by_list: dict[int, list[int]] = defaultdict(list)
    for target in targets:
        if target.field_id not in by_list[target.list_id]:
            by_list[target.list_id].append(target.field_id)
    return [
        (list_id, ids[i : i + MAX_FIELDS_PER_CONTACT_READ])
        for list_id, ids in sorted(by_list.items())
        for i in range(0, len(ids), MAX_FIELDS_PER_CONTACT_READ)
    ]


def read_back(
    engine: Engine,
    client: ListrakClient,
    targets: Sequence[FieldTarget],
    *,
    show_progress: bool = False,
) -> int:
    """Replace ``listrak_values`` with the current values of ``targets``; returns rows staged."""
    audiences_of: dict[tuple[int, int], list[FieldTarget]] = defaultdict(list)
    for target in targets:
        audiences_of[(target.list_id, target.field_id)].append(target)
    staged = 0
    with engine.begin() as conn:
        conn.execute(delete(listrak_values))
    for list_id, field_ids in field_batches(targets):
        with tqdm(
            desc=f"read list {list_id}",
            unit="contacts",
            unit_scale=True,
            disable=not show_progress,
            leave=False,
        ) as bar:
            batch: list[dict[str, Any]] = []
            for contact in client.contacts(list_id, field_ids):
                email, _ = normalize_email(contact.emailAddress)
                bar.update(1)
                if email is None:
                    continue
                values = {v.segmentationFieldId: v.value for v in contact.segmentationFieldValues}
                for field_id in field_ids:
                    raw = (values.get(field_id) or "").strip()
                    for target in audiences_of[(list_id, field_id)]:
                        value = target.canonical(raw) if target.canonical else raw.lower()
                        batch.append(
                            {
                                "audience_id": target.audience_id,
                                "email": email,
                                "value": value[:VALUE_LENGTH],
                            }
                        )
                if len(batch) >= STAGE_BATCH:
                    staged += _stage(engine, batch)
                    batch = []
            staged += _stage(engine, batch)
        logger.info("readback.list_read", extra={"list_id": list_id, "fields": len(field_ids)})
    return staged


def clear(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(delete(listrak_values))


def _stage(engine: Engine, rows: list[dict[str, Any]]) -> int:
    """One short transaction per batch, so the lock heartbeat is never blocked (SQLite)."""
    if not rows:
        return 0
    with engine.begin() as conn:
        _insert(conn, rows)
    return len(rows)


def _insert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None, "an open connection has its driver connection"
        with (
            raw.cursor() as cursor,
            cursor.copy("COPY listrak_values (audience_id, email, value) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row((row["audience_id"], row["email"], row["value"]))
    else:
        conn.execute(insert(listrak_values), rows)
