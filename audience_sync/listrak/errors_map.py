"""Map Listrak answers and transport failures to the exception hierarchy (pure, no I/O)."""

from __future__ import annotations

import json

import httpx

from audience_sync.errors import (
    AnswerLostError,
    AuthenticationError,
    BetaRouteUnavailableError,
    FatalListrakError,
    ListrakError,
    PayloadTooLargeError,
    RetriableListrakError,
    SkippableListrakError,
)

BETA_ROUTE_CODE = "ERROR_INTEGRATION_CANNOT_ACCESS_BETA_ROUTE"

# Errors about one contact: the rest of the batch can go on without it.
CONTACT_ERROR_CODES = frozenset(
    {
        "ERROR_BANNED_EMAIL_ADDRESS",
        "ERROR_INVALID_EMAIL_ADDRESS",
        "ERROR_NOT_SUBSCRIBED_EMAIL_ADDRESS",
        "ERROR_PENDING_EMAIL_ADDRESS",
        "ERROR_SUPPRESSED_EMAIL",
        "ERROR_UNSUBSCRIBED_EMAIL_ADDRESS",
    }
)


def error_code(response: httpx.Response) -> str | None:
    """Listrak's ``error`` code from an error envelope, or None when the body is not one."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return None


def error_for_response(response: httpx.Response) -> ListrakError:
    """The exception for a non-2xx answer; its message names the route, never the body."""
    status = response.status_code
    code = error_code(response)
    request = response.request
    where = f"{request.method} {_route(request.url)}"
    label = f"{status} {code}" if code else str(status)
    message = f"Listrak answered {label} to {where}"
    if status == 401:
        return AuthenticationError(message, status=status, code=code)
    if status == 429 or status >= 500:
        return RetriableListrakError(message, status=status, code=code)
    if code == BETA_ROUTE_CODE:
        return BetaRouteUnavailableError(
            f"{message}: this integration is not enrolled in the beta route; "
            'set [listrak] submit_via = "list_import"',
            status=status,
            code=code,
        )
    if status == 404 and request.method == "POST":
        return PayloadTooLargeError(
            f"{message} (Listrak also answers 404 when a body exceeds its size limit)",
            status=status,
            code=code,
        )
    if code in CONTACT_ERROR_CODES:
        return SkippableListrakError(message, status=status, code=code)
    return FatalListrakError(message, status=status, code=code)


def error_for_transport(exc: httpx.TransportError, request: httpx.Request) -> ListrakError:
    """Connection failures before sending are safe to retry; after sending, the answer is lost."""
    where = f"{request.method} {_route(request.url)}"
    kind = type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return RetriableListrakError(f"could not reach Listrak for {where} ({kind})")
    return AnswerLostError(f"the answer to {where} was lost ({kind})")


def _route(url: httpx.URL) -> str:
    return url.path
