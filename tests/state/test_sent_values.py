"""The planned changes read back for submission as Arrow straight from the driver
(:func:`audience_sync.state.diff.sent_values_in_order`): the same rows in the same order as a
plain SQLAlchemy select, on both backends and on both sides of SQLite's child-process threshold;
a trait's missing value is sent blank; a failed read is one line without SQL or values."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Engine

from audience_sync.errors import StateError
from audience_sync.plan import state_io
from audience_sync.state import diff, ledger
from audience_sync.state.statuses import AudienceKind, RunTrigger
from audience_sync.state.tables import run_changes

# Addresses whose order depends on punctuation and digits, where collations differ.
EMAILS = [
    f"{name}{i}@example.com"
    for i in range(40)
    for name in ("a.b", "ab", "a_b", "a-b", "z", "0x", "m+tag")
]


def start_run(engine: Engine) -> tuple[int, int, int, int]:
    """A run, an audience, a trait and a second audience, all empty."""
    with engine.begin() as conn:
        audience = ledger.upsert_audience(conn, key="vip", list_id=1, field_id=2, source="t")
        trait = ledger.upsert_audience(
            conn, key="tier", list_id=1, field_id=3, source="t", kind=AudienceKind.TRAIT
        )
        other = ledger.upsert_audience(conn, key="other", list_id=1, field_id=4, source="t")
        run_id = ledger.create_run(conn, trigger=RunTrigger.MANUAL)
    return run_id, audience, trait, other


def add_changes(engine: Engine, rows: list[dict[str, object]]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(run_changes), rows)


def seeded(engine: Engine) -> tuple[int, int, int]:
    """Planned changes of an audience and a trait in shuffled order, with changes of another
    status and of another audience that must not be read."""
    run_id, audience, trait, other = start_run(engine)
    shuffled = random.Random(3).sample(EMAILS, len(EMAILS))
    rows: list[dict[str, object]] = []
    for i, email in enumerate(shuffled):
        base = {"run_id": run_id, "email": email}
        rows.append(
            {**base, "audience_id": audience, "action": "on" if i % 3 else "off"}
            | {"status": "confirmed" if i % 11 == 0 else "planned"}
        )
        value = None if i % 4 == 0 else f"gold {i}"
        rows.append(
            {**base, "audience_id": trait, "action": "clear" if value is None else "set"}
            | {"value": value, "status": "planned"}
        )
        rows.append({**base, "audience_id": other, "action": "on", "status": "planned"})
    add_changes(engine, rows)
    return run_id, audience, trait


def expected(
    engine: Engine, run_id: int, audience_id: int, *, trait: bool
) -> list[tuple[str, str]]:
    """What the submission read before: SQLAlchemy rows in email order, a trait's NULL blank."""
    sent = run_changes.c.value if trait else run_changes.c.action
    with engine.connect() as conn:
        rows = conn.execute(
            select(run_changes.c.email, sent)
            .where(
                run_changes.c.run_id == run_id,
                run_changes.c.audience_id == audience_id,
                run_changes.c.status == "planned",
            )
            .order_by(run_changes.c.email)
        ).all()
    return [(email, value or "") for email, value in rows]


def read(
    engine: Engine, run_id: int, audience_id: int, *, trait: bool, workdir: Path
) -> tuple[list[tuple[str, str]], int, pa.Schema]:
    with diff.sent_values_in_order(
        engine, run_id, audience_id, trait=trait, workdir=workdir
    ) as reader:
        batches = list(reader)
        spill_files = len(list(workdir.iterdir()))
    rows = [
        (email, value)
        for batch in batches
        for email, value in zip(
            batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True
        )
    ]
    return rows, spill_files, reader.schema


