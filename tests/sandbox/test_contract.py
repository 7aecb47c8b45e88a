"""The sandbox refuses request bodies by Listrak's published Swagger document, not by the
client's models: each body here is one the client's models accept and the document rejects."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, TypeAdapter

from audience_sync.listrak.models import (
    ContactSegmentationFieldValues,
    ImportFile,
    SegmentationFieldCreate,
    SegmentationFieldGroupCreate,
)
from audience_sync.sandbox import SandboxServer, api
from audience_sync.sandbox.contract import body_validator, check_body
from audience_sync.sandbox.problems import ApiError

from .helpers import FIELD_ID, LIST_ID, assert_error, import_body

GROUPS = f"/List/{LIST_ID}/SegmentationFieldGroup"
CONTACT_VALUES = list[ContactSegmentationFieldValues]


def values_body(field_id: int) -> list[dict[str, Any]]:
    return [
        {
            "emailAddress": "sub@example.com",
            "segmentationFieldValues": [{"segmentationFieldId": field_id, "value": "on"}],
        }
    ]


CASES = [
    pytest.param(
        f"/List/{LIST_ID}/ListImport",
        ImportFile,
        import_body("email,x\n", fileStream="not base64!"),
        "fileStream: must be in format byte.",
        id="import-file-stream-not-base64",
    ),
    pytest.param(
        f"/List/{LIST_ID}/Contact/SegmentationField",
        CONTACT_VALUES,
        values_body(2**31),
        "0.segmentationFieldValues.0.segmentationFieldId: must be in format int32.",
        id="field-id-beyond-int32",
    ),
    pytest.param(
        GROUPS,
        SegmentationFieldGroupCreate,
        {"segmentationFieldGroupName": "Engage Audiences", "position": "5"},
        "position: must be of type integer.",
        id="position-as-a-string",
    ),
    pytest.param(
        f"{GROUPS}/1/SegmentationField",
        SegmentationFieldCreate,
        {
            "segmentationFieldName": "vip",
            "dataType": "CheckBox",
            "maxLength": 2**31,
            "position": 1,
        },
        "maxLength: must be in format int32.",
        id="max-length-beyond-int32",
    ),
]


@pytest.mark.parametrize(("path", "model", "body", "message"), CASES)
def test_a_body_the_client_models_accept_but_the_document_rejects_is_refused(
    seeded: SandboxServer,
    api: httpx.Client,
    path: str,
    model: type[BaseModel] | type[CONTACT_VALUES],
    body: Any,
    message: str,
) -> None:
    TypeAdapter(model).validate_python(body)  # the client's models let it through

    response = api.post(path, json=body)

    error = assert_error(response, 400, "ERROR_INVALID_PARAMETER")
    assert error["message"] == message
    assert "sub@example.com" not in response.text
    assert seeded.world.stats()["imports"] == []


def test_a_body_missing_required_properties_names_them(
    seeded: SandboxServer, api: httpx.Client
) -> None:
    response = api.post(GROUPS, json={"segmentationFieldGroupName": "Engage Audiences"})
    error = assert_error(response, 400, "ERROR_INVALID_PARAMETER")
    assert error["message"] == "body: position is required."


def test_a_valid_body_still_passes(seeded: SandboxServer, api: httpx.Client) -> None:
    response = api.post(f"/List/{LIST_ID}/Contact/SegmentationField", json=values_body(FIELD_ID))
    assert response.status_code == 201, response.text


def _spec_path(route_path: str) -> str:
    return re.sub(r"\{(\w+):int\}", r"{\1}", route_path.removeprefix(api.API_PREFIX))


def test_every_body_route_the_sandbox_serves_has_a_schema_in_the_document() -> None:
    posts = [
        r.path
        for r in api.ROUTES
        if r.methods is not None and "POST" in r.methods and r.path != api.TOKEN_PATH
    ]
    assert len(posts) == 4
    for path in posts:
        assert body_validator(_spec_path(path), "POST") is not None


def test_check_body_never_echoes_the_value() -> None:
    with pytest.raises(ApiError) as caught:
        check_body(
            "/List/{listId}/Contact/SegmentationField",
            "POST",
            [{"emailAddress": 12345, "segmentationFieldValues": []}],
        )
    assert caught.value.message == "0.emailAddress: must be of type string."
    assert "12345" not in caught.value.message
