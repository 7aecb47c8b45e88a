"""Computed traits: clear_missing blanks a leaver's field (an Overwrite import), the
max_changed_fraction guard stops a mass change before anything is sent, and ``plan`` / ``run``
on the CLI list traits with their set/clear counts."""

from __future__ import annotations

import pytest

from audience_sync import analysis
from audience_sync.errors import GuardError
from audience_sync.state.statuses import RunStatus
from tests.e2e.test_cli_run import CREDENTIALS, cli
from tests.e2e.test_traits_sync import (
    CASES,
    _confirmed,
    _setup,
    _trait_changes,
    _values,
    _write,
)
from tests.harness import Harness

NUMERIC = next(c for c in CASES if c.data_type == "Numeric")
CONTACTS = ["a@x.com", "b@x.com", "c@x.com", "d@x.com"]


def test_clear_missing_blanks_the_field_of_a_contact_who_left(harness: Harness) -> None:
    harness.add_contacts(CONTACTS)
    harness.add_audience("vip", 200, ["a@x.com"])
    _setup(harness, NUMERIC, clear_missing=True)
    _write(harness.root, {"a@x.com": "1", "b@x.com": "2", "c@x.com": "3", "d@x.com": "4"})
    assert harness.run().status == RunStatus.SUCCEEDED
    assert _values(harness) == {"a@x.com": "1", "b@x.com": "2", "c@x.com": "3", "d@x.com": "4"}

    _write(harness.root, {"a@x.com": "1", "b@x.com": "2", "c@x.com": "3"})
    second = harness.run()
    assert second.status == RunStatus.SUCCEEDED, second.error
    assert _trait_changes(harness, second.run_id) == {"d@x.com": ("clear", "confirmed", None)}
    assert _values(harness) == {"a@x.com": "1", "b@x.com": "2", "c@x.com": "3"}
    assert _confirmed(harness) == {"a@x.com": "1", "b@x.com": "2", "c@x.com": "3"}

    # the analysis API rebuilds the values from the ledger, after each run
    with analysis.open(harness.state_url) as ledger:
        assert ledger.traits() == ["trait"]
        assert "trait" not in ledger.audiences()
        now = ledger.trait_values("trait")
        assert dict(zip(now["email"], now["value"], strict=True)) == {
            "a@x.com": "1",
            "b@x.com": "2",
            "c@x.com": "3",
        }
        before = ledger.trait_values("trait", as_of_run=second.run_id - 1)
        assert set(before["email"]) == {"a@x.com", "b@x.com", "c@x.com", "d@x.com"}

    # cleared and confirmed: a rerun sends nothing more
    imports = harness.import_count()
    third = harness.run()
    assert third.status == RunStatus.SUCCEEDED
    assert harness.import_count() == imports


def test_the_guard_stops_a_mass_change_and_force_overrides(harness: Harness) -> None:
    harness.add_contacts(CONTACTS)
    harness.add_audience("vip", 200, ["a@x.com"])
    _setup(harness, NUMERIC)  # max_changed_fraction = 0.5
    first_values = {"a@x.com": "1", "b@x.com": "2", "c@x.com": "3", "d@x.com": "4"}
    _write(harness.root, first_values)
    assert harness.run().status == RunStatus.SUCCEEDED

    _write(harness.root, {"a@x.com": "10", "b@x.com": "20", "c@x.com": "30", "d@x.com": "4"})
    imports = harness.import_count()
    with pytest.raises(GuardError, match="3 of 4 confirmed values would change"):
        harness.run()
    assert harness.import_count() == imports
    assert _values(harness) == first_values

    forced = harness.run(force=True)
    assert forced.status == RunStatus.SUCCEEDED, forced.error
    assert _values(harness)["a@x.com"] == "10"


def test_plan_and_run_on_the_cli_list_traits(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    h.add_contacts(CONTACTS)
    h.add_audience("vip", 200, ["a@x.com"])
    _setup(h, NUMERIC)
    _write(h.root, {"a@x.com": "1", "b@x.com": "2", "c@x.com": "lots"})
    config = str(h.write_config())
    assert cli("--config", config, "db", "upgrade").returncode == 0

    planned = cli("--config", config, "--quiet", "plan")
    assert planned.returncode == 0, planned.stderr
    assert "trait: would set 2, clear 0; guard: ok" in planned.stdout
    assert "vip: would turn on 1, turn off 0; guard: ok" in planned.stdout

    ran = cli("--config", config, "--quiet", "run", env=CREDENTIALS)
    assert ran.returncode == 0, ran.stderr
    assert "trait: values 2, set 2, cleared 0" in ran.stdout
    assert "skipped 1: invalid value: not_a_number" in ran.stdout
    assert "lots" not in ran.stdout + ran.stderr  # values are not echoed
    assert _values(h) == {"a@x.com": "1", "b@x.com": "2"}
