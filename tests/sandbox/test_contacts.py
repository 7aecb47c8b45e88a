from __future__ import annotations

import httpx

from audience_sync.sandbox import SandboxServer

from .helpers import FIELD_ID, LIST_ID, TEXT_FIELD_ID, assert_error

URL = f"/List/{LIST_ID}/Contact"


def _add_subscribers(sandbox: SandboxServer, n: int) -> list[str]:
    emails = [f"p{i:04d}@example.com" for i in range(n)]
    sandbox.world.upsert_contacts(LIST_ID, [{"emailAddress": e} for e in emails])
    return emails


def test_defaults_to_subscribed_contacts(seeded: SandboxServer, api: httpx.Client) -> None:
    body = api.get(URL).json()
    assert body["status"] == 200
    emails = {c["emailAddress"] for c in body["data"]}
    assert "unsub@example.com" not in emails
    assert "sub@example.com" in emails
    assert body.get("nextPageCursor") is None
    unsubscribed = api.get(URL, params={"subscriptionState": "Unsubscribed"}).json()["data"]
    assert [c["emailAddress"] for c in unsubscribed] == ["unsub@example.com"]
    assert_error(api.get(URL, params={"subscriptionState": "Gone"}), 400, "ERROR_INVALID_PARAMETER")


def test_requested_field_values_are_returned(seeded: SandboxServer, api: httpx.Client) -> None:
    seeded.world.set_field_values(LIST_ID, FIELD_ID, {"sub@example.com": "on"})
    params = {"segmentationFieldIds": f"{FIELD_ID},{TEXT_FIELD_ID}"}
    contacts = {c["emailAddress"]: c for c in api.get(URL, params=params).json()["data"]}
    values = {
        v["segmentationFieldId"]: v["value"]
        for v in contacts["sub@example.com"]["segmentationFieldValues"]
    }
    assert values == {FIELD_ID: "on", TEXT_FIELD_ID: ""}
    assert contacts["other@example.com"]["segmentationFieldValues"][0]["value"] == ""


def test_more_than_thirty_field_ids_rejected(seeded: SandboxServer, api: httpx.Client) -> None:
    ids = ",".join(str(i) for i in range(1, 32))
    response = api.get(URL, params={"segmentationFieldIds": ids})
    assert_error(response, 400, "ERROR_TOO_MANY_SEGMENTATION_FIELDS")


def test_unknown_field_id_is_invalid(seeded: SandboxServer, api: httpx.Client) -> None:
    response = api.get(URL, params={"segmentationFieldIds": "999999"})
    assert_error(response, 400, "ERROR_INVALID_PARAMETER")


def test_count_limits(seeded: SandboxServer, api: httpx.Client) -> None:
    assert_error(api.get(URL, params={"count": "5001"}), 400, "ERROR_INVALID_PARAMETER")
    assert_error(api.get(URL, params={"count": "0"}), 400, "ERROR_INVALID_PARAMETER")
    assert_error(api.get(URL, params={"count": "ten"}), 400, "ERROR_INVALID_PARAMETER")
    assert api.get(URL, params={"count": "5000"}).status_code == 200


def test_default_page_is_one_thousand(seeded: SandboxServer, api: httpx.Client) -> None:
    _add_subscribers(seeded, 1001)
    first = api.get(URL).json()
    assert len(first["data"]) == 1000
    assert first["nextPageCursor"]


def test_cursor_walk_visits_every_contact_once(seeded: SandboxServer, api: httpx.Client) -> None:
    emails = _add_subscribers(seeded, 23)
    seen: list[str] = []
    cursor = "Start"
    pages = 0
    while cursor:
        body = api.get(URL, params={"count": "5", "cursor": cursor}).json()
        seen += [c["emailAddress"] for c in body["data"]]
        cursor = body.get("nextPageCursor")
        pages += 1
    expected = {"sub@example.com", "banned@example.com", "suppressed@example.com"}
    expected |= {"other@example.com", *emails}
    assert sorted(seen) == sorted(expected)
    assert pages == 6


def test_bad_cursor_is_invalid(seeded: SandboxServer, api: httpx.Client) -> None:
    assert_error(api.get(URL, params={"cursor": "garbage!"}), 400, "ERROR_INVALID_PARAMETER")
