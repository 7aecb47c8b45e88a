from __future__ import annotations

import httpx
import pytest

from audience_sync.sandbox import SandboxServer

from .helpers import CLIENT, LIST_ID, assert_error, import_body

ROWS = "email,f\nsub@example.com,on\n"


def test_fail_next_burst_then_recovery(seeded: SandboxServer, api: httpx.Client) -> None:
    httpx.post(seeded.admin_url + "/faults", json={"fail_next": {"count": 2, "status": 429}})
    for _ in range(2):
        response = api.get("/List")
        assert_error(response, 429, "ERROR_TOO_MANY_REQUESTS")
        assert "Retry-After" not in response.headers
    assert api.get("/List").status_code == 200


def test_fail_next_500(seeded: SandboxServer, api: httpx.Client) -> None:
    httpx.post(seeded.admin_url + "/faults", json={"fail_next": {"count": 1, "status": 500}})
    assert_error(api.get("/List"), 500, "ERROR_UNHANDLED_EXCEPTION")
    assert api.get("/List").status_code == 200


def test_fail_next_filters_on_method_and_path(seeded: SandboxServer, api: httpx.Client) -> None:
    rule = {"count": 1, "status": 500, "method": "GET", "path_contains": "Contact"}
    httpx.post(seeded.admin_url + "/faults", json={"fail_next": rule})
    assert api.get("/List").status_code == 200
    assert api.post(f"/List/{LIST_ID}/ListImport", json=import_body(ROWS)).status_code == 201
    assert_error(api.get(f"/List/{LIST_ID}/Contact"), 500, "ERROR_UNHANDLED_EXCEPTION")
    assert api.get(f"/List/{LIST_ID}/Contact").status_code == 200


def test_fail_next_spares_token_requests_unless_named(seeded: SandboxServer) -> None:
    httpx.post(seeded.admin_url + "/faults", json={"fail_next": {"count": 1}})
    form = {"grant_type": "client_credentials", **CLIENT}
    assert httpx.post(seeded.auth_url, data=form).status_code == 200
    rule = {"count": 1, "status": 503, "path_contains": "OAuth2"}
    httpx.post(seeded.admin_url + "/faults", json={"fail_next": rule})
    assert_error(httpx.post(seeded.auth_url, data=form), 503, "ERROR_UNHANDLED_EXCEPTION")


def test_dropped_post_is_processed_but_unanswered(seeded: SandboxServer, api: httpx.Client) -> None:
    rule = {"count": 1, "path_contains": "ListImport"}
    httpx.post(seeded.admin_url + "/faults", json={"drop_next_post": rule})
    with pytest.raises(httpx.TransportError):
        api.post(f"/List/{LIST_ID}/ListImport", json=import_body(ROWS, fileName="lost.csv"))
    imports = api.get(f"/List/{LIST_ID}/ListImport").json()["data"]
    assert [i["importFileName"] for i in imports] == ["lost.csv"]
    second = api.post(f"/List/{LIST_ID}/ListImport", json=import_body(ROWS))
    assert second.status_code == 201


def test_drop_applies_only_to_matching_posts(seeded: SandboxServer, api: httpx.Client) -> None:
    rule = {"count": 1, "path_contains": "ListImport"}
    httpx.post(seeded.admin_url + "/faults", json={"drop_next_post": rule})
    assert api.get(f"/List/{LIST_ID}/ListImport").status_code == 200
    group = {"segmentationFieldGroupName": "Other", "position": 2}
    assert api.post(f"/List/{LIST_ID}/SegmentationFieldGroup", json=group).status_code == 201
    with pytest.raises(httpx.TransportError):
        api.post(f"/List/{LIST_ID}/ListImport", json=import_body(ROWS))


def test_oversized_body_answers_404(seeded: SandboxServer, api: httpx.Client) -> None:
    small = import_body(ROWS)
    big = import_body(ROWS + "".join(f"p{i}@example.com,on\n" for i in range(500)))
    httpx.post(seeded.admin_url + "/faults", json={"max_body_bytes": 2000})
    assert_error(
        api.post(f"/List/{LIST_ID}/ListImport", json=big), 404, "ERROR_UNABLE_TO_LOCATE_RESOURCE"
    )
    assert api.post(f"/List/{LIST_ID}/ListImport", json=small).status_code == 201
    assert len(seeded.world.stats()["imports"]) == 1


def test_admin_routes_ignore_faults(seeded: SandboxServer) -> None:
    seeded.world.set_faults(api_paused=True, max_body_bytes=1)
    httpx.post(seeded.admin_url + "/faults", json={"fail_next": {"count": 5}})
    response = httpx.get(seeded.admin_url + "/stats")
    assert response.status_code == 200
    assert httpx.get(seeded.admin_url + "/faults").json()["fail_next"]["count"] == 5
