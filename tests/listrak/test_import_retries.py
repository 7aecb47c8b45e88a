"""One retry layer for list imports: stamina in the client, in its testing mode (no waits).

A refused POST (429) is sent again; a POST whose answer may be lost (connection broken after
sending, 5xx) is looked up by its file name before any re-send; every request of one part,
look-ups included, comes out of the same attempt budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
import stamina

from audience_sync.errors import RetriableListrakError
from audience_sync.listrak.routes import ListImportRoute, Part
from tests.listrak.test_client_errors import SETTINGS, Recorder, client_for, error

ATTEMPTS = 5
FILE_NAME = "audience-sync_run7_vip_field300_part1.csv"
CREATED = {"status": 201, "resourceId": "77"}

Answer = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def no_backoff() -> Iterator[None]:
    with stamina.set_testing(True, attempts=ATTEMPTS):
        yield


def lost(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("peer closed", request=request)


def listing(*names: str) -> httpx.Response:
    data = [{"importFileId": 40 + i, "importFileName": n} for i, n in enumerate(names)]
    return httpx.Response(200, json={"status": 200, "data": data, "nextPageCursor": None})


class Listrak:
    """Answers each POST and each look-up (GET) from its own script; the last answer repeats."""

    def __init__(self, posts: list[Answer], lookups: list[Answer] | None = None) -> None:
        self.posts = posts
        self.lookups = lookups or [lambda r: listing()]
        self.recorder = Recorder(self)
        self.post_count = 0
        self.lookup_count = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.post_count += 1
            return self.posts[min(self.post_count, len(self.posts)) - 1](request)
        self.lookup_count += 1
        return self.lookups[min(self.lookup_count, len(self.lookups)) - 1](request)


def post_part(listrak: Listrak) -> str:
    route = ListImportRoute(
        client_for(listrak.recorder),
        SETTINGS,
        installation_id="ab12cd34",
        run_id=7,
        audience_key="vip",
        list_id=1,
        field_id=300,
    )
    part = Part(
        number=1,
        file_name=FILE_NAME,
        first_email="a@example.com",
        last_email="b@example.com",
        row_count=2,
        byte_count=30,
        body=b"EmailAddress,vip\na@example.com,on\nb@example.com,on\n",
    )
    return route.post(part)


def events(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The import-level log events, in order."""
    messages = [r.getMessage() for r in caplog.records if r.name == "audience_sync.listrak"]
    return [m for m in messages if m.startswith("import.")]


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level("INFO", logger="audience_sync.listrak")
    return caplog


def test_a_part_refused_with_429_is_posted_once_per_attempt_and_no_more(
    log: pytest.LogCaptureFixture,
) -> None:
    listrak = Listrak(posts=[lambda r: error(429, "ERROR_TOO_MANY_REQUESTS")])
    with pytest.raises(RetriableListrakError) as caught:
        post_part(listrak)
    assert caught.value.status == 429
    assert listrak.post_count == ATTEMPTS  # was up to attempts² with the route's own loop
    assert listrak.lookup_count == 0  # a refused POST was not applied: nothing to look up
    assert events(log) == ["import.post_refused"] * ATTEMPTS


def test_429_then_accepted(log: pytest.LogCaptureFixture) -> None:
    listrak = Listrak(
        posts=[
            lambda r: error(429, "ERROR_TOO_MANY_REQUESTS"),
            lambda r: httpx.Response(201, json=CREATED),
        ]
    )
    assert post_part(listrak) == "77"
    assert (listrak.post_count, listrak.lookup_count) == (2, 0)
    assert events(log) == ["import.post_refused"]


def test_a_lost_answer_is_found_by_name_and_not_resent(log: pytest.LogCaptureFixture) -> None:
    listrak = Listrak(posts=[lost], lookups=[lambda r: listing("other.csv", FILE_NAME)])
    assert post_part(listrak) == "41"
    assert (listrak.post_count, listrak.lookup_count) == (1, 1)
    assert events(log) == ["import.answer_lost", "import.found_by_name"]


@pytest.mark.parametrize("failure", [lost, lambda r: error(502, "ERROR_UNHANDLED_EXCEPTION")])
def test_a_lost_answer_not_found_is_resent_after_the_look_up(
    failure: Answer, log: pytest.LogCaptureFixture
) -> None:
    listrak = Listrak(posts=[failure, lambda r: httpx.Response(201, json=CREATED)])
    assert post_part(listrak) == "77"
    methods = [r.method for r in listrak.recorder.api_requests()]
    assert methods == ["POST", "GET", "POST"]
    assert events(log) == ["import.answer_lost"]


def test_5xx_forever_spends_the_one_budget_on_look_ups_and_posts(
    log: pytest.LogCaptureFixture,
) -> None:
    listrak = Listrak(posts=[lambda r: error(500, "ERROR_UNHANDLED_EXCEPTION")])
    with pytest.raises(RetriableListrakError) as caught:
        post_part(listrak)
    assert caught.value.status == 500
    methods = [r.method for r in listrak.recorder.api_requests()]
    assert methods == ["POST"] + ["GET", "POST"] * (ATTEMPTS - 1)
    assert events(log) == ["import.answer_lost"] * ATTEMPTS


def test_a_failing_look_up_is_one_attempt_not_a_retry_loop_of_its_own() -> None:
    listrak = Listrak(posts=[lost], lookups=[lambda r: error(503, "ERROR_UNHANDLED_EXCEPTION")])
    with pytest.raises(RetriableListrakError):
        post_part(listrak)
    assert (listrak.post_count, listrak.lookup_count) == (1, ATTEMPTS - 1)


def test_connection_refused_before_sending_is_resent_without_a_look_up() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    listrak = Listrak(posts=[refused, lambda r: httpx.Response(201, json=CREATED)])
    assert post_part(listrak) == "77"
    assert (listrak.post_count, listrak.lookup_count) == (2, 0)
