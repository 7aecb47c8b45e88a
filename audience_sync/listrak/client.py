"""The Listrak Email API client: OAuth2 token, envelopes, error mapping, retries, paging.

It takes an ``httpx.Client`` (the one seam for HTTP: tests pass one built on
``httpx.MockTransport``); :meth:`ListrakClient.build` makes the production one with TLS
verification and explicit timeouts. Secrets and tokens never reach logs or error messages.
"""

from __future__ import annotations

import functools
import logging
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import stamina
from pydantic import BaseModel, ValidationError

from audience_sync.checkpoints import checkpoint
from audience_sync.config import Credentials, ListrakSettings
from audience_sync.errors import (
    AnswerLostError,
    AuthenticationError,
    CredentialsRefusedError,
    FatalListrakError,
    ListrakError,
    RetriableListrakError,
)
from audience_sync.listrak.errors_map import (
    CREDENTIAL_ERROR_CODES,
    error_for_response,
    error_for_transport,
)
from audience_sync.listrak.models import (
    Collection,
    Contact,
    ContactSegmentationFieldValues,
    ImportFile,
    ListImport,
    ListImportContact,
    ListImportStatus,
    ListImportSummary,
    ListInfo,
    Resource,
    ResourceCreated,
    SegmentationField,
    SegmentationFieldCreate,
    SegmentationFieldGroup,
    SegmentationFieldGroupCreate,
    TokenResponse,
)

logger = logging.getLogger("audience_sync.listrak")

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

MAX_PAGE_SIZE = 5000
MAX_FIELDS_PER_CONTACT_READ = 30
TOKEN_EXPIRY_MARGIN_SECONDS = 60.0
CLOCK_SKEW_ALLOWANCE = timedelta(minutes=5)


