from __future__ import annotations

import httpx
import pytest

from audience_sync.sandbox import SandboxServer

from .helpers import FIELD_ID, LIST_ID, assert_error

GROUP_BODY = {"segmentationFieldGroupName": "Engage Audiences 2", "position": 1}
FIELD_BODY = {
    "segmentationFieldName": "vip",
    "dataType": "CheckBox",
    "maxLength": 3,
    "position": 0,
}


def _group_id(api: httpx.Client) -> int:
    groups = api.get(f"/List/{LIST_ID}/SegmentationFieldGroup").json()["data"]
    group_id: int = groups[0]["segmentationFieldGroupId"]
    return group_id


def test_list_collection_and_resource(seeded: SandboxServer, api: httpx.Client) -> None:
    collection = api.get("/List")
    assert collection.status_code == 200
    assert collection.json()["status"] == 200
    assert [item["listId"] for item in collection.json()["data"]] == [LIST_ID]
    resource = api.get(f"/List/{LIST_ID}").json()
    assert resource["status"] == 200
    assert resource["data"]["listName"] == "Main"
    assert_error(api.get("/List/999"), 404, "ERROR_UNABLE_TO_LOCATE_RESOURCE")


def test_create_and_read_group_and_field(seeded: SandboxServer, api: httpx.Client) -> None:
    created = api.post(f"/List/{LIST_ID}/SegmentationFieldGroup", json=GROUP_BODY)
    assert created.status_code == 201
    assert created.json()["status"] == 201
    group_id = created.json()["resourceId"]
    assert isinstance(group_id, str)
    group = api.get(f"/List/{LIST_ID}/SegmentationFieldGroup/{group_id}").json()["data"]
    assert group == {
        "segmentationFieldGroupId": int(group_id),
        "segmentationFieldGroupName": "Engage Audiences 2",
        "position": 1,
    }
    base = f"/List/{LIST_ID}/SegmentationFieldGroup/{group_id}/SegmentationField"
    field_created = api.post(base, json=FIELD_BODY)
    assert field_created.status_code == 201
    field_id = field_created.json()["resourceId"]
    field = api.get(f"{base}/{field_id}").json()["data"]
    assert field["segmentationFieldName"] == "vip"
    assert field["dataType"] == "CheckBox"
    assert field["segmentationFieldGroupId"] == int(group_id)
    names = [f["segmentationFieldName"] for f in api.get(base).json()["data"]]
    assert names == ["vip"]


def test_duplicate_group_name_is_invalid(seeded: SandboxServer, api: httpx.Client) -> None:
    url = f"/List/{LIST_ID}/SegmentationFieldGroup"
    assert api.post(url, json=GROUP_BODY).status_code == 201
    assert_error(api.post(url, json=GROUP_BODY), 400, "ERROR_INVALID_PARAMETER")


@pytest.mark.parametrize("missing", ["segmentationFieldName", "dataType", "maxLength", "position"])
def test_field_create_requires_each_field(
    seeded: SandboxServer, api: httpx.Client, missing: str
) -> None:
    body = {k: v for k, v in FIELD_BODY.items() if k != missing}
    url = f"/List/{LIST_ID}/SegmentationFieldGroup/{_group_id(api)}/SegmentationField"
    error = assert_error(api.post(url, json=body), 400, "ERROR_INVALID_PARAMETER")
    assert missing in error["message"]


def test_field_create_rejects_unknown_data_type(seeded: SandboxServer, api: httpx.Client) -> None:
    url = f"/List/{LIST_ID}/SegmentationFieldGroup/{_group_id(api)}/SegmentationField"
    error = assert_error(
        api.post(url, json={**FIELD_BODY, "dataType": "Boolean"}), 400, "ERROR_INVALID_PARAMETER"
    )
    assert "dataType" in error["message"]


def test_unknown_ids_answer_unable_to_locate(seeded: SandboxServer, api: httpx.Client) -> None:
    group_id = _group_id(api)
    for path in (
        "/List/1/SegmentationFieldGroup",
        f"/List/{LIST_ID}/SegmentationFieldGroup/1",
        f"/List/{LIST_ID}/SegmentationFieldGroup/1/SegmentationField",
        f"/List/{LIST_ID}/SegmentationFieldGroup/{group_id}/SegmentationField/1",
        f"/List/{LIST_ID}/ListImport/1",
        f"/List/{LIST_ID}/ListImport/1/Status",
        "/List/1/Contact",
    ):
        assert_error(api.get(path), 404, "ERROR_UNABLE_TO_LOCATE_RESOURCE")
    url = f"/List/{LIST_ID}/SegmentationFieldGroup/{group_id}/SegmentationField/{FIELD_ID}"
    assert api.get(url).status_code == 200


def test_unknown_route_and_unsupported_method(seeded: SandboxServer, api: httpx.Client) -> None:
    assert_error(api.get("/Nowhere"), 404, "ERROR_UNKNOWN_ROUTE")
    assert_error(api.get(f"/List/{LIST_ID}/Nowhere"), 404, "ERROR_UNKNOWN_ROUTE")
    assert_error(api.delete("/List"), 405, "ERROR_UNSUPPORTED_METHOD")
    assert_error(api.put(f"/List/{LIST_ID}/ListImport"), 405, "ERROR_UNSUPPORTED_METHOD")


def test_post_needs_json_content_type(seeded: SandboxServer, api: httpx.Client) -> None:
    url = f"/List/{LIST_ID}/SegmentationFieldGroup"
    response = api.post(url, content=b'{"segmentationFieldGroupName": "x", "position": 1}')
    assert_error(response, 415, "ERROR_UNSUPPORTED_CONTENT_TYPE")
    response = api.post(url, data={"segmentationFieldGroupName": "x"})
    assert_error(response, 415, "ERROR_UNSUPPORTED_CONTENT_TYPE")


def test_invalid_json_is_a_malformed_body(seeded: SandboxServer, api: httpx.Client) -> None:
    response = api.post(
        f"/List/{LIST_ID}/SegmentationFieldGroup",
        content=b'{"segmentationFieldGroupName": ',
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 400, "ERROR_MALFORMED_REQUEST_BODY")


def test_token_never_appears_in_answers(seeded: SandboxServer, api: httpx.Client) -> None:
    token = api.headers["Authorization"].split(" ", 1)[1]
    for response in (api.get("/List"), api.get("/Nowhere"), api.delete("/List")):
        assert token not in response.text
