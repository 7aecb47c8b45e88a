"""The application writing its WAL-mode SQLite state database while a state read runs, for the
tests of the reads that do not go through the application's connection."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Engine

from audience_sync.state import ledger
from audience_sync.state.tables import memberships


def read_while_the_app_writes(engine: Engine, audience_id: int, read: Callable[[], None]) -> int:
    """``read`` while the application holds a write transaction open (a row added to the
    audience, committed after the read), then more writes through the same connection; the
    database must stay WAL and intact. Returns how many memberships rows there are then (two
    more than before, and ten of a new audience)."""
    with engine.connect() as app:
        app.begin()
        late = {"audience_id": audience_id, "email": "late@example.com", "value": "on"}
        app.execute(insert(memberships).values(**late))
        read()
        app.commit()
        with engine.begin() as conn:
            other = ledger.upsert_audience(conn, key="other", list_id=1, field_id=2, source="t")
            conn.execute(
                insert(memberships),
                [
                    {"audience_id": other, "email": f"o{i}@example.com", "value": "on"}
                    for i in range(10)
                ],
            )
        app.execute(insert(memberships).values(audience_id=other, email="after@example.com"))
        app.commit()
        assert app.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert app.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        return int(app.execute(select(func.count()).select_from(memberships)).scalar_one())
