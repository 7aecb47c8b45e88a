"""Unit tests of error mapping and retry rules, with httpx.MockTransport (no server)."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from audience_sync.config import Credentials, ListrakSettings
from audience_sync.errors import (
    AuthenticationError,
    BetaRouteUnavailableError,
    FatalListrakError,
    PayloadTooLargeError,
    RetriableListrakError,
    SkippableListrakError,
)
from audience_sync.listrak.client import ListrakClient
from audience_sync.listrak.models import (
    ContactSegmentationFieldValue,
    ContactSegmentationFieldValues,
    ImportFile,
    ImportFileMapping,
)

API = "https://api.example.test/email/v1"
AUTH = "https://auth.example.test/OAuth2/Token"
SECRET = "super-secret-value"
SETTINGS = ListrakSettings(
    api_url=API,
    auth_url=AUTH,
    retry_attempts=4,
    retry_initial_wait_seconds=0,
    retry_max_wait_seconds=0,
)

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """Routes token requests to a token answer and API requests to ``api``; keeps every request."""

    def __init__(self, api: Handler, *, expires_in: int = 900) -> None:
        self.api = api
        self.requests: list[httpx.Request] = []
        self.tokens_issued = 0
        self.expires_in = expires_in

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/OAuth2/Token":
            self.tokens_issued += 1
            return httpx.Response(
                200,
                json={
                    "access_token": f"token-{self.tokens_issued}",
                    "token_type": "Bearer",
                    "expires_in": self.expires_in,
                },
            )
        return self.api(request)

    def api_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path != "/OAuth2/Token"]


def client_for(recorder: Recorder, clock: Callable[[], float] | None = None) -> ListrakClient:
    http = httpx.Client(transport=httpx.MockTransport(recorder))
    creds = Credentials(client_id="id", client_secret=SecretStr(SECRET))
    if clock is None:
        return ListrakClient(http=http, settings=SETTINGS, credentials=creds)
    return ListrakClient(http=http, settings=SETTINGS, credentials=creds, clock=clock)


def error(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"status": status, "error": code, "message": "nope"})


STATUS_OK = {"status": 200, "data": {"status": "Completed", "endDate": "2026-01-01T00:00:00Z"}}


def import_body() -> ImportFile:
    return ImportFile(
        fileName="f.csv",
        fileDelimiter=",",
        fileStream="",
        fileMappings=[ImportFileMapping(fileColumn=0, fileColumnType="Email")],
        importType="UpdateSubscribers",
        segmentationImportType="Update",
    )


def test_token_request_is_form_encoded_client_credentials() -> None:
    recorder = Recorder(lambda r: httpx.Response(200, json=STATUS_OK))
    client_for(recorder).import_status(1, "9")
    token_request = recorder.requests[0]
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token_request.content.decode()) == {
        "grant_type": ["client_credentials"],
        "client_id": ["id"],
        "client_secret": [SECRET],
    }
    assert recorder.requests[1].headers["authorization"] == "Bearer token-1"


def test_token_is_cached_until_shortly_before_expiry() -> None:
    now = [0.0]
    recorder = Recorder(lambda r: httpx.Response(200, json=STATUS_OK), expires_in=900)
    client = client_for(recorder, clock=lambda: now[0])
    client.import_status(1, "9")
    now[0] = 800.0
    client.import_status(1, "9")
    assert recorder.tokens_issued == 1
    now[0] = 850.0  # within the 60 s margin before expiry
    client.import_status(1, "9")
    assert recorder.tokens_issued == 2


def test_401_refreshes_once_and_retries_once() -> None:
    answers = iter([error(401, "ERROR_UNAUTHORIZED"), httpx.Response(200, json=STATUS_OK)])
    recorder = Recorder(lambda r: next(answers))
    status = client_for(recorder).import_status(1, "9")
    assert status.status == "Completed"
    assert recorder.tokens_issued == 2
    auths = [r.headers["authorization"] for r in recorder.api_requests()]
    assert auths == ["Bearer token-1", "Bearer token-2"]


def test_second_401_is_fatal() -> None:
    recorder = Recorder(lambda r: error(401, "ERROR_UNAUTHORIZED"))
    with pytest.raises(AuthenticationError, match="refused a fresh token") as caught:
        client_for(recorder).import_status(1, "9")
    assert len(recorder.api_requests()) == 2
    assert SECRET not in str(caught.value)
    assert "token-" not in str(caught.value)


def test_refused_credentials_are_fatal_without_echoing_the_secret() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return error(401, "ERROR_INVALID_CREDENTIALS")

    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = ListrakClient(
        http=http,
        settings=SETTINGS,
        credentials=Credentials(client_id="id", client_secret=SecretStr(SECRET)),
    )
    with pytest.raises(AuthenticationError, match="refused the client credentials") as caught:
        client.import_status(1, "9")
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_get_retries_429_and_5xx(status: int) -> None:
    answers = iter(
        [error(status, "ERROR_X"), error(status, "ERROR_X"), httpx.Response(200, json=STATUS_OK)]
    )
    recorder = Recorder(lambda r: next(answers))
    assert client_for(recorder).import_status(1, "9").status == "Completed"
    assert len(recorder.api_requests()) == 3


def test_retries_give_up_after_the_attempt_limit() -> None:
    recorder = Recorder(lambda r: error(500, "ERROR_UNHANDLED_EXCEPTION"))
    with pytest.raises(RetriableListrakError) as caught:
        client_for(recorder).import_status(1, "9")
    assert caught.value.status == 500
    assert len(recorder.api_requests()) == SETTINGS.retry_attempts


def test_get_retries_transport_errors() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ReadError("reset", request=request)
        return httpx.Response(200, json=STATUS_OK)

    assert client_for(Recorder(handler)).import_status(1, "9").status == "Completed"
    assert calls["n"] == 2


def test_post_connect_error_is_retried_because_nothing_was_sent() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(201, json={"status": 201, "resourceId": "5"})

    assert client_for(Recorder(handler)).post_import(1, import_body()) == "5"


@pytest.mark.parametrize(
    ("status", "code", "method", "expected"),
    [
        (400, "ERROR_INVALID_PARAMETER", "GET", FatalListrakError),
        (404, "ERROR_UNABLE_TO_LOCATE_RESOURCE", "GET", FatalListrakError),
        (404, "ERROR_UNABLE_TO_LOCATE_RESOURCE", "POST", PayloadTooLargeError),
        (403, "ERROR_INTEGRATION_CANNOT_ACCESS_BETA_ROUTE", "POST", BetaRouteUnavailableError),
        (400, "ERROR_NOT_SUBSCRIBED_EMAIL_ADDRESS", "POST", SkippableListrakError),
        (400, "ERROR_BANNED_EMAIL_ADDRESS", "POST", SkippableListrakError),
        (415, "ERROR_UNSUPPORTED_CONTENT_TYPE", "POST", FatalListrakError),
    ],
)
def test_error_codes_map_to_what_the_caller_should_do(
    status: int, code: str, method: str, expected: type[Exception]
) -> None:
    recorder = Recorder(lambda r: error(status, code))
    client = client_for(recorder)
    contact = ContactSegmentationFieldValues(
        emailAddress="a@x.com",
        segmentationFieldValues=[ContactSegmentationFieldValue(segmentationFieldId=2, value="on")],
    )

    def call() -> object:
        if method == "GET":
            return client.import_status(1, "9")
        return client.post_field_values(1, [contact])

    with pytest.raises(expected) as caught:
        call()
    assert type(caught.value) is expected
    assert getattr(caught.value, "code", None) == code
    assert len(recorder.api_requests()) == 1  # fatal and skippable errors are not retried


def test_beta_route_error_tells_the_user_what_to_do() -> None:
    recorder = Recorder(lambda r: error(403, "ERROR_INTEGRATION_CANNOT_ACCESS_BETA_ROUTE"))
    with pytest.raises(BetaRouteUnavailableError, match='submit_via = "list_import"'):
        client_for(recorder).post_field_values(1, [])


def test_unexpected_body_is_a_fatal_error() -> None:
    recorder = Recorder(lambda r: httpx.Response(200, text="<html>gateway</html>"))
    with pytest.raises(FatalListrakError, match="not a valid"):
        client_for(recorder).import_status(1, "9")


def test_paging_walks_cursors_with_the_largest_page() -> None:
    pages = {
        "Start": {"status": 200, "data": [{"emailAddress": "a@x.com"}], "nextPageCursor": "c2"},
        "c2": {
            "status": 200,
            "data": [{"emailAddress": "b@x.com"}],
            "nextPageCursor": f"{API}/List/1/Contact?cursor=c3&count=5000",
        },
        "c3": {"status": 200, "data": [{"emailAddress": "c@x.com"}], "nextPageCursor": None},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["count"] == "5000"
        return httpx.Response(200, json=pages[request.url.params["cursor"]])

    recorder = Recorder(handler)
    contacts = list(client_for(recorder).contacts(1, [7, 8]))
    assert [c.emailAddress for c in contacts] == ["a@x.com", "b@x.com", "c@x.com"]
    assert recorder.api_requests()[0].url.params["segmentationFieldIds"] == "7,8"


def test_at_most_30_fields_per_contact_read() -> None:
    with pytest.raises(ValueError, match="at most 30"):
        list(client_for(Recorder(lambda r: httpx.Response(200))).contacts(1, list(range(31))))


def test_post_body_matches_the_model_exactly() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(201, json={"status": 201, "resourceId": "12"})

    client_for(Recorder(handler)).post_import(3, import_body())
    assert ImportFile.model_validate(seen[0]) == import_body()
