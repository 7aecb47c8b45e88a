"""Listrak's JSON envelopes and request-body checks, shared by the API and admin routes."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from .problems import ApiError, invalid_parameter, malformed_body

M = TypeVar("M")

HTTP_ERROR_CODES = {
    404: ("ERROR_UNKNOWN_ROUTE", "An invalid route was supplied."),
    405: ("ERROR_UNSUPPORTED_METHOD", "The route does not support this HTTP method."),
}


def ok(data: Any, status: int = 200, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": status, "data": data, **extra}, status_code=status)


def page(data: list[Any], next_cursor: str | None) -> JSONResponse:
    body: dict[str, Any] = {"status": 200, "nextPageCursor": next_cursor, "data": data}
    return JSONResponse(body)


def created(resource_id: int) -> JSONResponse:
    return JSONResponse({"status": 201, "resourceId": str(resource_id)}, status_code=201)


def error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def error_status_code(status: int) -> str:
    """The error code of a synthetic failure with this status."""
    if status == 429:
        return "ERROR_TOO_MANY_REQUESTS"
    if status >= 500:
        return "ERROR_UNHANDLED_EXCEPTION"
    return HTTP_ERROR_CODES.get(status, ("ERROR_INVALID_PARAMETER", ""))[0]


async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error(exc)


async def on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code, message = HTTP_ERROR_CODES.get(exc.status_code, ("ERROR_INVALID_PARAMETER", exc.detail))
    response = error(ApiError(exc.status_code, code, message))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def on_unhandled(request: Request, exc: Exception) -> JSONResponse:
    return error(ApiError(500, "ERROR_UNHANDLED_EXCEPTION", "Unexpected error."))


async def read_json(request: Request) -> Any:
    """The JSON body of a request, after Listrak's content-type and syntax checks."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(
            415, "ERROR_UNSUPPORTED_CONTENT_TYPE", "Use a Content-Type of application/json."
        )
    raw = await request.body()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise malformed_body("The request body is not valid JSON.") from exc


def parse(model: type[M] | TypeAdapter[M], data: Any) -> M:
    """Validate ``data``; an invalid body answers ERROR_INVALID_PARAMETER naming the field."""
    adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise invalid_parameter(f"{where}: {first['msg']}.") from exc
