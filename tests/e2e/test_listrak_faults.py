"""Both submission routes against the sandbox over HTTP, under Listrak's failure modes.

Every test ends by checking that the sandbox's field values equal the desired membership.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from audience_sync.errors import BetaRouteUnavailableError
from audience_sync.listrak.models import ContactSegmentationFieldValues, ImportFile
from audience_sync.plan import state_io
from audience_sync.sandbox.settings import DropNextPost, FailNext
from tests.harness import Harness

MEMBERS = [f"m{i:04d}@example.com" for i in range(300)]
ROUTES = ["list_import", "segmentation_field_api"]


def prepare(h: Harness, route: str) -> None:
    h.listrak_settings["submit_via"] = route
    h.listrak_settings["json_chunk_size"] = 100
    h.add_contacts(subscribed=MEMBERS)
    h.add_audience("vip", 400, MEMBERS)


def assert_in_step(h: Harness, members: list[str]) -> None:
    assert h.members_on("vip") == set(members)
    assert h.confirmed() == {m: "on" for m in members}


def posts(h: Harness) -> int:
    requests = h.sandbox.world.stats()["requests"]
    return sum(n for key, n in requests.items() if key.startswith("POST /email/v1"))


@pytest.mark.parametrize("route", ROUTES)
def test_both_routes_reach_the_desired_membership(sqlite_harness: Harness, route: str) -> None:
    prepare(sqlite_harness, route)
    assert sqlite_harness.run().status == "succeeded"
    assert_in_step(sqlite_harness, MEMBERS)
    expected_posts = 1 if route == "list_import" else 3
    assert posts(sqlite_harness) == expected_posts

    sqlite_harness.set_members("vip", MEMBERS[:-10])
    assert sqlite_harness.run().status == "succeeded"
    assert sqlite_harness.members_on("vip") == set(MEMBERS[:-10])
    assert all(sqlite_harness.values("vip")[m] == "off" for m in MEMBERS[-10:])


@pytest.mark.parametrize("route", ROUTES)
def test_token_revoked_in_the_middle_of_a_run(sqlite_harness: Harness, route: str) -> None:
    prepare(sqlite_harness, route)
    world = sqlite_harness.sandbox.world
    revoked: list[int] = []

    def revoke_after_first_post(response: httpx.Response) -> None:
        if (
            response.request.method == "POST"
            and "/List/" in response.request.url.path
            and not revoked
        ):
            revoked.append(world.revoke_tokens())

    outcome = sqlite_harness.run({"event_hooks": {"response": [revoke_after_first_post]}})
    assert outcome.status == "succeeded"
    assert revoked == [1]
    token_requests = world.stats()["requests"].get("POST /OAuth2/Token", 0)
    assert token_requests == 2
    assert_in_step(sqlite_harness, MEMBERS)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("status", [429, 500])
def test_bursts_of_429_and_500_are_ridden_out(
    sqlite_harness: Harness, route: str, status: int
) -> None:
    prepare(sqlite_harness, route)
    sqlite_harness.sandbox.world.set_faults(fail_next=FailNext(count=3, status=status))
    assert sqlite_harness.run().status == "succeeded"
    assert sqlite_harness.sandbox.world.faults().fail_next is None  # the burst was consumed
    assert_in_step(sqlite_harness, MEMBERS)


def test_a_lost_import_answer_is_found_by_name_not_resent(sqlite_harness: Harness) -> None:
    prepare(sqlite_harness, "list_import")
    sqlite_harness.sandbox.world.set_faults(
        drop_next_post=DropNextPost(count=1, path_contains="ListImport")
    )
    assert sqlite_harness.run().status == "succeeded"
    assert sqlite_harness.import_count() == 1
    assert_in_step(sqlite_harness, MEMBERS)


def test_a_lost_json_answer_is_resent_harmlessly(sqlite_harness: Harness) -> None:
    prepare(sqlite_harness, "segmentation_field_api")
    sqlite_harness.sandbox.world.set_faults(
        drop_next_post=DropNextPost(count=1, path_contains="SegmentationField")
    )
    assert sqlite_harness.run().status == "succeeded"
    assert sqlite_harness.import_count() == 4  # three batches, one of them sent twice
    assert_in_step(sqlite_harness, MEMBERS)


@pytest.mark.parametrize("route", ROUTES)
def test_the_size_limit_404_halves_the_parts(sqlite_harness: Harness, route: str) -> None:
    prepare(sqlite_harness, route)
    sqlite_harness.sandbox.world.set_faults(max_body_bytes=4_000)
    assert sqlite_harness.run().status == "succeeded"
    imports = sqlite_harness.sandbox.world.stats()["imports"]
    assert len(imports) > 3
    assert sum(i["rows"] for i in imports) == len(MEMBERS)
    assert_in_step(sqlite_harness, MEMBERS)


@pytest.mark.parametrize("route", ROUTES)
def test_the_size_limit_404_halves_the_parts_read_by_the_child_process(
    sqlite_harness: Harness, route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read of the changes left to send after a 404 goes through SQLite's child process
    (as at 10M), and the parts still carry every change once, in email order."""
    monkeypatch.setattr(state_io, "PROCESS_MIN_ROWS", 1)
    prepare(sqlite_harness, route)
    sqlite_harness.sandbox.world.set_faults(max_body_bytes=4_000)
    assert sqlite_harness.run().status == "succeeded"
    imports = sqlite_harness.sandbox.world.stats()["imports"]
    assert len(imports) > 3
    assert sum(i["rows"] for i in imports) == len(MEMBERS)
    assert_in_step(sqlite_harness, MEMBERS)


