"""The one error type the sandbox raises: a Listrak error envelope waiting to be sent."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Answer ``{"status": status, "error": code, "message": message}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"status": self.status, "error": self.code, "message": self.message}


def not_found(what: str) -> ApiError:
    return ApiError(404, "ERROR_UNABLE_TO_LOCATE_RESOURCE", f"Unable to locate {what}.")


def invalid_parameter(message: str) -> ApiError:
    return ApiError(400, "ERROR_INVALID_PARAMETER", message)


def malformed_body(message: str) -> ApiError:
    return ApiError(400, "ERROR_MALFORMED_REQUEST_BODY", message)
