"""ASGI middleware in front of the Listrak routes: request counting and handling time, pause,
injected failures, bearer-token checks, the body-size limit and dropped answers. Admin routes
pass untouched."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence

from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .problems import ApiError
from .responses import error_status_code
from .world import SandboxWorld

ADMIN_PREFIX = "/_sandbox"
_CONVERTOR = re.compile(r"\{(\w+):\w+\}")
DROPPED_MESSAGE = "ASGI callable returned without completing response."


class _HideDeliberateDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != DROPPED_MESSAGE


def hide_deliberate_drops() -> None:
    """Keep uvicorn from logging an error for each answer the sandbox drops on purpose."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDeliberateDrops) for f in logger.filters):
        logger.addFilter(_HideDeliberateDrops())


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str | None:
    for route in routes:
        if isinstance(route, Route) and route.matches(scope)[0] != Match.NONE:
            return _CONVERTOR.sub(r"{\1}", route.path)
    return None


class ListrakGate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        world: SandboxWorld,
        routes: Sequence[BaseRoute],
        api_prefix: str,
        token_path: str,
    ) -> None:
        self.app = app
        self.world = world
        self.routes = routes
        self.api_prefix = api_prefix
        self.token_path = token_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        is_api = path.startswith(self.api_prefix)
        template = route_template(self.routes, scope) or path
        self.world.count_request(f"{method} {template}")
        try:
            self._check_before_body(scope, method, path, is_api)
            body = await _read_body(receive)
            limit = self.world.faults().max_body_bytes
            if is_api and limit is not None and len(body) > limit:
                raise ApiError(404, "ERROR_UNABLE_TO_LOCATE_RESOURCE", "Unable to locate resource.")
        except ApiError as exc:
            await JSONResponse(exc.body(), status_code=exc.status)(scope, receive, send)
            return
        replay = _replay(body, receive)
        started = time.perf_counter()
        try:
            if self.world.take_drop(method, path, is_api=is_api):
                await _answer_then_drop(self.app, scope, replay, send)
            else:
                await self.app(scope, replay, send)
        finally:
            self.world.add_handling_time(f"{method} {template}", time.perf_counter() - started)

    def _check_before_body(self, scope: Scope, method: str, path: str, is_api: bool) -> None:
        if self.world.faults().api_paused:
            if path == self.token_path:
                raise ApiError(401, "ERROR_INVALID_CREDENTIALS", "The integration is paused.")
            raise ApiError(401, "ERROR_UNAUTHORIZED", "The integration is paused.")
        rule = self.world.take_failure(method, path, is_api=is_api)
        if rule is not None:
            raise ApiError(
                rule.status, rule.code or error_status_code(rule.status), "Injected failure."
            )
        if is_api and not self.world.token_valid(_bearer(scope)):
            raise ApiError(401, "ERROR_UNAUTHORIZED", "Authorization was denied for this request.")


def _bearer(scope: Scope) -> str:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return credentials.strip()
    return ""


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer_then_drop(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Let the app handle the request in full, then send the headers and half of the body and
    return: uvicorn closes the connection and the client sees a truncated answer."""
    messages: list[Message] = []

    async def capture(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, capture)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    await send(start)
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
