"""``verify`` compares computed trait values (read back and formatted as the planner formats
them) with the snapshot's, and ``verify --repair`` sets them again; each type, both backends."""

from __future__ import annotations

import pytest

from audience_sync.state.statuses import RunStatus
from audience_sync.verify import format_report
from tests.conftest import backend_url
from tests.e2e.test_ops_verify import verify_job
from tests.e2e.test_traits_sync import (
    CASES,
    FIELD_ID,
    Case,
    _setup,
    _trait_changes,
    _values,
    _write,
)
from tests.harness import LIST_ID, Harness


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Both backends; PostgreSQL's cases run in `make test-slow`, which keeps `make test`
    under four minutes. CI runs both."""
    return backend_url(request)


# A value someone typed into Listrak by hand, valid for the field but not the snapshot's.
EDITED = {"Text": "boots", "Numeric": "7", "Date": "2020-01-01", "RadioButton": "silver"}


@pytest.mark.parametrize("case", CASES, ids=[c.data_type for c in CASES])
def test_verify_finds_and_repair_fixes_a_value_changed_in_listrak(
    harness: Harness, case: Case
) -> None:
    harness.add_contacts(["a@x.com", "b@x.com", "c@x.com"])
    harness.add_audience("vip", 200, ["a@x.com"])
    _setup(harness, case)
    _write(harness.root, case.first)
    assert harness.run().status == RunStatus.SUCCEEDED

    clean = verify_job(harness).verify()
    assert clean.drift_total == 0, format_report(clean)
    assert clean.not_compared == []

    edited = "a@x.com" if case.sent["a@x.com"] != EDITED[case.data_type] else "b@x.com"
    harness.sandbox.world.set_field_values(LIST_ID, FIELD_ID, {edited: EDITED[case.data_type]})
    found = verify_job(harness).verify()
    trait = next(c for c in found.audiences if c.key == "trait")
    assert trait.drift is not None
    assert trait.drift.counts == {"value_differs": 1, "stale_state": 0}
    report = format_report(found)
    assert "value in Listrak differs from the snapshot's: 1 (fix: set)" in report

    repaired = verify_job(harness).repair()
    assert repaired.run is not None
    assert repaired.run.status == RunStatus.SUCCEEDED, repaired.run.error
    assert _trait_changes(harness, repaired.run.run_id) == {
        edited: ("set", "confirmed", case.sent[edited])
    }
    assert _values(harness) == case.sent
    assert verify_job(harness).verify().drift_total == 0


def test_a_listrak_value_written_differently_is_not_drift(harness: Harness) -> None:
    numeric = next(c for c in CASES if c.data_type == "Numeric")
    harness.add_contacts(["a@x.com", "b@x.com", "c@x.com"])
    harness.add_audience("vip", 200, ["a@x.com"])
    _setup(harness, numeric)
    _write(harness.root, numeric.first)
    assert harness.run().status == RunStatus.SUCCEEDED
    # 412.5 confirmed; Listrak shows 412.50: the same number once formatted
    harness.sandbox.world.set_field_values(LIST_ID, FIELD_ID, {"a@x.com": "412.50"})
    assert verify_job(harness).verify().drift_total == 0
