"""Typed profile fields: Text (maxLength), Numeric, Date and RadioButton values are validated per
contact in a list import; valid values are stored and read back as text."""

from __future__ import annotations

from typing import Any

import httpx

from audience_sync.sandbox import SandboxServer

from .helpers import LIST_ID, assert_error, import_body, wait_completed

IMPORTS = f"/List/{LIST_ID}/ListImport"
LTV, SINCE, TIER, NOTE = 301, 302, 303, 304
EMAILS = ["sub@example.com", "other@example.com", "third@example.com", "fourth@example.com"]


def _typed(sandbox: SandboxServer) -> SandboxServer:
    world = sandbox.world
    world.add_list(LIST_ID, "Main")
    world.add_field(LIST_ID, "ltv", data_type="Numeric", field_id=LTV, group_name="Traits")
    world.add_field(LIST_ID, "since", data_type="Date", field_id=SINCE, group_name="Traits")
    world.add_field(
        LIST_ID,
        "tier",
        data_type="RadioButton",
        field_id=TIER,
        group_name="Traits",
        choices=["gold", "silver"],
    )
    world.add_field(
        LIST_ID, "note", data_type="Text", field_id=NOTE, group_name="Traits", max_length=5
    )
    world.upsert_contacts(LIST_ID, [{"emailAddress": e} for e in EMAILS])
    world.set_faults(import_delay_seconds=0.0)
    return sandbox


def _import(api: httpx.Client, field_id: int, values: list[str]) -> list[str]:
    text = "email,value\n" + "".join(f"{e},{v}\n" for e, v in zip(EMAILS, values, strict=False))
    body = import_body(text)
    body["fileMappings"][1]["segmentationFieldId"] = field_id
    response = api.post(IMPORTS, json=body)
    assert response.status_code == 201, response.text
    import_id = response.json()["resourceId"]
    wait_completed(api, import_id)
    rows: list[dict[str, Any]] = api.get(f"{IMPORTS}/{import_id}/Contact").json()["data"]
    return [r["importResult"] for r in rows]


def _read_back(api: httpx.Client, field_id: int) -> dict[str, str]:
    response = api.get(f"/List/{LIST_ID}/Contact", params={"segmentationFieldIds": str(field_id)})
    assert response.status_code == 200, response.text
    return {
        c["emailAddress"]: c["segmentationFieldValues"][0]["value"]
        for c in response.json()["data"]
        if c["segmentationFieldValues"][0]["value"]
    }


def test_numeric_fields_take_plain_decimals(sandbox: SandboxServer, api: httpx.Client) -> None:
    _typed(sandbox)
    results = _import(api, LTV, ["412.5", "1e3", "abc", "-7"])
    assert results == ["Updated", "InvalidValue", "InvalidValue", "Updated"]
    assert _read_back(api, LTV) == {"sub@example.com": "412.5", "fourth@example.com": "-7"}


def test_date_fields_take_calendar_dates(sandbox: SandboxServer, api: httpx.Client) -> None:
    _typed(sandbox)
    results = _import(api, SINCE, ["2026-11-02", "11/02/2026", "2026-02-30", "yesterday"])
    assert results == ["Updated", "Updated", "InvalidValue", "InvalidValue"]
    assert _read_back(api, SINCE) == {
        "sub@example.com": "2026-11-02",
        "other@example.com": "11/02/2026",
    }


def test_radio_buttons_take_one_of_their_choices(sandbox: SandboxServer, api: httpx.Client) -> None:
    _typed(sandbox)
    results = _import(api, TIER, ["gold", "Gold", "bronze", "silver"])
    assert results == ["Updated", "InvalidValue", "InvalidValue", "Updated"]
    assert _read_back(api, TIER) == {"sub@example.com": "gold", "fourth@example.com": "silver"}


def test_text_longer_than_max_length_is_rejected_not_truncated(
    sandbox: SandboxServer, api: httpx.Client
) -> None:
    _typed(sandbox)
    results = _import(api, NOTE, ["short", "toolong"])
    assert results == ["Updated", "InvalidValue"]
    assert _read_back(api, NOTE) == {"sub@example.com": "short"}
    import_id = api.get(IMPORTS).json()["data"][0]["importFileId"]
    summary = api.get(f"{IMPORTS}/{import_id}/Summary").json()["data"]
    assert (summary["processedCount"], summary["skippedCount"]) == (2, 1)


def test_a_bad_value_on_the_json_route_refuses_the_request(
    sandbox: SandboxServer, api: httpx.Client
) -> None:
    _typed(sandbox)
    body = [
        {
            "emailAddress": "sub@example.com",
            "segmentationFieldValues": [{"segmentationFieldId": LTV, "value": "twelve"}],
        }
    ]
    response = api.post(f"/List/{LIST_ID}/Contact/SegmentationField", json=body)
    assert_error(response, 400, "ERROR_INVALID_PARAMETER")
    assert "Numeric" in response.json()["message"]


def test_typed_fields_are_created_and_described(sandbox: SandboxServer, api: httpx.Client) -> None:
    _typed(sandbox)
    group = api.post(
        f"/List/{LIST_ID}/SegmentationFieldGroup",
        json={"segmentationFieldGroupName": "More", "position": 2},
    ).json()["resourceId"]
    fields = f"/List/{LIST_ID}/SegmentationFieldGroup/{group}/SegmentationField"
    created = api.post(
        fields,
        json={
            "segmentationFieldName": "spend",
            "dataType": "Numeric",
            "maxLength": 20,
            "position": 1,
        },
    )
    assert created.status_code == 201, created.text
    described = api.get(fields).json()["data"]
    assert [(f["segmentationFieldName"], f["dataType"], f["maxLength"]) for f in described] == [
        ("spend", "Numeric", 20)
    ]


def test_admin_fields_take_max_length_and_choices(
    sandbox: SandboxServer, admin: httpx.Client
) -> None:
    sandbox.world.add_list(LIST_ID, "Main")
    response = admin.post(
        f"/lists/{LIST_ID}/fields",
        json={
            "segmentationFieldName": "tier",
            "dataType": "RadioButton",
            "maxLength": 10,
            "choices": ["gold", "silver"],
        },
    )
    assert response.status_code == 201, response.text
    ids = response.json()
    field = sandbox.world.get_field(
        LIST_ID, ids["segmentationFieldGroupId"], ids["segmentationFieldId"]
    )
    assert (field.max_length, field.choices) == (10, ("gold", "silver"))


def test_an_overwrite_import_with_a_blank_cell_clears_a_typed_value(
    sandbox: SandboxServer, api: httpx.Client
) -> None:
    _typed(sandbox)
    assert _import(api, LTV, ["412.5", "3"]) == ["Updated", "Updated"]
    text = f"email,value\n{EMAILS[0]},\n"
    body = import_body(text, segmentationImportType="Overwrite")
    body["fileMappings"][1]["segmentationFieldId"] = LTV
    import_id = api.post(IMPORTS, json=body).json()["resourceId"]
    wait_completed(api, import_id)
    assert _read_back(api, LTV) == {EMAILS[1]: "3"}
