"""Property (PostgreSQL): the in-database normaliser (the SQL rules plus the residual values
normalised in Python) gives every raw value exactly ``normalize_email``'s answer: accepted or
not, canonical form, reason. The SQL rules alone never disagree where they decide."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from audience_sync.normalize import normalize_email
from audience_sync.plan.sql_normalize import (
    MEMBERS_TABLE,
    classify_params,
    resolve_residual,
    stage_members_sql,
)
from tests.unit.test_normalize import _RAW, EDGE_CASES

_PAD = st.sampled_from(
    ["", " ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2028", "\u3000"]
)
_SIMPLE_LOCAL = st.from_regex(
    r"\A[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,8}(\.[A-Za-z0-9_+-]{1,5}){0,2}\Z"
)
_SIMPLE_DOMAIN = st.from_regex(
    r"\A([A-Za-z0-9]([A-Za-z0-9-]{0,6}[A-Za-z0-9])?\.){1,3}[A-Za-z][A-Za-z0-9-]{0,5}[A-Za-z0-9]\Z"
)
_PADDED = st.builds(
    lambda left, local, at, domain, right: f"{left}{local}{at}{domain}{right}",
    _PAD,
    _SIMPLE_LOCAL,
    st.sampled_from(["@", "@", "@", "@@", "", "@x@"]),
    st.one_of(
        _SIMPLE_DOMAIN,
        st.sampled_from(
            ["xn--bcher-kva.de", "Bücher.DE", "xn--p1ai.xn--p1ai", "пример.рф", "a.xn--", "b.c_d"]
        ),
    ),
    _PAD,
)
VALUES = st.one_of(_RAW, _PADDED, st.sampled_from(EDGE_CASES))


def storable(value: str | None) -> bool:
    """PostgreSQL text cannot hold NUL, so no source value contains one."""
    return value is None or "\x00" not in value


@pytest.fixture
def pg_engine(pg_database_url: str) -> Iterator[Engine]:
    engine = create_engine(pg_database_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE raw_values (raw text)"))
    yield engine
    engine.dispose()


Answers = dict[str | None, tuple[str | None, str | None]]


def normalise_in_database(
    engine: Engine, values: Sequence[str | None]
) -> tuple[Answers, Answers, int]:
    """Per distinct raw value: the SQL rules' answer, the final answer; and the residual count."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM raw_values"))
        if values:
            conn.execute(text("INSERT INTO raw_values VALUES (:v)"), [{"v": v} for v in values])
        conn.execute(text(stage_members_sql("SELECT raw FROM raw_values")), classify_params())
        rows = f"SELECT raw, email, reason FROM {MEMBERS_TABLE}"
        by_sql = {raw: (email, reason) for raw, email, reason in conn.execute(text(rows))}
        residual = resolve_residual(conn)
        final = {raw: (email, reason) for raw, email, reason in conn.execute(text(rows))}
    return by_sql, final, residual


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(VALUES.filter(storable), max_size=30))
def test_in_database_normaliser_equals_normalize_email(
    pg_engine: Engine, values: list[str | None]
) -> None:
    by_sql, final, residual = normalise_in_database(pg_engine, values)
    assert set(final) == set(values)
    for raw, answer in final.items():
        assert answer == normalize_email(raw), repr(raw)
    decided = {raw: a for raw, a in by_sql.items() if a != (None, None)}
    for raw, answer in decided.items():
        assert answer == normalize_email(raw), repr(raw)
    assert residual == len(by_sql) - len(decided)


def test_plain_ascii_and_blank_values_need_no_python(pg_engine: Engine) -> None:
    values = [" A.B+c@Example.COM\t", "x@y.co", "", "  \t", None, "a@b-c.d1"]
    by_sql, final, residual = normalise_in_database(pg_engine, values)
    assert residual == 0
    assert by_sql == final
    assert final["x@y.co"] == ("x@y.co", None)
    assert final[" A.B+c@Example.COM\t"] == ("a.b+c@example.com", None)
    assert final[None] == (None, "empty")
    assert final["  \t"] == (None, "empty")


def test_unicode_idn_and_odd_whitespace_go_through_python(pg_engine: Engine) -> None:
    values = ["a@Bücher.de", "a@xn--bcher-kva.de", "\x1ca@b.com", "a@@b.com", "\xa0"]
    _, final, residual = normalise_in_database(pg_engine, values)
    assert residual == len(values)
    assert final["a@Bücher.de"] == ("a@xn--bcher-kva.de", None)
    assert final["a@xn--bcher-kva.de"] == ("a@xn--bcher-kva.de", None)
    assert final["a@@b.com"] == (None, "not_one_at_sign")
    assert final["\xa0"] == (None, "empty")
