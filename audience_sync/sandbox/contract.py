"""Request bodies checked against Listrak's published Swagger 2.0 document, not the client's
models, so a mistake in those models is refused here as Listrak would refuse it.

The document ships in ``spec/`` unchanged. Each served route's body schema (the ``in: body``
parameter of its operation) is validated with JSON Schema draft 4, the dialect Swagger 2
builds on, plus the Swagger formats that matter for the bodies the sandbox takes: ``int32``,
``int64`` and ``byte`` (base64).
"""

from __future__ import annotations

import base64
import binascii
import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from .problems import invalid_parameter

SPEC_FILE = "listrak-email-openapi.json"
PATH_PREFIX = "/v1"  # the document's paths start with the version; basePath is /email


def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def _byte(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


_FORMATS = FormatChecker()
_FORMATS.checks("int32")(_int32)
_FORMATS.checks("int64")(_int64)
_FORMATS.checks("byte")(_byte)


@cache
def document() -> dict[str, Any]:
    """The published Swagger document, as shipped inside the package."""
    text = resources.files(__package__).joinpath("spec", SPEC_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def body_validator(path: str, method: str) -> Draft4Validator:
    """The validator of the body of ``method path`` (``path`` as the sandbox routes it, e.g.
    ``/List/{listId}/ListImport``). Raises KeyError when the document has no such body."""
    spec = document()
    operation = spec["paths"][PATH_PREFIX + path][method.lower()]
    (schema,) = [p["schema"] for p in operation.get("parameters", []) if p.get("in") == "body"]
    root = {**schema, "definitions": spec["definitions"]}
    Draft4Validator.check_schema(root)
    return Draft4Validator(root, format_checker=_FORMATS)


def check_body(path: str, method: str, body: Any) -> None:
    """Raise the sandbox's ERROR_INVALID_PARAMETER (400) when ``body`` breaks the contract.

    The message names the field and the rule, never the value (it may be an email address or
    a whole import file).
    """
    validator = body_validator(path, method)
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        raise invalid_parameter(describe(errors[0]))


def describe(error: ValidationError) -> str:
    where = ".".join(str(part) for part in error.absolute_path) or "body"
    rule = error.validator
    if rule == "required":
        missing = [name for name in error.validator_value if name not in (error.instance or {})]
        verb = "is" if len(missing) == 1 else "are"
        return f"{where}: {', '.join(missing)} {verb} required."
    if rule == "type":
        return f"{where}: must be of type {error.validator_value}."
    if rule == "format":
        return f"{where}: must be in format {error.validator_value}."
    return f"{where}: does not satisfy {rule} {error.validator_value!r}."