class ListrakClient:
    def __init__(
        self,
        *,
        http: httpx.Client,
        settings: ListrakSettings,
        credentials: Credentials,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._settings = settings
        self._credentials = credentials
        self._clock = clock
        self._token: str | None = None
        self._token_expires_at = 0.0
        self.request_count = 0

    @classmethod
    def build(
        cls,
        settings: ListrakSettings,
        credentials: Credentials,
        *,
        transport: httpx.BaseTransport | None = None,
        event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
    ) -> ListrakClient:
        timeout = httpx.Timeout(settings.timeout_seconds, connect=settings.connect_timeout_seconds)
        http = httpx.Client(
            timeout=timeout,
            verify=_verifying_tls_context(),
            transport=transport,
            event_hooks=dict(event_hooks or {}),
            headers={"Accept": "application/json", "User-Agent": "audience-sync"},
        )
        return cls(http=http, settings=settings, credentials=credentials)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ListrakClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- authentication ---------------------------------------------------------------------

    def _bearer(self) -> str:
        if self._token is None or self._clock() >= self._token_expires_at:
            self._fetch_token()
        assert self._token is not None
        return self._token

    def _fetch_token(self) -> None:
        def attempt() -> httpx.Response:
            return self._send(
                "POST",
                self._settings.auth_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._credentials.client_id,
                    "client_secret": self._credentials.client_secret.get_secret_value(),
                },
            )

        try:
            response = self._with_retries(attempt, idempotent=True)
        except FatalListrakError as exc:
            if isinstance(exc, AuthenticationError) or exc.code in CREDENTIAL_ERROR_CODES:
                label = f"{exc.status} {exc.code or ''}".strip()
                raise CredentialsRefusedError(
                    f"Listrak refused the client credentials ({label}); check "
                    "LISTRAK_CLIENT_ID and LISTRAK_CLIENT_SECRET in the environment, and that "
                    "the integration's API access is not paused",
                    status=exc.status,
                    code=exc.code,
                ) from None
            raise AuthenticationError(
                f"Listrak refused the token request: {exc}", status=exc.status, code=exc.code
            ) from None
        except RetriableListrakError as exc:
            # Whatever happened to the token request, the API request it was for was not sent.
            raise RetriableListrakError(
                f"could not get a Listrak token: {exc}", status=exc.status, code=exc.code
            ) from None
        token = _parse(TokenResponse, response)
        lifetime = max(float(token.expires_in) - TOKEN_EXPIRY_MARGIN_SECONDS, token.expires_in / 2)
        self._token = token.access_token
        self._token_expires_at = self._clock() + lifetime

    # --- transport, retries, envelopes ------------------------------------------------------

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        request = self._http.build_request(method, url, **kwargs)
        self.request_count += 1
        started = time.perf_counter()
        try:
            response = self._http.send(request)
        except httpx.TransportError as exc:
            logger.warning(
                "listrak.transport_error",
                extra={"method": method, "path": request.url.path, "error": type(exc).__name__},
            )
            raise error_for_transport(exc, request) from None
        logger.debug(
            "listrak.response",
            extra={
                "method": method,
                "path": request.url.path,
                "status": response.status_code,
                "elapsed_ms": round((time.perf_counter() - started) * 1000),
            },
        )
        if response.is_success:
            return response
        raise error_for_response(response)

    def _with_retries(self, attempt: Callable[[], T], *, idempotent: bool) -> T:
        """The one retry layer: 429/5xx/transport failures, with capped, jittered backoff.

        A non-idempotent request is retried only when it was certainly not applied (429, or a
        connection that failed before sending); once its answer may have been lost
        (``AnswerLostError``, 5xx) the error propagates, unless ``attempt`` itself looks the
        request up before re-sending, as :meth:`post_import` does (``idempotent=True`` there).
        """

        def retriable(exc: BaseException) -> bool:
            if not isinstance(exc, RetriableListrakError):
                return False
            return idempotent or not exc.may_have_been_applied

        settings = self._settings
        for retry in stamina.retry_context(
            on=retriable,
            attempts=settings.retry_attempts,
            timeout=settings.retry_timeout_seconds,
            wait_initial=settings.retry_initial_wait_seconds,
            wait_max=settings.retry_max_wait_seconds,
            wait_jitter=settings.retry_initial_wait_seconds,
        ):
            with retry:
                return attempt()
        raise AssertionError("unreachable")  # pragma: no cover

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """One API call with the bearer token, retried as :meth:`_with_retries` says."""
        is_idempotent = method == "GET" if idempotent is None else idempotent
        return self._with_retries(
            lambda: self._call_once(method, path, params=params, json=json),
            idempotent=is_idempotent,
        )

    def _call_once(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """Send once with the bearer token; on a 401, refresh the token and send once more."""
        url = f"{self._settings.api_url}{path}"
        try:
            return self._send(method, url, params=params, json=json, headers=self._auth())
        except AuthenticationError:
            logger.info("listrak.token_refresh", extra={"path": path})
            self._token = None
            headers = self._auth()
            try:
                return self._send(method, url, params=params, json=json, headers=headers)
            except AuthenticationError as exc:
                raise AuthenticationError(
                    f"Listrak refused a fresh token for {method} {path}; giving up",
                    status=exc.status,
                    code=exc.code,
                ) from None

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._bearer()}"}

    def _get_resource(self, model: type[M], path: str) -> M:
        response = self._call("GET", path)
        # A generic model parametrised at run time, which mypy cannot check.
        return _parse(Resource[model], response).data  # type: ignore[valid-type]

    def _paged(
        self,
        model: type[M],
        path: str,
        params: Mapping[str, str | int] | None = None,
        *,
        retry: bool = True,
    ) -> Iterator[M]:
        """Every item of a collection; ``retry=False`` sends each page once (for use inside
        an attempt that is itself retried)."""
        call = self._call if retry else self._call_once
        query: dict[str, str | int] = {**(params or {}), "count": MAX_PAGE_SIZE}
        cursor: str | None = "Start"
        while cursor:
            query["cursor"] = cursor
            # A generic model parametrised at run time, which mypy cannot check.
            page = _parse(Collection[model], call("GET", path, params=query))  # type: ignore[valid-type]
            yield from page.data
            cursor = _next_cursor(page.nextPageCursor) if page.data else None

    # --- lists and profile fields -----------------------------------------------------------

    def lists(self) -> list[ListInfo]:
        return list(self._paged(ListInfo, "/List"))

    def get_list(self, list_id: int) -> ListInfo:
        return self._get_resource(ListInfo, f"/List/{list_id}")

    def field_groups(self, list_id: int) -> list[SegmentationFieldGroup]:
        return list(self._paged(SegmentationFieldGroup, f"/List/{list_id}/SegmentationFieldGroup"))

    def create_field_group(self, list_id: int, group: SegmentationFieldGroupCreate) -> int:
        return self._create(f"/List/{list_id}/SegmentationFieldGroup", group)

    def fields(self, list_id: int, group_id: int) -> list[SegmentationField]:
        path = f"/List/{list_id}/SegmentationFieldGroup/{group_id}/SegmentationField"
        return list(self._paged(SegmentationField, path))

    def create_field(self, list_id: int, group_id: int, field: SegmentationFieldCreate) -> int:
        path = f"/List/{list_id}/SegmentationFieldGroup/{group_id}/SegmentationField"
        return self._create(path, field)

    def _create(self, path: str, body: BaseModel) -> int:
        response = self._call("POST", path, json=body.model_dump(exclude_none=True))
        return int(_parse(ResourceCreated, response).resourceId)

    # --- contacts ---------------------------------------------------------------------------

    def contacts(
        self, list_id: int, field_ids: list[int], *, subscription_state: str | None = None
    ) -> Iterator[Contact]:
        """Contacts of a list with the values of ``field_ids`` (split into calls of 30 ids)."""
        if len(field_ids) > MAX_FIELDS_PER_CONTACT_READ:
            raise ValueError(f"at most {MAX_FIELDS_PER_CONTACT_READ} field ids per read")
        params: dict[str, str | int] = {"segmentationFieldIds": ",".join(map(str, field_ids))}
        if subscription_state:
            params["subscriptionState"] = subscription_state
        return self._paged(Contact, f"/List/{list_id}/Contact", params)

    def post_field_values(
        self, list_id: int, contacts: list[ContactSegmentationFieldValues]
    ) -> str:
        """The beta JSON route; re-sending it is harmless (setting a value twice is a no-op)."""
        body = [c.model_dump(exclude_none=True) for c in contacts]
        response = self._call(
            "POST", f"/List/{list_id}/Contact/SegmentationField", json=body, idempotent=True
        )
        return _parse(ResourceCreated, response).resourceId

    # --- list imports -----------------------------------------------------------------------

    def post_import(
        self, list_id: int, import_file: ImportFile, *, not_before: datetime | None = None
    ) -> str:
        """POST an import, never applying it twice, within one bounded attempt budget.

        A 429 (``import.post_refused``: not applied) or a connection that failed before
        sending is simply sent again. When the answer may have been lost (the connection
        broke after sending, or a 5xx: ``import.answer_lost``), the next attempt first looks
        the import up by its file name and sends it again only if Listrak does not have it.
        """
        path = f"/List/{list_id}/ListImport"
        body = import_file.model_dump(exclude_none=True)
        file_name = import_file.fileName
        answer_lost = False

        def attempt() -> str:
            nonlocal answer_lost
            if answer_lost:
                found = self.find_import(list_id, file_name, not_before=not_before, retry=False)
                if found is not None:
                    logger.info("import.found_by_name", extra={"file_name": file_name})
                    return found
            try:
                self._bearer()  # a failing token request is ``import.not_sent``, never lost
                response = self._call_once("POST", path, json=body)
            except RetriableListrakError as exc:
                if exc.may_have_been_applied:
                    answer_lost = True
                    logger.warning(
                        "import.answer_lost", extra={"file_name": file_name, "error": str(exc)}
                    )
                    checkpoint("answer_lost")
                elif exc.status == 429:
                    logger.warning(
                        "import.post_refused", extra={"file_name": file_name, "error": str(exc)}
                    )
                else:
                    logger.warning(
                        "import.not_sent", extra={"file_name": file_name, "error": str(exc)}
                    )
                raise
            return _parse(ResourceCreated, response).resourceId

        return self._with_retries(attempt, idempotent=True)

    def find_import(
        self,
        list_id: int,
        file_name: str,
        *,
        not_before: datetime | None = None,
        retry: bool = True,
    ) -> str | None:
        """The id of the import named ``file_name``, ignoring any created before
        ``not_before`` (less a clock-skew allowance): those are somebody else's."""
        earliest = None if not_before is None else not_before - CLOCK_SKEW_ALLOWANCE
        for item in self._paged(ListImport, f"/List/{list_id}/ListImport", retry=retry):
            if item.importFileName != file_name:
                continue
            created = _parse_datetime(item.importDate)
            if earliest is not None and created is not None and created < earliest:
                logger.warning("import.name_match_too_old", extra={"file_name": file_name})
                continue
            return str(item.importFileId)
        return None

    def import_status(self, list_id: int, import_id: str) -> ListImportStatus:
        return self._get_resource(
            ListImportStatus, f"/List/{list_id}/ListImport/{import_id}/Status"
        )

    def import_summary(self, list_id: int, import_id: str) -> ListImportSummary:
        return self._get_resource(
            ListImportSummary, f"/List/{list_id}/ListImport/{import_id}/Summary"
        )

    def import_contacts(self, list_id: int, import_id: str) -> Iterator[ListImportContact]:
        return self._paged(ListImportContact, f"/List/{list_id}/ListImport/{import_id}/Contact")


def _parse_datetime(value: str | None) -> datetime | None:
    """Listrak's date-time; one without an offset is taken as UTC."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _parse(model: type[M], response: httpx.Response) -> M:
    try:
        return model.model_validate(response.json())
    except (ValueError, ValidationError) as exc:
        raise FatalListrakError(
            f"unexpected answer from {response.request.method} {response.request.url.path}: "
            f"not a valid {model.__name__} ({type(exc).__name__})",
            status=response.status_code,
        ) from None


def _next_cursor(value: str | None) -> str | None:
    """``nextPageCursor`` is documented as a URI of the next page; accept a bare cursor too."""
    if not value:
        return None
    if "cursor=" in value:
        cursors = parse_qs(urlsplit(value).query).get("cursor")
        return cursors[0] if cursors else None
    return value


__all__ = ["AnswerLostError", "ListrakClient", "ListrakError"]


@functools.cache
def _verifying_tls_context() -> ssl.SSLContext:
    """httpx's default TLS context (certificates verified against certifi's bundle), made once:
    loading the bundle costs about 30 ms, and every run builds a client."""
    return httpx.create_ssl_context()
