from __future__ import annotations

from typing import Any

import httpx

from audience_sync.sandbox import SandboxServer

from .helpers import (
    FIELD_ID,
    LIST_ID,
    TEXT_FIELD_ID,
    assert_error,
    import_body,
    poll,
    wait_completed,
)

IMPORTS = f"/List/{LIST_ID}/ListImport"
ROWS = (
    "email,first_time_shopper\n"
    "SUB@example.com,on\n"
    "unsub@example.com,on\n"
    "stranger@example.com,on\n"
    "not-an-email,on\n"
    "banned@example.com,on\n"
    "suppressed@example.com,on\n"
)


def _start(api: httpx.Client, text: str = ROWS, **overrides: object) -> str:
    response = api.post(IMPORTS, json=import_body(text, **overrides))
    assert response.status_code == 201, response.text
    assert response.json()["status"] == 201
    resource_id: str = response.json()["resourceId"]
    return resource_id


def _subscription_states(sandbox: SandboxServer) -> dict[str, str]:
    return {c.email: c.subscription_state for c in sandbox.world.contacts(LIST_ID)}


def test_update_subscribers_results_and_summary(seeded: SandboxServer, api: httpx.Client) -> None:
    before = _subscription_states(seeded)
    import_id = _start(api)
    wait_completed(api, import_id)
    results = api.get(f"{IMPORTS}/{import_id}/Contact").json()
    assert results["status"] == 200
    assert [(r["emailAddress"], r["importResult"]) for r in results["data"]] == [
        ("SUB@example.com", "Updated"),
        ("unsub@example.com", "NotSubscribed"),
        ("stranger@example.com", "NotOnList"),
        ("not-an-email", "InvalidEmail"),
        ("banned@example.com", "Banned"),
        ("suppressed@example.com", "Suppressed"),
    ]
    summary = api.get(f"{IMPORTS}/{import_id}/Summary").json()["data"]
    assert summary == {
        "alreadySubscribedCount": 0,
        "alreadyUnsubscribedCount": 0,
        "bannedCount": 1,
        "invalidEmailCount": 1,
        "previouslyUnsubscribedCount": 1,
        "processedCount": 6,
        "skippedCount": 2,
        "subscribedCount": 0,
        "suppressedCount": 1,
        "unsubscribedCount": 0,
    }
    assert seeded.world.field_values(LIST_ID, FIELD_ID) == {"sub@example.com": "on"}
    assert _subscription_states(seeded) == before


def test_include_unsubscribed_updates_without_subscribing(
    seeded: SandboxServer, api: httpx.Client
) -> None:
    import_id = _start(api, "email,f\nunsub@example.com,on\n", includeUnsubscribed=True)
    wait_completed(api, import_id)
    results = api.get(f"{IMPORTS}/{import_id}/Contact").json()["data"]
    assert results == [{"emailAddress": "unsub@example.com", "importResult": "Updated"}]
    assert seeded.world.field_values(LIST_ID, FIELD_ID) == {"unsub@example.com": "on"}
    assert _subscription_states(seeded)["unsub@example.com"] == "Unsubscribed"


def test_checkbox_accepts_only_on_and_off(seeded: SandboxServer, api: httpx.Client) -> None:
    seeded.world.set_field_values(LIST_ID, FIELD_ID, {"other@example.com": "on"})
    text = "email,f\nsub@example.com,yes\nother@example.com,off\n"
    import_id = _start(api, text)
    wait_completed(api, import_id)
    results = api.get(f"{IMPORTS}/{import_id}/Contact").json()["data"]
    assert [r["importResult"] for r in results] == ["InvalidValue", "Updated"]
    summary = api.get(f"{IMPORTS}/{import_id}/Summary").json()["data"]
    assert summary["processedCount"] == 2
    assert summary["skippedCount"] == 1
    assert seeded.world.field_values(LIST_ID, FIELD_ID) == {"other@example.com": "off"}


def test_delimiter_qualifier_and_column_mapping(seeded: SandboxServer, api: httpx.Client) -> None:
    text = "'nick; name'|sub@example.com|on\n"
    mappings = [
        {"fileColumn": 1, "fileColumnType": "Email"},
        {"fileColumn": 2, "fileColumnType": "SegmentationField", "segmentationFieldId": FIELD_ID},
        {"fileColumn": 0, "fileColumnType": "SegmentationField", "segmentationFieldId": 201},
    ]
    import_id = _start(
        api,
        text,
        fileDelimiter="|",
        textQualifier="'",
        hasColumnNames=False,
        fileMappings=mappings,
    )
    wait_completed(api, import_id)
    assert seeded.world.field_values(LIST_ID, FIELD_ID) == {"sub@example.com": "on"}
    assert seeded.world.field_values(LIST_ID, TEXT_FIELD_ID) == {"sub@example.com": "nick; name"}


def test_status_progresses_to_completed(seeded: SandboxServer, api: httpx.Client) -> None:
    seeded.world.set_faults(import_delay_seconds=0.4)
    import_id = _start(api, "email,f\nsub@example.com,on\n")
    first = api.get(f"{IMPORTS}/{import_id}/Status").json()["data"]
    assert first["status"] == "Queued"
    assert first["endDate"] is None
    assert first["startDate"]
    assert seeded.world.field_values(LIST_ID, FIELD_ID) == {}
    seen = {first["status"]}

    def completed(data: dict[str, Any]) -> bool:
        seen.add(data["status"])
        return bool(data["status"] == "Completed")

    done = poll(lambda: api.get(f"{IMPORTS}/{import_id}/Status").json()["data"], completed)
    assert seen == {"Queued", "Processing", "Completed"}
    assert done["endDate"]
    assert seeded.world.field_values(LIST_ID, FIELD_ID) == {"sub@example.com": "on"}


