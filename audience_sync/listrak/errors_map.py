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
from audience_sync.redaction import one_line

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


# OAuth2 and Listrak codes meaning "this client id or secret is not accepted".
CREDENTIAL_ERROR_CODES = frozenset(
    {"invalid_client", "unauthorized_client", "ERROR_INVALID_CREDENTIALS"}
)
MESSAGE_LIMIT = 300


def error_code(response: httpx.Response) -> str | None:
    """Listrak's ``error`` code from an error envelope, or None when the body is not one."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return None


def error_message(response: httpx.Response) -> str | None:
    """Listrak's ``message`` (or OAuth2's ``error_description``), redacted, on one line."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    for key in ("message", "error_description"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return one_line(value, limit=MESSAGE_LIMIT)
    return None


def error_for_response(response: httpx.Response) -> ListrakError:
    """The exception for a non-2xx answer: status, code, route and Listrak's message (redacted),
    never the rest of the body."""
    status = response.status_code
    code = error_code(response)
    request = response.request
    where = f"{request.method} {_route(request.url)}"
    label = f"{status} {code}" if code else str(status)
    message = f"Listrak answered {label} to {where}"
    reason = error_message(response)
    if reason:
        message = f"{message}: {reason}"
    if status == 401:
        return AuthenticationError(message, status=status, code=code)
    if status == 429 or status >= 500:
        return RetriableListrakError(
            message,
            status=status,
            code=code,
            may_have_been_applied=status >= 500 and request.method != "GET",
        )
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
