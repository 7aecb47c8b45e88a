"""Listrak's reason is kept, refused credentials are a config problem, and a POST that never
left is not an answer lost (unit tests with httpx.MockTransport)."""

from __future__ import annotations

import logging

import httpx
import pytest
from pydantic import SecretStr

from audience_sync.cli.failures import failure_for, format_failure
from audience_sync.config import Credentials, ListrakSettings
from audience_sync.errors import CredentialsRefusedError, FatalListrakError, RetriableListrakError
from audience_sync.listrak.client import ListrakClient
from audience_sync.listrak.routes import ListImportRoute, Part
from tests.listrak.test_client_errors import import_body

API = "https://api.example.test/email/v1"
AUTH = "https://auth.example.test/OAuth2/Token"
SECRET = "super-secret-value"
SETTINGS = ListrakSettings(
    api_url=API,
    auth_url=AUTH,
    retry_attempts=2,
    retry_initial_wait_seconds=0,
    retry_max_wait_seconds=0,
)
TOKEN = {"access_token": "tok", "token_type": "Bearer", "expires_in": 900}
IMPORTS = "/email/v1/List/1/ListImport"


def client_with(handler: httpx.MockTransport) -> ListrakClient:
    creds = Credentials(client_id="id", client_secret=SecretStr(SECRET))
    return ListrakClient(http=httpx.Client(transport=handler), settings=SETTINGS, credentials=creds)


def test_refused_import_keeps_listraks_message_with_addresses_masked() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/OAuth2/Token":
            return httpx.Response(200, json=TOKEN)
        return httpx.Response(
            400,
            json={
                "status": 400,
                "error": "ERROR_INVALID_PARAMETER",
                "message": "segmentationFieldId 999 is not a profile field (row bob@example.com)",
            },
        )

    with pytest.raises(FatalListrakError) as caught:
        client_with(httpx.MockTransport(handler)).post_import(1, import_body())
    assert str(caught.value) == (
        f"Listrak answered 400 ERROR_INVALID_PARAMETER to POST {IMPORTS}: "
        "segmentationFieldId 999 is not a profile field (row b***@example.com)"
    )


def test_invalid_client_gets_the_credentials_hint_and_exit_2() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400, json={"error": "invalid_client", "error_description": "Invalid client."}
        )

    with pytest.raises(CredentialsRefusedError) as caught:
        client_with(httpx.MockTransport(handler)).import_status(1, "9")
    failure = failure_for(caught.value)
    assert failure.exit_code == 2
    assert format_failure(failure, log_format="text") == (
        "error: Listrak refused the client credentials (400 invalid_client); check "
        "LISTRAK_CLIENT_ID and LISTRAK_CLIENT_SECRET in the environment, and that the "
        "integration's API access is not paused"
    )
    assert SECRET not in str(caught.value)


def route_over(handler: httpx.MockTransport) -> ListImportRoute:
    return ListImportRoute(
        client_with(handler),
        SETTINGS,
        installation_id="ab12cd34",
        run_id=1,
        audience_key="vip",
        list_id=1,
        field_id=5,
    )


PART = Part(
    number=1,
    file_name="audience-sync_run1_vip_field5_part1.csv",
    first_email="a@example.com",
    last_email="b@example.com",
    row_count=2,
    byte_count=30,
    body=b"a@example.com,on\nb@example.com,on\n",
)


def events(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("import.")]


def test_token_timeout_before_the_post_is_not_an_answer_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        raise httpx.ReadTimeout("timed out", request=request)

    with (
        caplog.at_level(logging.INFO, logger="audience_sync"),
        pytest.raises(RetriableListrakError, match="could not get a Listrak token"),
    ):
        route_over(httpx.MockTransport(handler)).post(PART)
    assert set(sent) == {"/OAuth2/Token"}, "the import POST was never sent"
    assert events(caplog) == ["import.not_sent"] * SETTINGS.retry_attempts


def test_post_timeout_is_an_answer_lost_and_looked_up(caplog: pytest.LogCaptureFixture) -> None:
    posts: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/OAuth2/Token":
            return httpx.Response(200, json=TOKEN)
        if request.method == "GET":
            return httpx.Response(200, json={"status": 200, "data": []})
        posts.append(1)
        if len(posts) == 1:
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(201, json={"status": 201, "resourceId": "42"})

    with caplog.at_level(logging.INFO, logger="audience_sync"):
        assert route_over(httpx.MockTransport(handler)).post(PART) == "42"
    assert events(caplog) == ["import.answer_lost"]
    assert len(posts) == 2
