"""The sandbox's own admin API under ``/_sandbox``: seeding, inspection and fault knobs.

No token is needed and faults never apply here.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from audience_sync.listrak.models import FieldDataType

from .responses import parse, read_json
from .settings import DropNextPost, FailNext, Faults
from .world import DEFAULT_GROUP_NAME, SandboxWorld

PREFIX = "/_sandbox"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListBody(_Body):
    listId: int
    listName: str = Field(min_length=1)


class FieldBody(_Body):
    segmentationFieldName: str = Field(min_length=1)
    dataType: FieldDataType = "CheckBox"
    groupName: str = Field(default=DEFAULT_GROUP_NAME, min_length=1)
    segmentationFieldId: int | None = None
    maxLength: int | None = Field(default=None, ge=0)
    choices: list[str] = []
    """A RadioButton field's values: an admin-only extension (the Swagger document has none)."""


class ContactBody(_Body):
    emailAddress: str = Field(min_length=1)
    subscriptionState: Literal["Subscribed", "Unsubscribed"] | None = None
    banned: bool | None = None
    suppressed: bool | None = None


class ContactsBody(_Body):
    contacts: list[ContactBody]


class ValuesBody(_Body):
    values: dict[str, str | None]


class FailNextBody(_Body):
    count: int = Field(ge=0)
    status: int = 500
    method: str | None = None
    path_contains: str | None = None
    code: str | None = None

    @field_validator("status")
    @classmethod
    def _failure_status(cls, status: int) -> int:
        if status not in (400, 429) and not 500 <= status <= 599:
            raise ValueError("status must be 400, 429 or 5xx")
        return status


class DropNextPostBody(_Body):
    count: int = Field(ge=0)
    path_contains: str | None = None


class FaultsBody(_Body):
    fail_next: FailNextBody | None = None
    drop_next_post: DropNextPostBody | None = None
    max_body_bytes: int | None = Field(default=None, ge=0)
    import_delay_seconds: float = Field(default=0.2, ge=0)
    token_lifetime_seconds: float = Field(default=900, gt=0)
    api_paused: bool = False
    beta_route_enabled: bool = True
    stall_imports_named: str | None = None


def faults_json(faults: Faults) -> dict[str, Any]:
    return asdict(faults)


def _world(request: Request) -> SandboxWorld:
    world: SandboxWorld = request.app.state.world
    return world


async def reset(request: Request) -> Response:
    _world(request).reset()
    return JSONResponse({"reset": True})


async def add_list(request: Request) -> Response:
    body = parse(ListBody, await read_json(request))
    record = _world(request).add_list(body.listId, body.listName)
    return JSONResponse({"listId": record.list_id, "listName": record.name}, status_code=201)


async def add_field(request: Request) -> Response:
    body = parse(FieldBody, await read_json(request))
    field_id, group_id = _world(request).add_field(
        request.path_params["listId"],
        body.segmentationFieldName,
        data_type=body.dataType,
        group_name=body.groupName,
        field_id=body.segmentationFieldId,
        max_length=body.maxLength,
        choices=body.choices,
    )
    return JSONResponse(
        {"segmentationFieldId": field_id, "segmentationFieldGroupId": group_id}, status_code=201
    )


async def upsert_contacts(request: Request) -> Response:
    body = parse(ContactsBody, await read_json(request))
    items = [c.model_dump(exclude_none=True) for c in body.contacts]
    count = _world(request).upsert_contacts(request.path_params["listId"], items)
    return JSONResponse({"count": count})


async def list_contacts(request: Request) -> Response:
    contacts = _world(request).contacts(request.path_params["listId"])
    return JSONResponse(
        {
            "contacts": [
                {
                    "emailAddress": c.email,
                    "subscriptionState": c.subscription_state,
                    "banned": c.banned,
                    "suppressed": c.suppressed,
                    "values": {str(k): v for k, v in c.values.items()},
                }
                for c in contacts
            ]
        }
    )


async def get_values(request: Request) -> Response:
    values = _world(request).field_values(
        request.path_params["listId"], request.path_params["fieldId"]
    )
    return JSONResponse({"values": values})


async def put_values(request: Request) -> Response:
    body = parse(ValuesBody, await read_json(request))
    count = _world(request).set_field_values(
        request.path_params["listId"], request.path_params["fieldId"], body.values
    )
    return JSONResponse({"count": count})


async def get_faults(request: Request) -> Response:
    return JSONResponse(faults_json(_world(request).faults()))


async def set_faults(request: Request) -> Response:
    data = await read_json(request)
    body = parse(FaultsBody, data)
    changes: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if name == "fail_next" and value is not None:
            value = FailNext(**value.model_dump())
        elif name == "drop_next_post" and value is not None:
            value = DropNextPost(**value.model_dump())
        changes[name] = value
    return JSONResponse(faults_json(_world(request).set_faults(**changes)))


async def revoke_tokens(request: Request) -> Response:
    return JSONResponse({"revoked": _world(request).revoke_tokens()})


async def stats(request: Request) -> Response:
    return JSONResponse(_world(request).stats())


_LIST = PREFIX + "/lists/{listId:int}"
_VALUES = _LIST + "/fields/{fieldId:int}/values"

ROUTES = [
    Route(PREFIX + "/reset", reset, methods=["POST"]),
    Route(PREFIX + "/lists", add_list, methods=["POST"]),
    Route(_LIST + "/fields", add_field, methods=["POST"]),
    Route(_LIST + "/contacts", upsert_contacts, methods=["POST"]),
    Route(_LIST + "/contacts", list_contacts, methods=["GET"]),
    Route(_VALUES, get_values, methods=["GET"]),
    Route(_VALUES, put_values, methods=["PUT"]),
    Route(PREFIX + "/faults", get_faults, methods=["GET"]),
    Route(PREFIX + "/faults", set_faults, methods=["POST"]),
    Route(PREFIX + "/tokens/revoke", revoke_tokens, methods=["POST"]),
    Route(PREFIX + "/stats", stats, methods=["GET"]),
]