def test_beta_route_refused_ends_the_run_telling_what_to_do(sqlite_harness: Harness) -> None:
    prepare(sqlite_harness, "segmentation_field_api")
    sqlite_harness.sandbox.world.set_faults(beta_route_enabled=False)
    with pytest.raises(BetaRouteUnavailableError, match='submit_via = "list_import"'):
        sqlite_harness.run()
    assert sqlite_harness.confirmed() == {}
    statuses = {s for _, s, _ in sqlite_harness.change_statuses(1).values()}
    assert statuses == {"failed"}


@pytest.mark.parametrize("route", ROUTES)
def test_every_request_body_matches_the_published_models(
    sqlite_harness: Harness, route: str
) -> None:
    prepare(sqlite_harness, route)
    sqlite_harness.add_contacts(unsubscribed=["gone@example.com"])
    sqlite_harness.set_members("vip", [*MEMBERS, "gone@example.com"])
    captured: list[httpx.Request] = []
    hooks: dict[str, Any] = {"request": [captured.append]}
    sqlite_harness.run({"event_hooks": hooks})
    sqlite_harness.set_members("vip", MEMBERS[5:])
    sqlite_harness.run({"event_hooks": hooks})

    api_posts = [r for r in captured if r.method == "POST" and "/email/v1/" in str(r.url)]
    assert api_posts
    for request in api_posts:
        assert request.headers["content-type"] == "application/json"
        body = json.loads(request.content)
        if request.url.path.endswith("/ListImport"):
            model = ImportFile.model_validate(body)
            assert model.importType == "UpdateSubscribers"
            assert model.includeUnsubscribed is False
        else:
            assert request.url.path.endswith("/Contact/SegmentationField")
            for item in body:
                parsed = ContactSegmentationFieldValues.model_validate(item)
                assert {v.value for v in parsed.segmentationFieldValues} <= {"on", "off"}
    token_posts = [r for r in captured if r.url.path.endswith("/OAuth2/Token")]
    assert all(
        r.headers["content-type"] == "application/x-www-form-urlencoded" for r in token_posts
    )
    assert sqlite_harness.members_on("vip") == set(MEMBERS[5:])
