"""One line per config problem: the key path and what is wrong, never a secret.

Pure: takes one of pydantic's error dicts and the raw TOML data. What was given is repeated only
when it is a short scalar (a mistyped number, a bad name), with any URL password masked; tables
and lists (an audience's ``source`` with its warehouse URL, say) are never repeated.
"""

from __future__ import annotations

import re
from typing import Any

from audience_sync.sources.sql import describe_url

CLIENT_ID_ENV_VAR = "LISTRAK_CLIENT_ID"
CLIENT_SECRET_ENV_VAR = "LISTRAK_CLIENT_SECRET"  # noqa: S105 - the variable's name, not a secret
MAX_ECHOED_LENGTH = 80
_SECRET_NAME = re.compile(
    r"(?i)client_id|.*(secret|password|passwd|credential).*|(access_|api_|bearer_)?token|api_?key"
)
_AUDIENCE_KEY = re.compile(r"^[a-z0-9][a-z0-9_]*$")


def describe_error(error: Any, raw: dict[str, Any]) -> str:
    """``path: problem`` for one pydantic error, prefixed by the audience's key when known."""
    loc: tuple[int | str, ...] = tuple(error["loc"])
    line = f"{dotted(loc)}: {_problem(error, loc)}"
    if error["type"] == "extra_forbidden" and _is_secret_name(loc):
        line = f"{dotted(loc)} is not read from the config file: {_where_secrets_go(loc)}"
    key = _entry_key(loc, raw)
    if key is None:
        return line
    return f"{'trait' if loc[0] == 'traits' else 'audience'} {key!r}: {line}"


def dotted(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def echo(value: object) -> str | None:
    """``value`` as it may be shown back, or ``None`` if it must not be."""
    if isinstance(value, bool | int | float):
        return repr(value)
    if not isinstance(value, str) or len(value) > MAX_ECHOED_LENGTH:
        return None
    return repr(describe_url(value) if "://" in value else value)


def _problem(error: Any, loc: tuple[int | str, ...]) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        return "required key is missing"
    if error["type"] == "extra_forbidden":
        return "unknown key"
    shown = echo(error.get("input"))
    if shown is None or _is_secret_name(loc):
        return message
    return f"{message} (got {shown})"


def _is_secret_name(loc: tuple[int | str, ...]) -> bool:
    return bool(loc) and _SECRET_NAME.fullmatch(str(loc[-1])) is not None


def _where_secrets_go(loc: tuple[int | str, ...]) -> str:
    listrak = (
        f"Listrak credentials come from the environment variables {CLIENT_ID_ENV_VAR} and "
        f"{CLIENT_SECRET_ENV_VAR}"
    )
    warehouse = (
        "a warehouse password comes from an environment variable named in the source URL as ${VAR}"
    )
    if loc[:1] == ("listrak",):
        return listrak
    if loc[:1] in (("audiences",), ("traits",)):
        return warehouse
    return f"{listrak}; {warehouse}"


def _entry_key(loc: tuple[int | str, ...], raw: dict[str, Any]) -> str | None:
    """The key of the audience or trait an error is in, when it is a valid key."""
    if len(loc) < 2 or loc[0] not in ("audiences", "traits") or not isinstance(loc[1], int):
        return None
    audiences = raw.get(loc[0])
    if not isinstance(audiences, list) or not 0 <= loc[1] < len(audiences):
        return None
    audience = audiences[loc[1]]
    key = audience.get("key") if isinstance(audience, dict) else None
    return key if isinstance(key, str) and _AUDIENCE_KEY.match(key) else None