@pytest.fixture(params=["in process", "child process"])
def threshold(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both sides of SQLite's child-process threshold (PostgreSQL reads through ADBC in both);
    the in-process read in small batches so there are several."""
    if request.param == "child process":
        monkeypatch.setattr(state_io, "PROCESS_MIN_ROWS", 1)
    else:
        monkeypatch.setattr(state_io, "BATCH_ROWS", 17)
    return str(request.param)


@pytest.fixture
def spill(tmp_path: Path) -> Path:
    """The directory a child-process read stages its file in (the database is elsewhere)."""
    folder = tmp_path / "spill"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("trait", [False, True], ids=["audience", "trait"])
def test_the_changes_to_send_are_the_planned_rows_in_email_order(
    engine: Engine, threshold: str, trait: bool, spill: Path
) -> None:
    run_id, audience, trait_id = seeded(engine)
    audience_id = trait_id if trait else audience
    want = expected(engine, run_id, audience_id, trait=trait)
    assert len(want) > 200

    rows, spill_files, schema = read(engine, run_id, audience_id, trait=trait, workdir=spill)

    assert rows == want
    assert schema == pa.schema([pa.field("email", pa.string()), pa.field("value", pa.string())])
    child = engine.url.get_backend_name() == "sqlite" and threshold == "child process"
    assert spill_files == (1 if child else 0)
    assert list(spill.iterdir()) == []  # the child's file is removed on leaving the block


def test_a_traits_missing_value_is_sent_blank_and_a_set_value_as_it_is(
    engine: Engine, threshold: str, spill: Path
) -> None:
    run_id, _, trait, _ = start_run(engine)
    add_changes(
        engine,
        [
            {"run_id": run_id, "audience_id": trait, "email": email, "action": action}
            | {"value": value, "status": "planned"}
            for email, action, value in [
                ("a@example.com", "clear", None),
                ("b@example.com", "set", "gold"),
                ("c@example.com", "set", " spaced "),
            ]
        ],
    )
    rows, _, _ = read(engine, run_id, trait, trait=True, workdir=spill)
    assert rows == [("a@example.com", ""), ("b@example.com", "gold"), ("c@example.com", " spaced ")]


def test_no_planned_changes_read_as_no_rows(engine: Engine, threshold: str, spill: Path) -> None:
    run_id, audience, _, _ = start_run(engine)
    rows, spill_files, _ = read(engine, run_id, audience, trait=False, workdir=spill)
    assert rows == []
    assert spill_files == 0


def assert_one_line_without_sql_or_values(message: str, engine: Engine) -> None:
    assert "\n" not in message
    assert message.endswith(": reading state failed")
    for leak in ("SELECT", "run_changes", "planned", "@example.com", "Traceback"):
        assert leak not in message
    password = engine.url.password
    assert not password or password not in message


def test_a_failing_read_is_one_line_without_sql_or_values(
    engine: Engine, threshold: str, spill: Path
) -> None:
    run_id, audience, _ = seeded(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE run_changes RENAME TO run_changes_gone"))
    with (
        pytest.raises(StateError) as caught,
        diff.sent_values_in_order(engine, run_id, audience, trait=False, workdir=spill) as rd,
    ):
        list(rd)
    assert_one_line_without_sql_or_values(str(caught.value), engine)
    assert caught.value.__cause__ is None


def failing_midway(schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    yield pa.RecordBatch.from_arrays([pa.array(["a@example.com"]), pa.array(["on"])], schema=schema)
    raise RuntimeError("SELECT email FROM run_changes WHERE email = 'b@example.com'")


def test_a_read_failing_midway_is_one_line_and_the_reader_is_closed(
    engine: Engine, spill: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, audience, _ = seeded(engine)
    closed: list[bool] = []

    def driver_reader(
        *args: object,
    ) -> tuple[pa.RecordBatchReader, Callable[[], None]]:
        schema = args[3]
        assert isinstance(schema, pa.Schema)
        reader = pa.RecordBatchReader.from_batches(schema, failing_midway(schema))
        return reader, lambda: closed.append(True)

    monkeypatch.setattr(state_io, "PROCESS_MIN_ROWS", 10**9)
    monkeypatch.setattr(state_io, "_columnar_reader", driver_reader)
    got: list[pa.RecordBatch] = []
    with (
        pytest.raises(StateError) as caught,
        diff.sent_values_in_order(engine, run_id, audience, trait=False, workdir=spill) as rd,
    ):
        got.extend(rd)
    assert [b.num_rows for b in got] == [1]
    assert_one_line_without_sql_or_values(str(caught.value), engine)
    assert closed == [True]


def test_the_read_takes_no_connection_it_does_not_give_back(
    engine: Engine, threshold: str, spill: Path
) -> None:
    """Leaving the block early (as the submit loop does after a 404) closes the read; the
    ``engine`` fixture fails the test if a connection stays checked out."""
    run_id, audience, _ = seeded(engine)
    with diff.sent_values_in_order(engine, run_id, audience, trait=False, workdir=spill) as reader:
        first = next(iter(reader))
    assert first.num_rows > 0
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(run_changes)).scalar_one()
    assert count == 3 * len(EMAILS)
