from __future__ import annotations

import httpx

from audience_sync.sandbox import SandboxServer

from .helpers import CLIENT, assert_error, get_token, poll


def _token_request(sandbox: SandboxServer, **form: str) -> httpx.Response:
    return httpx.post(sandbox.auth_url, data={"grant_type": "client_credentials", **form})


def test_token_answer_has_oauth_shape_and_no_secret(sandbox: SandboxServer) -> None:
    response = _token_request(sandbox, **CLIENT)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert len(body["access_token"]) >= 20
    assert CLIENT["client_secret"] not in response.text


def test_wrong_credentials_are_refused(sandbox: SandboxServer) -> None:
    response = _token_request(sandbox, client_id="sandbox-client", client_secret="wrong")
    body = assert_error(response, 401, "ERROR_INVALID_CREDENTIALS")
    assert "wrong" not in body["message"]


def test_token_request_needs_client_credentials_grant(sandbox: SandboxServer) -> None:
    response = httpx.post(sandbox.auth_url, data={"grant_type": "password", **CLIENT})
    assert_error(response, 400, "ERROR_INVALID_PARAMETER")


def test_token_request_must_be_form_encoded(sandbox: SandboxServer) -> None:
    response = httpx.post(sandbox.auth_url, json={"grant_type": "client_credentials", **CLIENT})
    assert_error(response, 415, "ERROR_UNSUPPORTED_CONTENT_TYPE")


def test_api_needs_a_bearer_token(sandbox: SandboxServer) -> None:
    assert_error(httpx.get(sandbox.api_url + "/List"), 401, "ERROR_UNAUTHORIZED")
    bogus = {"Authorization": "Bearer not-a-token"}
    assert_error(httpx.get(sandbox.api_url + "/List", headers=bogus), 401, "ERROR_UNAUTHORIZED")
    good = {"Authorization": f"Bearer {get_token(sandbox)}"}
    assert httpx.get(sandbox.api_url + "/List", headers=good).status_code == 200


def test_tokens_expire_server_side(sandbox: SandboxServer) -> None:
    sandbox.world.set_faults(token_lifetime_seconds=0.3)
    response = _token_request(sandbox, **CLIENT)
    assert response.json()["expires_in"] == 1
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    expired = poll(
        lambda: httpx.get(sandbox.api_url + "/List", headers=headers),
        lambda r: r.status_code != 200,
    )
    assert_error(expired, 401, "ERROR_UNAUTHORIZED")


def test_revoke_invalidates_every_issued_token(sandbox: SandboxServer) -> None:
    tokens = [get_token(sandbox), get_token(sandbox)]
    revoked = httpx.post(sandbox.admin_url + "/tokens/revoke")
    assert revoked.json() == {"revoked": 2}
    for token in tokens:
        response = httpx.get(
            sandbox.api_url + "/List", headers={"Authorization": f"Bearer {token}"}
        )
        assert_error(response, 401, "ERROR_UNAUTHORIZED")
    fresh = {"Authorization": f"Bearer {get_token(sandbox)}"}
    assert httpx.get(sandbox.api_url + "/List", headers=fresh).status_code == 200


def test_paused_integration_refuses_tokens_and_calls(sandbox: SandboxServer) -> None:
    headers = {"Authorization": f"Bearer {get_token(sandbox)}"}
    sandbox.world.set_faults(api_paused=True)
    assert_error(_token_request(sandbox, **CLIENT), 401, "ERROR_INVALID_CREDENTIALS")
    response = httpx.get(sandbox.api_url + "/List", headers=headers)
    assert_error(response, 401, "ERROR_UNAUTHORIZED")
    sandbox.world.set_faults(api_paused=False)
    assert httpx.get(sandbox.api_url + "/List", headers=headers).status_code == 200
