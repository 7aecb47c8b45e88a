from __future__ import annotations

import httpx

from audience_sync.sandbox import SandboxServer

from .helpers import FIELD_ID, LIST_ID, assert_error, wait_completed

URL = f"/List/{LIST_ID}/Contact/SegmentationField"


def _values(email: str, value: str, field_id: int = FIELD_ID) -> dict[str, object]:
    return {
        "emailAddress": email,
        "segmentationFieldValues": [{"segmentationFieldId": field_id, "value": value}],
    }


def test_resource_id_is_a_readable_list_import(seeded: SandboxServer, api: httpx.Client) -> None:
    body = [_values("sub@example.com", "on"), _values("unsub@example.com", "on")]
    response = api.post(URL, json=body)
    assert response.status_code == 201
    import_id = response.json()["resourceId"]
    wait_completed(api, import_id)
    results = api.get(f"/List/{LIST_ID}/ListImport/{import_id}/Contact").json()["data"]
    assert [r["importResult"] for r in results] == ["Updated", "NotSubscribed"]
    summary = api.get(f"/List/{LIST_ID}/ListImport/{import_id}/Summary").json()["data"]
    assert summary["processedCount"] == 2
    assert summary["previouslyUnsubscribedCount"] == 1
    assert seeded.world.field_values(LIST_ID, FIELD_ID) == {"sub@example.com": "on"}
    assert seeded.world.stats()["imports"][0]["route"] == "SegmentationField"


def test_checkbox_value_must_be_on_or_off(seeded: SandboxServer, api: httpx.Client) -> None:
    response = api.post(URL, json=[_values("sub@example.com", "true")])
    assert_error(response, 400, "ERROR_INVALID_PARAMETER")
    assert seeded.world.stats()["imports"] == []


def test_body_must_be_array_of_contacts(seeded: SandboxServer, api: httpx.Client) -> None:
    assert_error(api.post(URL, json=[]), 400, "ERROR_INVALID_PARAMETER")
    error = assert_error(
        api.post(URL, json=[{"segmentationFieldValues": []}]), 400, "ERROR_INVALID_PARAMETER"
    )
    assert "emailAddress" in error["message"]
    assert_error(
        api.post(URL, json=[_values("sub@example.com", "on", 4242)]), 400, "ERROR_INVALID_PARAMETER"
    )


def test_beta_route_can_be_closed(seeded: SandboxServer, api: httpx.Client) -> None:
    seeded.world.set_faults(beta_route_enabled=False)
    response = api.post(URL, json=[_values("sub@example.com", "on")])
    assert_error(response, 403, "ERROR_INTEGRATION_CANNOT_ACCESS_BETA_ROUTE")
    assert seeded.world.stats()["imports"] == []
    seeded.world.set_faults(beta_route_enabled=True)
    assert api.post(URL, json=[_values("sub@example.com", "on")]).status_code == 201
