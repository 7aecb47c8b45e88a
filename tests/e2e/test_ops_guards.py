"""Guards abort before anything is sent: nothing reaches the sandbox, the run is recorded."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from audience_sync.config import load_config
from audience_sync.errors import GuardError
from audience_sync.pipeline import SyncJob
from audience_sync.state.tables import run_audiences, sync_runs
from tests.harness import Harness

MEMBERS = [f"g{i:02d}@example.com" for i in range(10)]


def listrak_writes(h: Harness) -> int:
    requests = h.sandbox.world.stats()["requests"]
    return sum(n for route, n in requests.items() if route.startswith("POST /email/v1"))


def run_row(h: Harness, run_id: int) -> tuple[str, str | None]:
    with h.engine.connect() as conn:
        row = conn.execute(select(sync_runs).where(sync_runs.c.id == run_id)).one()
    return row.status, row.error


def synced(h: Harness) -> None:
    h.add_contacts(subscribed=MEMBERS)
    h.add_audience("vip", 300, MEMBERS)
    h.add_audience("other", 301, MEMBERS[:3])
    assert h.run().status == "succeeded"


def test_mass_removal_aborts_naming_audience_and_numbers(harness: Harness) -> None:
    h = harness
    synced(h)
    writes, values = listrak_writes(h), h.values("vip")
    h.set_members("vip", MEMBERS[:7])  # 3 of 10 leave: 30% > 20%
    h.set_members("other", MEMBERS[:4])  # an unrelated audience with a change of its own

    with pytest.raises(GuardError) as caught:
        h.run()
    run_id = 2
    assert str(caught.value) == (
        f"run {run_id} aborted by a guard, nothing was sent: vip: 3 of 10 confirmed members "
        "would be removed (30.0% > max_removed_fraction 20%) (use --force to override)"
    )
    assert listrak_writes(h) == writes, "no import and no other write reached Listrak"
    assert h.values("vip") == values
    assert h.values("other") == dict.fromkeys(MEMBERS[:3], "on")
    assert run_row(h, run_id)[0] == "aborted"
    assert {s for _, s, _ in h.change_statuses(run_id).values()} == {"aborted"}
    with h.engine.connect() as conn:
        statuses = dict(
            conn.execute(
                select(run_audiences.c.audience_id, run_audiences.c.status).where(
                    run_audiences.c.run_id == run_id
                )
            ).all()
        )
    assert sorted(statuses.values()) == ["aborted", "planned"]


def test_empty_snapshot_aborts_and_sends_nothing(harness: Harness) -> None:
    h = harness
    synced(h)
    writes = listrak_writes(h)
    h.set_members("vip", [])
    with pytest.raises(GuardError, match=r"vip: the snapshot is empty \(10 members confirmed on\)"):
        h.run()
    assert listrak_writes(h) == writes
    assert h.members_on("vip") == set(MEMBERS)


def test_force_overrides_and_a_per_audience_setting_too(harness: Harness) -> None:
    h = harness
    synced(h)
    h.set_members("vip", MEMBERS[:7])
    outcome = h.run(force=True)
    assert outcome.status == "succeeded"
    assert h.members_on("vip") == set(MEMBERS[:7])

    h.set_members("vip", MEMBERS[:2])  # 5 of 7: 71%, allowed for this audience only
    config_path = h.root / "audience-sync.toml"
    config_path.write_text(
        h.config_text().replace(
            'key = "vip"', 'key = "vip"\nguards = { max_removed_fraction = 0.9 }'
        ),
        encoding="utf-8",
    )
    job = SyncJob(load_config(config_path), engine=h.engine, client_factory=h.job()._client_factory)
    assert job.run().status == "succeeded"
    assert h.members_on("vip") == set(MEMBERS[:2])
