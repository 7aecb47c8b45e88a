"""Helpers for the sandbox tests: error assertions, polling with a deadline, import bodies."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import httpx

from audience_sync.sandbox import SandboxServer

LIST_ID = 100
FIELD_ID = 200
TEXT_FIELD_ID = 201
CLIENT = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}


def get_token(sandbox: SandboxServer) -> str:
    response = httpx.post(sandbox.auth_url, data={"grant_type": "client_credentials", **CLIENT})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["error"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def poll(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 5.0) -> Any:
    """Call ``fetch`` until ``done`` holds for its result, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if done(result):
            return result
        assert time.monotonic() < deadline, f"still not done after {timeout}s: {result!r}"


def csv_b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def import_body(text: str, **overrides: Any) -> dict[str, Any]:
    """An UpdateSubscribers ImportFile: column 0 email, column 1 field 200, with a header row."""
    body: dict[str, Any] = {
        "fileName": "audience.csv",
        "fileDelimiter": ",",
        "fileStream": csv_b64(text),
        "hasColumnNames": True,
        "textQualifier": '"',
        "fileMappings": [
            {"fileColumn": 0, "fileColumnType": "Email"},
            {
                "fileColumn": 1,
                "fileColumnType": "SegmentationField",
                "segmentationFieldId": FIELD_ID,
            },
        ],
        "importType": "UpdateSubscribers",
        "segmentationImportType": "Update",
        "includeUnsubscribed": False,
    }
    body.update(overrides)
    return body


def wait_completed(api: httpx.Client, import_id: str) -> dict[str, Any]:
    url = f"/List/{LIST_ID}/ListImport/{import_id}/Status"
    body: dict[str, Any] = poll(
        lambda: api.get(url).json(), lambda b: b["data"]["status"] == "Completed"
    )
    return body