def test_pending_imports_finish_on_request(seeded: SandboxServer, api: httpx.Client) -> None:
    seeded.world.set_faults(import_delay_seconds=3600)
    import_id = _start(api, "email,f\nsub@example.com,on\n")
    assert api.get(f"{IMPORTS}/{import_id}/Status").json()["data"]["status"] == "Queued"
    assert seeded.world.finish_pending_imports() == 1
    assert api.get(f"{IMPORTS}/{import_id}/Status").json()["data"]["status"] == "Completed"
    assert seeded.world.field_values(LIST_ID, FIELD_ID) == {"sub@example.com": "on"}
    assert seeded.world.finish_pending_imports() == 0


def test_import_collection_and_resource(seeded: SandboxServer, api: httpx.Client) -> None:
    ids = [_start(api, ROWS, fileName=f"run-{n}.csv") for n in range(3)]
    listed = api.get(IMPORTS).json()
    assert listed["status"] == 200
    assert [(str(i["importFileId"]), i["importFileName"]) for i in listed["data"]] == [
        (ids[0], "run-0.csv"),
        (ids[1], "run-1.csv"),
        (ids[2], "run-2.csv"),
    ]
    assert all(item["importDate"] for item in listed["data"])
    first_page = api.get(IMPORTS, params={"count": "2"}).json()
    assert len(first_page["data"]) == 2
    second = api.get(IMPORTS, params={"count": "2", "cursor": first_page["nextPageCursor"]})
    assert [i["importFileName"] for i in second.json()["data"]] == ["run-2.csv"]
    assert second.json().get("nextPageCursor") is None
    resource = api.get(f"{IMPORTS}/{ids[1]}").json()["data"]
    assert resource["importFileName"] == "run-1.csv"


def test_import_contacts_are_paged(seeded: SandboxServer, api: httpx.Client) -> None:
    text = "email,f\n" + "".join(f"x{i}@example.com,on\n" for i in range(7))
    import_id = _start(api, text)
    wait_completed(api, import_id)
    url = f"{IMPORTS}/{import_id}/Contact"
    first = api.get(url, params={"count": "4"}).json()
    rest = api.get(url, params={"count": "4", "cursor": first["nextPageCursor"]}).json()
    assert len(first["data"]) + len(rest["data"]) == 7
    assert rest.get("nextPageCursor") is None


def test_import_body_validation(seeded: SandboxServer, api: httpx.Client) -> None:
    body = import_body(ROWS)
    del body["fileName"]
    error = assert_error(api.post(IMPORTS, json=body), 400, "ERROR_INVALID_PARAMETER")
    assert "fileName" in error["message"]
    error = assert_error(
        api.post(IMPORTS, json=import_body(ROWS, importType="Upsert")),
        400,
        "ERROR_INVALID_PARAMETER",
    )
    assert "importType" in error["message"]
    bad_mapping = [{"fileColumn": 0, "fileColumnType": "Email"}] * 2
    assert_error(
        api.post(IMPORTS, json=import_body(ROWS, fileMappings=bad_mapping)),
        400,
        "ERROR_INVALID_PARAMETER",
    )
    unknown_field = [
        {"fileColumn": 0, "fileColumnType": "Email"},
        {"fileColumn": 1, "fileColumnType": "SegmentationField", "segmentationFieldId": 9},
    ]
    assert_error(
        api.post(IMPORTS, json=import_body(ROWS, fileMappings=unknown_field)),
        400,
        "ERROR_INVALID_PARAMETER",
    )
    assert_error(
        api.post(IMPORTS, json=import_body(ROWS, fileStream="%%% not base64 %%%")),
        400,
        "ERROR_INVALID_PARAMETER",  # an invalid value (format: byte), not invalid JSON
    )
    assert_error(
        api.post(f"/List/1{LIST_ID}/ListImport", json=import_body(ROWS)),
        404,
        "ERROR_UNABLE_TO_LOCATE_RESOURCE",
    )
    assert seeded.world.stats()["imports"] == []


def test_add_subscribers_subscribes_new_contacts(seeded: SandboxServer, api: httpx.Client) -> None:
    import_id = _start(api, "email,f\nnew@example.com,on\n", importType="AddSubscribers")
    wait_completed(api, import_id)
    assert _subscription_states(seeded)["new@example.com"] == "Subscribed"
    assert api.get(f"{IMPORTS}/{import_id}/Summary").json()["data"]["subscribedCount"] == 1


def test_a_stalled_import_never_finishes_while_others_do(
    seeded: SandboxServer, api: httpx.Client
) -> None:
    seeded.world.set_faults(import_delay_seconds=0.0, stall_imports_named="stuck")
    stuck = _start(api, "email,f\nsub@example.com,on\n", fileName="stuck-1.csv")
    fine = _start(api, "email,f\nsub@example.com,on\n", fileName="fine-1.csv")
    assert api.get(f"{IMPORTS}/{fine}/Status").json()["data"]["status"] == "Completed"
    stalled = api.get(f"{IMPORTS}/{stuck}/Status").json()["data"]
    assert stalled["status"] == "Processing"
    assert stalled["endDate"] is None
    seeded.world.set_faults(stall_imports_named=None)
    assert api.get(f"{IMPORTS}/{stuck}/Status").json()["data"]["status"] == "Completed"
