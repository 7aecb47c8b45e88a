"""The Listrak Email API routes (``/email/v1``) and the OAuth2 token route."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qs

from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from audience_sync.listrak.models import (
    ContactSegmentationFieldValues,
    ImportFile,
    SegmentationFieldCreate,
    SegmentationFieldGroupCreate,
)

from . import paging, wire
from .contract import check_body
from .importing import summarize
from .problems import ApiError, invalid_parameter
from .records import SUBSCRIPTION_STATES
from .responses import created, ok, page, parse, read_json
from .world import SandboxWorld

API_PREFIX = "/email/v1"
TOKEN_PATH = "/OAuth2/Token"  # noqa: S105 - a route, not a secret
MAX_SEGMENTATION_FIELDS = 30
FORM = "application/x-www-form-urlencoded"

_CONTACT_VALUES = TypeAdapter(list[ContactSegmentationFieldValues])


def _world(request: Request) -> SandboxWorld:
    world: SandboxWorld = request.app.state.world
    return world


def _id(request: Request, name: str) -> int:
    value: int = request.path_params[name]
    return value


async def _body(request: Request, spec_path: str) -> Any:
    """The JSON body, refused unless it satisfies the published document's schema for
    ``POST spec_path``."""
    data = await read_json(request)
    await run_in_threadpool(check_body, spec_path, "POST", data)
    return data


async def token(request: Request) -> Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise ApiError(415, "ERROR_UNSUPPORTED_CONTENT_TYPE", f"Use a Content-Type of {FORM}.")
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    if form.get("grant_type", [""])[0] != "client_credentials":
        raise invalid_parameter("grant_type must be client_credentials.")
    client_id = form.get("client_id", [""])[0]
    client_secret = form.get("client_secret", [""])[0]
    access_token, lifetime = _world(request).issue_token(client_id, client_secret)
    body = {"access_token": access_token, "token_type": "Bearer", "expires_in": math.ceil(lifetime)}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def list_collection(request: Request) -> Response:
    return ok([wire.list_json(r) for r in _world(request).lists()])


async def list_resource(request: Request) -> Response:
    return ok(wire.list_json(_world(request).get_list(_id(request, "listId"))))


async def group_collection(request: Request) -> Response:
    groups = _world(request).groups(_id(request, "listId"))
    return ok([wire.group_json(g) for g in groups])


async def group_create(request: Request) -> Response:
    body = parse(
        SegmentationFieldGroupCreate,
        await _body(request, "/List/{listId}/SegmentationFieldGroup"),
    )
    world = _world(request)
    group_id = world.create_group(
        _id(request, "listId"), body.segmentationFieldGroupName, body.position
    )
    return created(group_id)


async def group_resource(request: Request) -> Response:
    group = _world(request).get_group(
        _id(request, "listId"), _id(request, "segmentationFieldGroupId")
    )
    return ok(wire.group_json(group))


async def field_collection(request: Request) -> Response:
    fields = _world(request).fields(
        _id(request, "listId"), _id(request, "segmentationFieldGroupId")
    )
    return ok([wire.field_json(f) for f in fields])


async def field_create(request: Request) -> Response:
    body = parse(
        SegmentationFieldCreate,
        await _body(
            request,
            "/List/{listId}/SegmentationFieldGroup/{segmentationFieldGroupId}/SegmentationField",
        ),
    )
    field_id = _world(request).create_field(
        _id(request, "listId"), _id(request, "segmentationFieldGroupId"), body
    )
    return created(field_id)


async def field_resource(request: Request) -> Response:
    field = _world(request).get_field(
        _id(request, "listId"),
        _id(request, "segmentationFieldGroupId"),
        _id(request, "segmentationFieldId"),
    )
    return ok(wire.field_json(field))


async def contact_collection(request: Request) -> Response:
    query = request.query_params
    state = query.get("subscriptionState") or "Subscribed"
    if state not in SUBSCRIPTION_STATES:
        raise invalid_parameter(
            f"subscriptionState must be one of {', '.join(SUBSCRIPTION_STATES)}."
        )
    field_ids = _field_ids(query.get("segmentationFieldIds"))
    offset = paging.parse_cursor(query.get("cursor"))
    count = paging.parse_count(query.get("count"))
    contacts, fields, more = await run_in_threadpool(
        _world(request).contact_page, _id(request, "listId"), state, field_ids, offset, count
    )
    data = [wire.contact_json(c, fields) for c in contacts]
    return page(data, paging.make_cursor(offset + count) if more else None)


def _field_ids(raw: str | None) -> list[int]:
    if not raw:
        return []
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise invalid_parameter("segmentationFieldIds must be comma-separated integers.")
    ids = list(dict.fromkeys(int(p) for p in parts))
    if len(ids) > MAX_SEGMENTATION_FIELDS:
        raise ApiError(
            400,
            "ERROR_TOO_MANY_SEGMENTATION_FIELDS",
            f"At most {MAX_SEGMENTATION_FIELDS} segmentationFieldIds may be requested.",
        )
    return ids


async def contact_field_values(request: Request) -> Response:
    world = _world(request)
    if not world.faults().beta_route_enabled:
        raise ApiError(
            403,
            "ERROR_INTEGRATION_CANNOT_ACCESS_BETA_ROUTE",
            "This route is in beta and not available to this integration.",
        )
    contacts = parse(
        _CONTACT_VALUES, await _body(request, "/List/{listId}/Contact/SegmentationField")
    )
    if not contacts:
        raise invalid_parameter("body: at least one contact is required.")
    import_id = await run_in_threadpool(world.create_json_import, _id(request, "listId"), contacts)
    return created(import_id)


async def import_create(request: Request) -> Response:
    body = parse(ImportFile, await _body(request, "/List/{listId}/ListImport"))
    import_id = await run_in_threadpool(
        _world(request).create_file_import, _id(request, "listId"), body
    )
    return created(import_id)


async def import_collection(request: Request) -> Response:
    imports = _world(request).imports(_id(request, "listId"))
    query = request.query_params
    if "cursor" not in query and "count" not in query:
        return ok([wire.import_json(r) for r in imports])
    offset = paging.parse_cursor(query.get("cursor"))
    count = paging.parse_count(query.get("count"))
    data = [wire.import_json(r) for r in imports[offset : offset + count]]
    more = offset + count < len(imports)
    return page(data, paging.make_cursor(offset + count) if more else None)


async def import_resource(request: Request) -> Response:
    state = _world(request).import_state(_id(request, "listId"), _id(request, "importFileId"))
    return ok(wire.import_json(state.record))


async def import_status(request: Request) -> Response:
    state = _world(request).import_state(_id(request, "listId"), _id(request, "importFileId"))
    record = state.record
    return ok(
        {
            "startDate": wire.timestamp(record.created),
            "endDate": wire.timestamp(record.completed),
            "status": state.status,
        }
    )


async def import_summary(request: Request) -> Response:
    state = _world(request).import_state(_id(request, "listId"), _id(request, "importFileId"))
    return ok(summarize(state.results or []))


async def import_contacts(request: Request) -> Response:
    state = _world(request).import_state(_id(request, "listId"), _id(request, "importFileId"))
    offset = paging.parse_cursor(request.query_params.get("cursor"))
    count = paging.parse_count(request.query_params.get("count"))
    rows = wire.import_contacts_json(state.record, state.results or [])
    more = offset + count < len(rows)
    return page(rows[offset : offset + count], paging.make_cursor(offset + count) if more else None)


_LIST = API_PREFIX + "/List/{listId:int}"
_GROUP = _LIST + "/SegmentationFieldGroup/{segmentationFieldGroupId:int}"
_IMPORT = _LIST + "/ListImport/{importFileId:int}"

ROUTES = [
    Route(TOKEN_PATH, token, methods=["POST"]),
    Route(API_PREFIX + "/List", list_collection, methods=["GET"]),
    Route(_LIST, list_resource, methods=["GET"]),
    Route(_LIST + "/SegmentationFieldGroup", group_collection, methods=["GET"]),
    Route(_LIST + "/SegmentationFieldGroup", group_create, methods=["POST"]),
    Route(_GROUP, group_resource, methods=["GET"]),
    Route(_GROUP + "/SegmentationField", field_collection, methods=["GET"]),
    Route(_GROUP + "/SegmentationField", field_create, methods=["POST"]),
    Route(_GROUP + "/SegmentationField/{segmentationFieldId:int}", field_resource, methods=["GET"]),
    Route(_LIST + "/Contact", contact_collection, methods=["GET"]),
    Route(_LIST + "/Contact/SegmentationField", contact_field_values, methods=["POST"]),
    Route(_LIST + "/ListImport", import_collection, methods=["GET"]),
    Route(_LIST + "/ListImport", import_create, methods=["POST"]),
    Route(_IMPORT, import_resource, methods=["GET"]),
    Route(_IMPORT + "/Status", import_status, methods=["GET"]),
    Route(_IMPORT + "/Summary", import_summary, methods=["GET"]),
    Route(_IMPORT + "/Contact", import_contacts, methods=["GET"]),
]
