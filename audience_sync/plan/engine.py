"""One audience's plan in DuckDB: snapshot in, changes and desired-value deltas out.

With S the deduplicated snapshot, C the confirmed ``on`` set, D the desired ``on`` set (the
last acted-on snapshot) and P the contacts parked by a recent skip (per action):

  unpark     parked ``on`` not in S, parked ``off`` in S (their desired value changed)
  turn_on    S - C - P_on                 (a full sync: all of S)
  turn_off   C - S - P_off                (a full sync: C - S)
  reconcile  L_on - S - turn_off          (``run --reconcile``: on in Listrak, not a member)
  deltas     S - D -> 'on',  D - S -> 'off'

All of it is SQL over tables loaded from Arrow; no Python object per email. S meets the state
rows (C and D as flags) in one full join, whose few disagreeing rows give the changes and
deltas. DuckDB's memory
is capped by ``[planner] memory_limit`` and spills to ``temp_directory``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import duckdb
import pyarrow as pa
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine

from audience_sync.errors import PlanningError
from audience_sync.plan import snapshot_cache
from audience_sync.plan.snapshot_cache import CachedSnapshot
from audience_sync.plan.state_io import PendingLoad, load_query, start_load
from audience_sync.state.statuses import ChangeAction
from audience_sync.state.tables import TS

EMAILS = pa.schema([pa.field("email", pa.string())])
FLAGGED = pa.schema([pa.field("email", pa.string()), pa.field("flags", pa.int64())])
PARKED = pa.schema(
    [
        pa.field("email", pa.string()),
        pa.field("action", pa.string()),
        pa.field("recent", pa.int64()),
    ]
)
BATCH_ROWS = 100_000
INSERT_ROWS = 1_000_000
logger = logging.getLogger(__name__)
ON = ChangeAction.ON.value
OFF = ChangeAction.OFF.value
# An audience's state rows as (email, flags): 1 confirmed on, 2 desired on.
_CONFIRMED_ON = f"CASE WHEN value = '{ON}' THEN 1 ELSE 0 END"
_DESIRED_ON = f"CASE WHEN desired = '{ON}' THEN 1 ELSE 0 END"
_STATE = (
    f"SELECT email, {_CONFIRMED_ON} + 2 * {_DESIRED_ON} FROM memberships WHERE audience_id = :a"
)
# C and D in one pass over the audience's rows; or, with D read from its file, only the rows
# where confirmed and desired differ (the pending ones), D's other members being both.
_STATE_ON = f"{_STATE} AND (value = '{ON}' OR desired = '{ON}')"


def _state_pending(dialect: str) -> str:
    """The pending rows: cheaper to find by comparing the values than the flags. SQLite spells
    IS DISTINCT FROM as IS NOT (before 3.39)."""
    distinct = "IS NOT" if dialect == "sqlite" else "IS DISTINCT FROM"
    return f"{_STATE} AND value {distinct} desired"


@dataclass(frozen=True)
class EngineSettings:
    memory_limit: str = "1GB"
    temp_directory: Path | None = None
    threads: int | None = None
    # Deduplicating more rows than this at once can exhaust DuckDB's memory limit even with
    # spilling (100M members in 1GB did); larger snapshots are deduplicated by hash partition.
    dedupe_partition_rows: int = 10_000_000
    # Where each audience's planned snapshot is kept (:mod:`audience_sync.plan.snapshot_cache`).
    snapshot_cache: Path | None = None


@dataclass(frozen=True)
class Counts:
    snapshot: int
    fingerprint: str
    confirmed_on_before: int
    planned_on: int
    planned_off: int
    reconcile_off: int
    parked_on: int
    parked_off: int
    unpark: int
    delta_on: int
    delta_off: int

    @property
    def unchanged(self) -> int:
        return self.snapshot - self.planned_on - self.parked_on


def planning_error(exc: duckdb.Error, settings: EngineSettings) -> PlanningError:
    """What a DuckDB failure tells the user. DuckDB's own text can quote data (a value that
    did not convert), so only out-of-memory and I/O failures are described, by kind."""
    if isinstance(exc, duckdb.OutOfMemoryException):
        return PlanningError(
            f"planning ran out of memory within [planner] memory_limit = "
            f"{settings.memory_limit!r}; raise it, or set [planner] temp_directory to a disk "
            "with room to spill"
        )
    if isinstance(exc, duckdb.IOException):
        return PlanningError(
            "planning could not write its spill files; check the free space of "
            "[planner] temp_directory"
        )
    return PlanningError(f"planning failed in DuckDB ({type(exc).__name__})")


class DuckSession:
    """One in-process DuckDB connection configured from :class:`EngineSettings` (memory cap,
    spill directory, threads), closed as a context manager; results stream as Arrow once
    ``compute()`` has run. Audience and trait plans build on it."""

    def __init__(self, settings: EngineSettings) -> None:
        config: dict[str, str | bool | int | float | list[str]] = {
            "memory_limit": settings.memory_limit,
            "preserve_insertion_order": False,
        }
        if settings.threads is not None:
            config["threads"] = settings.threads
        if settings.temp_directory is not None:
            settings.temp_directory.mkdir(parents=True, exist_ok=True)
            config["temp_directory"] = str(settings.temp_directory)
        self.duck = duckdb.connect(":memory:", config=config)
        self._settings = settings
        self._computed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.duck.close()

    def _one(self, sql: str) -> tuple[Any, ...]:
        rows = self.duck.execute(sql).fetchall()
        assert len(rows) == 1, "an aggregate returns one row"
        return tuple(rows[0])

    def _stream(self, sql: str) -> Iterator[pa.RecordBatch]:
        assert self._computed, "compute() first"
        relation = self.duck.sql(sql)
        # Newer DuckDB releases name it to_arrow_reader; older ones fetch_arrow_reader.
        to_reader = getattr(relation, "to_arrow_reader", None) or getattr(
            relation, "fetch_arrow_reader", None
        )
        assert to_reader is not None, "DuckDB streams results as Arrow"
        yield from to_reader(BATCH_ROWS)


class SnapshotPlan(DuckSession):
    """A DuckDB connection holding one audience's snapshot and the sets it is diffed against.

    Use as a context manager; :meth:`add` the normalised batches, :meth:`load_state`, then
    :meth:`compute`, and stream the results with :meth:`changes`, :meth:`deltas`,
    :meth:`unparked`.
    """

    def __init__(self, settings: EngineSettings) -> None:
        super().__init__(settings)
        self.duck.execute("CREATE TABLE raw (email VARCHAR)")
        self._pending: list[pa.Array] = []
        self._pending_rows = 0
        self._reconcile = False
        self._snapshot: tuple[int, str] | None = None
        self._state_read: tuple[int, PendingLoad] | None = None
        self._applied: CachedSnapshot | None = None

    def close(self) -> None:
        if self._state_read is not None:
            self._state_read[1].close()
        super().close()

    def start_state_read(self, engine: Engine, audience_id: int) -> None:
        """Begin reading the audience's confirmed and desired state, which :meth:`load_state`
        finishes. It is read on a thread meanwhile: started before the snapshot is read, it
        is done by about the time the snapshot is. Only this run, holding the run lock,
        changes the audience's state in between. With the desired set's file in the
        snapshot cache, only the pending rows are read from the database."""
        cache = self._settings.snapshot_cache
        self._applied = None
        if cache is not None:
            with engine.connect() as conn:
                self._applied = snapshot_cache.applied_snapshot(conn, cache, audience_id)
        pending = start_load(
            engine,
            self.duck,
            "state" if self._applied is None else "state_pending",
            _STATE_ON if self._applied is None else _state_pending(engine.dialect.name),
            {"a": audience_id},
            FLAGGED,
            workdir=self._settings.temp_directory,
            keyed=True,
        )
        self._state_read = (audience_id, pending)

    def add(self, emails: pa.Array) -> None:
        """One batch of normalised emails (repeats across batches are collapsed later)."""
        if len(emails) == 0:
            return
        self._pending.append(emails.cast(pa.string()))
        self._pending_rows += len(emails)
        if self._pending_rows >= INSERT_ROWS:
            self.flush()

    def flush(self) -> None:
        """Insert the batches held back by :meth:`add` into ``raw``: one INSERT per
        ``INSERT_ROWS`` rows, since each INSERT from Arrow has a fixed cost that, per source
        chunk, came to about as much as copying the rows."""
        if not self._pending:
            return
        batch = pa.table({"email": pa.chunked_array(self._pending, type=pa.string())})
        self._pending, self._pending_rows = [], 0
        self.duck.register("batch", batch)
        try:
            self.duck.execute("INSERT INTO raw SELECT email FROM batch")
        finally:
            self.duck.unregister("batch")

    def load_state(
        self,
        engine: Engine,
        audience_id: int,
        *,
        parked_before: datetime,
        listrak_on: bool = False,
    ) -> None:
        """Read C, D, the parked contacts and (for reconcile) L_on from the state database."""
        a = {"a": audience_id}
        if self._state_read is None or self._state_read[0] != audience_id:
            self.start_state_read(engine, audience_id)
        assert self._state_read is not None
        state = self._state_read[1]
        try:
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
            self._reconcile = listrak_on
            if listrak_on:
                load_query(
                    engine,
                    self.duck,
                    "listrak_on",
                    f"SELECT DISTINCT email FROM listrak_values WHERE audience_id = :a "
                    f"AND value = '{ON}'",
                    a,
                    EMAILS,
                )
            # While a child process may still be reading the state rows (on SQLite).
            self._prepare_snapshot()
            state.finish()
        finally:
            state.close()
            self._state_read = None
        if self._applied is not None and not self._state_from_applied(self._applied):
            self._applied = None
            load_query(
                engine,
                self.duck,
                "state",
                _STATE_ON,
                a,
                FLAGGED,
                workdir=self._settings.temp_directory,
                keyed=True,
            )
        logger.debug(
            "planner.desired_read",
            extra={
                "audience_id": audience_id,
                "source": "snapshot cache" if self._applied is not None else "database",
            },
        )

    def _state_from_applied(self, applied: CachedSnapshot) -> bool:
        """``state`` from D's file and the pending rows; False (nothing created) when the file
        cannot be read, holds other than the recorded number of members, or misses a pending
        row that is desired ``on``: then the state is read from the database."""
        d = self.duck
        try:
            d.execute(
                "CREATE TABLE state AS SELECT email, CAST(3 AS BIGINT) AS flags "
                "FROM read_parquet($path)",
                {"path": str(applied.path)},
            )
        except duckdb.Error:
            logger.warning("planner.snapshot_cache_unreadable")
            return False
        size = int(self._one("SELECT count(*) FROM state")[0])
        desired_pending, found = self._one(
            "SELECT count(*), count(t.email) FROM state_pending p "
            "LEFT JOIN state t ON t.email = p.email WHERE p.flags & 2 = 2"
        )
        if size != applied.size or desired_pending != found:
            logger.warning("planner.snapshot_cache_mismatch")
            d.execute("DROP TABLE state")
            return False
        d.execute(
            "UPDATE state SET flags = p.flags FROM state_pending p WHERE state.email = p.email"
        )
        # Pending rows desired on are D's members, updated above; of the others only those
        # confirmed on (not ``off`` against no desired value) are in C.
        d.execute("INSERT INTO state SELECT email, flags FROM state_pending WHERE flags = 1")
        d.execute("DROP TABLE state_pending")
        return True

    @property
    def desired_from_cache(self) -> bool:
        """Whether the desired set was read from the snapshot cache (after :meth:`load_state`)."""
        return self._applied is not None

    def size_and_fingerprint(self) -> tuple[int, str]:
        """The deduplicated snapshot's size and fingerprint, as :class:`Counts` gives them."""
        return self._prepare_snapshot()

    def keep_snapshot(self, audience_id: int) -> None:
        """Keep the deduplicated snapshot in the snapshot cache (a real run, after
        :meth:`compute`), for the plans after this run's deltas are applied."""
        cache = self._settings.snapshot_cache
        if cache is None:
            return
        size, fingerprint = self._prepare_snapshot()
        snapshot_cache.keep_snapshot(
            self.duck,
            "s",
            cache,
            audience_id=audience_id,
            size=size,
            fingerprint=fingerprint,
            applied=self._applied.path if self._applied is not None else None,
        )

    def compute(self, *, full: bool) -> Counts:
        d = self.duck
        snapshot, fingerprint = self._prepare_snapshot()
        # S against the state rows in one join. A member confirmed and desired on (flags 3;
        # nearly all of S on a rerun) needs neither a change nor a delta and is left out.
        d.execute(
            "CREATE TABLE diff AS SELECT coalesce(s.email, t.email) AS email, "
            "s.email IS NOT NULL AS member, coalesce(t.flags, 0) AS flags "
            "FROM s FULL JOIN state t ON s.email = t.email "
            "WHERE s.email IS NULL OR t.email IS NULL OR t.flags <> 3"
        )
        d.execute(
            "CREATE TABLE unpark AS SELECT p.email, p.action FROM parked p "
            f"LEFT JOIN s ON s.email = p.email WHERE (p.action = '{ON}' AND s.email IS NULL) "
            f"OR (p.action = '{OFF}' AND s.email IS NOT NULL)"
        )
        recent = "(SELECT email FROM parked WHERE recent = 1 AND action = '{}')"
        confirmed_off = "NOT member AND flags & 1 = 1"
        if full:
            d.execute(f"CREATE TABLE changes AS SELECT email, '{ON}' AS action FROM s")
            d.execute(f"INSERT INTO changes SELECT email, '{OFF}' FROM diff WHERE {confirmed_off}")
        else:
            d.execute(
                f"CREATE TABLE changes AS SELECT email, '{ON}' AS action FROM diff "
                f"WHERE member AND flags & 1 = 0 AND email NOT IN {recent.format(ON)}"
            )
            d.execute(
                f"INSERT INTO changes SELECT email, '{OFF}' FROM diff "
                f"WHERE {confirmed_off} AND email NOT IN {recent.format(OFF)}"
            )
        if self._reconcile:
            d.execute(
                # NOT EXISTS, not NOT IN: DuckDB may then build on the smaller side (NOT IN's
                # null-aware join builds on S and the changes, which ran out of memory at scale).
                f"CREATE TABLE reconcile AS SELECT l.email, '{OFF}' AS action FROM listrak_on l "
                "WHERE NOT EXISTS (SELECT 1 FROM s WHERE s.email = l.email) "
                "AND NOT EXISTS (SELECT 1 FROM changes c WHERE c.email = l.email)"
            )
        else:
            d.execute("CREATE TABLE reconcile (email VARCHAR, action VARCHAR)")
        d.execute(
            f"CREATE TABLE deltas AS SELECT email, CASE WHEN member THEN '{ON}' ELSE '{OFF}' END "
            "AS desired FROM diff "
            "WHERE (member AND flags & 2 = 0) OR (NOT member AND flags & 2 = 2)"
        )
        self._computed = True
        parked = dict(
            d.execute(
                "SELECT p.action, count(*) FROM parked p WHERE p.recent = 1 AND NOT EXISTS "
                "(SELECT 1 FROM unpark u WHERE u.email = p.email AND u.action = p.action) "
                "GROUP BY p.action"
            ).fetchall()
        )
        planned = dict(d.execute("SELECT action, count(*) FROM changes GROUP BY action").fetchall())
        deltas = dict(d.execute("SELECT desired, count(*) FROM deltas GROUP BY desired").fetchall())
        return Counts(
            snapshot=int(snapshot),
            fingerprint=str(fingerprint),
            confirmed_on_before=int(self._one("SELECT count(*) FROM state WHERE flags & 1 = 1")[0]),
            planned_on=int(planned.get(ON, 0)),
            planned_off=int(planned.get(OFF, 0)),
            reconcile_off=int(self._one("SELECT count(*) FROM reconcile")[0]),
            parked_on=0 if full else int(parked.get(ON, 0)),
            parked_off=0 if full else int(parked.get(OFF, 0)),
            unpark=int(self._one("SELECT count(*) FROM unpark")[0]),
            delta_on=int(deltas.get(ON, 0)),
            delta_off=int(deltas.get(OFF, 0)),
        )

    def _prepare_snapshot(self) -> tuple[int, str]:
        """``s``, the deduplicated snapshot, made once; its size and fingerprint."""
        if self._snapshot is None:
            self.flush()
            self._deduplicate()
            self.duck.execute("DROP TABLE raw")
            size, fingerprint = self._one(
                "SELECT count(*), lower(hex(coalesce(bit_xor(md5_number(email)), 0::UHUGEINT))) "
                "FROM s"
            )
            self._snapshot = (int(size), str(fingerprint))
        return self._snapshot

    def _deduplicate(self) -> None:
        """``s``: the distinct emails of ``raw``, one hash partition at a time when large."""
        rows = int(self._one("SELECT count(*) FROM raw")[0])
        parts = -(-rows // self._settings.dedupe_partition_rows)
        if parts <= 1:
            self.duck.execute("CREATE TABLE s AS SELECT DISTINCT email FROM raw")
            return
        self.duck.execute("CREATE TABLE s (email VARCHAR)")
        for part in range(parts):
            self.duck.execute(
                "INSERT INTO s SELECT DISTINCT email FROM raw WHERE hash(email) % $parts = $part",
                {"parts": parts, "part": part},
            )

    def changes(self) -> Iterator[pa.RecordBatch]:
        """``(email, action)`` batches to plan, the diff's and reconcile's, in email order."""
        return self._stream(
            "SELECT email, action FROM changes UNION ALL SELECT email, action FROM reconcile "
            "ORDER BY email"
        )

    def deltas(self) -> Iterator[pa.RecordBatch]:
        """``(email, desired)`` batches, in email order."""
        return self._stream("SELECT email, desired FROM deltas ORDER BY email")

    def unparked(self) -> Iterator[pa.RecordBatch]:
        """``(email, action)`` batches of parked skips that no longer apply."""
        return self._stream("SELECT email, action FROM unpark ORDER BY email")
