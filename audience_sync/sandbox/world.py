"""The sandbox's in-memory Listrak account: lists, fields, contacts, imports, tokens, faults.

Every public method takes the one lock, so the HTTP threads and test code can share a world.
Imports are applied lazily: whenever the world is touched, every import whose processing
time has passed is applied, in the order they fall due.
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from audience_sync.listrak.models import (
    ContactSegmentationFieldValues,
    ImportFile,
    SegmentationFieldCreate,
)

from . import importing
from .problems import ApiError, invalid_parameter, not_found
from .records import (
    SUBSCRIPTION_STATES,
    ContactRecord,
    FieldRecord,
    GroupRecord,
    ImportOptions,
    ImportRecord,
    ImportRow,
    ListRecord,
)
from .settings import FailNext, Faults, SandboxSettings

DEFAULT_GROUP_NAME = "Engage Audiences"
DEFAULT_MAX_LENGTH = 3
DEFAULT_TYPED_MAX_LENGTH = 255
ROUTE_LIST_IMPORT = "ListImport"
ROUTE_SEGMENTATION_FIELD = "SegmentationField"


@dataclass(frozen=True)
class ImportState:
    """A snapshot of an import as the ListImport routes show it."""

    record: ImportRecord
    status: str
    results: list[str] | None


class SandboxWorld:
    def __init__(self, settings: SandboxSettings | None = None) -> None:
        self.settings = settings or SandboxSettings()
        self._lock = threading.Lock()
        self._clear()
        if self.settings.seed:
            self.load_seed(self.settings.seed)

    def _clear(self) -> None:
        self._faults = self.settings.faults
        self._lists: dict[int, ListRecord] = {}
        self._groups: dict[int, GroupRecord] = {}
        self._fields: dict[int, FieldRecord] = {}
        self._contacts: dict[int, dict[str, ContactRecord]] = {}
        self._imports: dict[int, ImportRecord] = {}
        self._tokens: dict[str, float] = {}
        self._requests: Counter[str] = Counter()
        self._handling_seconds: dict[str, float] = {}
        self._next_id = 1000

    # --- administration ----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget all data, tokens and counters; fault knobs go back to the start-up settings."""
        with self._lock:
            self._clear()

    def load_seed(self, seed: Mapping[str, Any]) -> None:
        """Load ``{"lists": [{"listId", "listName", "fields": [...], "contacts": [...]}]}``.

        ``fields`` and ``contacts`` items have the shapes of the admin API's POST bodies.
        """
        for item in seed.get("lists", []):
            list_id = int(item["listId"])
            self.add_list(list_id, str(item.get("listName", f"List {list_id}")))
            for field in item.get("fields", []):
                self.add_field(
                    list_id,
                    str(field["segmentationFieldName"]),
                    data_type=str(field.get("dataType", "CheckBox")),
                    group_name=str(field.get("groupName", DEFAULT_GROUP_NAME)),
                    field_id=field.get("segmentationFieldId"),
                    max_length=field.get("maxLength"),
                    choices=tuple(field.get("choices") or ()),
                )
            self.upsert_contacts(list_id, item.get("contacts", []))

    def add_list(self, list_id: int, name: str) -> ListRecord:
        """Create the list, or rename it if it exists (its contents are kept)."""
        with self._lock:
            record = self._lists.get(list_id)
            if record is None:
                record = ListRecord(list_id=list_id, name=name, created=_utcnow())
                self._lists[list_id] = record
                self._contacts[list_id] = {}
            record.name = name
            return copy.copy(record)

    def add_field(
        self,
        list_id: int,
        name: str,
        *,
        data_type: str = "CheckBox",
        group_name: str = DEFAULT_GROUP_NAME,
        field_id: int | None = None,
        max_length: int | None = None,
        choices: Sequence[str] = (),
    ) -> tuple[int, int]:
        """Create (or redefine) a profile field, and its group if missing.

        ``max_length`` defaults to 3 for a CheckBox (``off``) and to
        :data:`DEFAULT_TYPED_MAX_LENGTH` otherwise. ``choices`` are a RadioButton's values.
        Returns ``(segmentationFieldId, segmentationFieldGroupId)``.
        """
        if max_length is None:
            max_length = DEFAULT_MAX_LENGTH if data_type == "CheckBox" else DEFAULT_TYPED_MAX_LENGTH
        with self._lock:
            self._require_list(list_id)
            group = next(
                (g for g in self._groups.values() if g.list_id == list_id and g.name == group_name),
                None,
            )
            if group is None:
                group = self._new_group(list_id, group_name, position=0)
            existing = self._fields.get(field_id) if field_id is not None else None
            if existing is not None and existing.list_id != list_id:
                raise ApiError(409, "ERROR_CONFLICT", f"Field {field_id} belongs to another list.")
            field_id = self._take_id(field_id)
            self._fields[field_id] = FieldRecord(
                field_id=field_id,
                list_id=list_id,
                group_id=group.group_id,
                name=name,
                data_type=data_type,
                max_length=max_length,
                position=0,
                choices=tuple(choices),
            )
            return field_id, group.group_id

    def upsert_contacts(self, list_id: int, contacts: Iterable[Mapping[str, Any]]) -> int:
        """Create or update contacts from admin-shaped items; absent keys keep their value."""
        with self._lock:
            self._settle()
            on_list = self._contacts_of(list_id)
            count = 0
            for item in contacts:
                email = str(item["emailAddress"]).strip().lower()
                contact = on_list.setdefault(
                    email, ContactRecord(email=email, subscribed=_utcnow())
                )
                state = item.get("subscriptionState")
                if state is not None:
                    if state not in SUBSCRIPTION_STATES:
                        raise invalid_parameter(
                            f"subscriptionState must be one of {SUBSCRIPTION_STATES}."
                        )
                    contact.subscription_state = str(state)
                if item.get("banned") is not None:
                    contact.banned = bool(item["banned"])
                if item.get("suppressed") is not None:
                    contact.suppressed = bool(item["suppressed"])
                count += 1
            return count

    def contacts(self, list_id: int) -> list[ContactRecord]:
        with self._lock:
            self._settle()
            return [_copy_contact(c) for c in self._contacts_of(list_id).values()]

    def field_values(self, list_id: int, field_id: int) -> dict[str, str]:
        """Every contact's value of the field, for the contacts that have one."""
        with self._lock:
            self._settle()
            self._require_field(list_id, field_id)
            return {
                email: contact.values[field_id]
                for email, contact in self._contacts_of(list_id).items()
                if field_id in contact.values
            }

    def set_field_values(
        self, list_id: int, field_id: int, values: Mapping[str, str | None]
    ) -> int:
        """Set values directly (``None`` clears one); every address must be on the list."""
        with self._lock:
            self._settle()
            self._require_field(list_id, field_id)
            on_list = self._contacts_of(list_id)
            unknown = [email for email in values if email.strip().lower() not in on_list]
            if unknown:
                raise invalid_parameter(f"{len(unknown)} address(es) are not on list {list_id}.")
            for email, value in values.items():
                contact = on_list[email.strip().lower()]
                if value is None:
                    contact.values.pop(field_id, None)
                else:
                    contact.values[field_id] = value
            return len(values)

    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def set_faults(self, **changes: Any) -> Faults:
        """Change some fault knobs (the field names of :class:`Faults`)."""
        unknown = set(changes) - set(Faults.__dataclass_fields__)
        if unknown:
            raise invalid_parameter(f"Unknown fault knob(s): {', '.join(sorted(unknown))}.")
        with self._lock:
            self._faults = replace(self._faults, **changes)
            return self._faults

    def revoke_tokens(self) -> int:
        with self._lock:
            revoked = len(self._tokens)
            self._tokens.clear()
            return revoked

    def finish_pending_imports(self) -> int:
        """Apply every import still queued or processing now, as if its delay had passed; the
        number applied. Lets a test hold imports open with a long delay, then release them."""
        with self._lock:
            now = time.monotonic()
            pending = [r for r in self._imports.values() if r.results is None]
            for record in pending:
                record.start = min(record.start, now)
                record.due = min(record.due, now)
            self._settle()
            return len(pending)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self._requests),
                "handling_seconds": dict(self._handling_seconds),
                "imports": [
                    {
                        "importFileId": record.import_id,
                        "listId": record.list_id,
                        "importFileName": record.file_name,
                        "rows": len(record.rows),
                        "route": record.route,
                    }
                    for record in self._imports.values()
                ],
            }

    # --- requests, tokens and faults --------------------------------------------------------

    def count_request(self, key: str) -> None:
        with self._lock:
            self._requests[key] += 1

    def add_handling_time(self, key: str, seconds: float) -> None:
        """The sandbox's own time on a request, from its whole body received to its answer
        sent: what a benchmark subtracts to get the client's own time."""
        with self._lock:
            self._handling_seconds[key] = self._handling_seconds.get(key, 0.0) + seconds

    def issue_token(self, client_id: str, client_secret: str) -> tuple[str, float]:
        """Return ``(token, lifetime_seconds)`` or raise ``ERROR_INVALID_CREDENTIALS``."""
        ok_id = secrets.compare_digest(client_id, self.settings.client_id)
        ok_secret = secrets.compare_digest(client_secret, self.settings.client_secret)
        if not (ok_id and ok_secret):
            raise ApiError(401, "ERROR_INVALID_CREDENTIALS", "Invalid client credentials.")
        with self._lock:
            lifetime = self._faults.token_lifetime_seconds
            token = secrets.token_urlsafe(32)
            self._tokens[token] = time.monotonic() + lifetime
            return token, lifetime

    def token_valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._tokens.get(token)
            if expiry is None:
                return False
            if expiry <= time.monotonic():
                del self._tokens[token]
                return False
            return True

    def take_failure(self, method: str, path: str, *, is_api: bool) -> FailNext | None:
        """The rule to fail this request with, consuming one ``fail_next`` credit."""
        with self._lock:
            rule = self._faults.fail_next
            if rule is None or rule.count <= 0:
                return None
            if not _matches(rule.method, rule.path_contains, method, path, is_api):
                return None
            remaining = rule.count - 1
            self._faults = replace(
                self._faults, fail_next=replace(rule, count=remaining) if remaining else None
            )
            return rule

    def take_drop(self, method: str, path: str, *, is_api: bool) -> bool:
        """Whether to drop this request's answer, consuming one ``drop_next_post`` credit."""
        with self._lock:
            rule = self._faults.drop_next_post
            if rule is None or rule.count <= 0:
                return False
            if not _matches("POST", rule.path_contains, method, path, is_api):
                return False
            remaining = rule.count - 1
            self._faults = replace(
                self._faults, drop_next_post=replace(rule, count=remaining) if remaining else None
            )
            return True

    # --- Listrak resources --------------------------------------------------------------------

    def lists(self) -> list[ListRecord]:
        with self._lock:
            return [copy.copy(r) for r in self._lists.values()]

    def get_list(self, list_id: int) -> ListRecord:
        with self._lock:
            return copy.copy(self._require_list(list_id))

    def groups(self, list_id: int) -> list[GroupRecord]:
        with self._lock:
            self._require_list(list_id)
            return [copy.copy(g) for g in self._groups.values() if g.list_id == list_id]

    def get_group(self, list_id: int, group_id: int) -> GroupRecord:
        with self._lock:
            return copy.copy(self._require_group(list_id, group_id))

    def create_group(self, list_id: int, name: str, position: int) -> int:
        with self._lock:
            self._require_list(list_id)
            if any(g.list_id == list_id and g.name == name for g in self._groups.values()):
                raise invalid_parameter(
                    f"segmentationFieldGroupName '{name}' already exists on this list."
                )
            return self._new_group(list_id, name, position).group_id

    def fields(self, list_id: int, group_id: int) -> list[FieldRecord]:
        with self._lock:
            self._require_group(list_id, group_id)
            return [copy.copy(f) for f in self._fields.values() if f.group_id == group_id]

    def get_field(self, list_id: int, group_id: int, field_id: int) -> FieldRecord:
        with self._lock:
            self._require_group(list_id, group_id)
            field = self._fields.get(field_id)
            if field is None or field.group_id != group_id:
                raise not_found(f"profile field {field_id}")
            return copy.copy(field)

    def create_field(self, list_id: int, group_id: int, body: SegmentationFieldCreate) -> int:
        with self._lock:
            self._require_group(list_id, group_id)
            name = body.segmentationFieldName
            if any(f.group_id == group_id and f.name == name for f in self._fields.values()):
                raise invalid_parameter(f"segmentationFieldName '{name}' already exists.")
            if body.maxLength < 0:
                raise invalid_parameter("maxLength must not be negative.")
            field_id = self._take_id(None)
            self._fields[field_id] = FieldRecord(
                field_id=field_id,
                list_id=list_id,
                group_id=group_id,
                name=name,
                data_type=body.dataType,
                max_length=body.maxLength,
                position=body.position,
            )
            return field_id

    def contact_page(
        self, list_id: int, state: str, field_ids: Sequence[int], offset: int, count: int
    ) -> tuple[list[ContactRecord], dict[int, FieldRecord], bool]:
        """A page of contacts in ``state``, the requested fields, and whether more follow."""
        with self._lock:
            self._settle()
            on_list = self._contacts_of(list_id)
            fields = self._list_fields(list_id)
            missing = [f for f in field_ids if f not in fields]
            if missing:
                raise invalid_parameter(
                    f"segmentationFieldIds: {missing[0]} is not a profile field of this list."
                )
            matching = [c for c in on_list.values() if c.subscription_state == state]
            page = [_copy_contact(c) for c in matching[offset : offset + count]]
            return page, {f: fields[f] for f in field_ids}, offset + count < len(matching)

    def create_file_import(self, list_id: int, body: ImportFile) -> int:
        with self._lock:
            self._require_list(list_id)
            fields = self._list_fields(list_id)
        rows = importing.rows_from_file(body, fields)
        with self._lock:
            self._require_list(list_id)
            options = ImportOptions(
                import_type=body.importType,
                segmentation_import_type=body.segmentationImportType,
                include_unsubscribed=bool(body.includeUnsubscribed),
            )
            return self._new_import(list_id, body.fileName, ROUTE_LIST_IMPORT, rows, options)

    def create_json_import(
        self, list_id: int, contacts: Sequence[ContactSegmentationFieldValues]
    ) -> int:
        """The profile-field route: an UpdateSubscribers import of the given values."""
        with self._lock:
            self._require_list(list_id)
            rows = importing.rows_from_json(contacts, self._list_fields(list_id))
            return self._new_import(list_id, None, ROUTE_SEGMENTATION_FIELD, rows, ImportOptions())

    def imports(self, list_id: int) -> list[ImportRecord]:
        with self._lock:
            self._require_list(list_id)
            return [copy.copy(r) for r in self._imports.values() if r.list_id == list_id]

    def import_state(self, list_id: int, import_id: int) -> ImportState:
        with self._lock:
            self._settle()
            self._require_list(list_id)
            record = self._imports.get(import_id)
            if record is None or record.list_id != list_id:
                raise not_found(f"list import {import_id}")
            now = time.monotonic()
            if record.results is not None:
                status = "Completed"
            elif now < record.start:
                status = "Queued"
            else:
                status = "Processing"
            results = list(record.results) if record.results is not None else None
            return ImportState(record=copy.copy(record), status=status, results=results)

    # --- internals (lock held) ----------------------------------------------------------------

    def _settle(self) -> None:
        now = time.monotonic()
        stalled = self._faults.stall_imports_named
        due = [
            r
            for r in self._imports.values()
            if r.results is None
            and r.due <= now
            and not (stalled and r.file_name and stalled in r.file_name)
        ]
        for record in sorted(due, key=lambda r: (r.due, r.import_id)):
            self._apply(record)

    def _apply(self, record: ImportRecord) -> None:
        on_list = self._contacts_of(record.list_id)
        fields = self._list_fields(record.list_id)
        results = []
        for row in record.rows:
            email = row.email.lower()
            result, contact = importing.apply_row(row, on_list.get(email), fields, record.options)
            if contact is not None and email not in on_list:
                contact.subscribed = _utcnow()
                on_list[email] = contact
            results.append(result)
        record.results = results
        record.completed = _utcnow()

    def _new_import(
        self,
        list_id: int,
        file_name: str | None,
        route: str,
        rows: list[ImportRow],
        options: ImportOptions,
    ) -> int:
        import_id = self._take_id(None)
        delay = self._faults.import_delay_seconds
        now = time.monotonic()
        self._imports[import_id] = ImportRecord(
            import_id=import_id,
            list_id=list_id,
            file_name=file_name,
            route=route,
            created=_utcnow(),
            start=now + delay / 2,
            due=now + delay,
            rows=rows,
            options=options,
        )
        if delay <= 0:
            self._settle()
        return import_id

    def _new_group(self, list_id: int, name: str, position: int) -> GroupRecord:
        group = GroupRecord(self._take_id(None), list_id, name, position)
        self._groups[group.group_id] = group
        return group

    def _take_id(self, wanted: int | None) -> int:
        if wanted is None:
            taken = set(self._groups) | set(self._fields) | set(self._imports)
            while self._next_id in taken:
                self._next_id += 1
            wanted = self._next_id
            self._next_id += 1
        return wanted

    def _require_list(self, list_id: int) -> ListRecord:
        record = self._lists.get(list_id)
        if record is None:
            raise not_found(f"list {list_id}")
        return record

    def _require_group(self, list_id: int, group_id: int) -> GroupRecord:
        self._require_list(list_id)
        group = self._groups.get(group_id)
        if group is None or group.list_id != list_id:
            raise not_found(f"profile field group {group_id}")
        return group

    def _require_field(self, list_id: int, field_id: int) -> FieldRecord:
        self._require_list(list_id)
        field = self._fields.get(field_id)
        if field is None or field.list_id != list_id:
            raise not_found(f"profile field {field_id}")
        return field

    def _contacts_of(self, list_id: int) -> dict[str, ContactRecord]:
        self._require_list(list_id)
        return self._contacts[list_id]

    def _list_fields(self, list_id: int) -> dict[int, FieldRecord]:
        return {f.field_id: f for f in self._fields.values() if f.list_id == list_id}


def _matches(
    want_method: str | None,
    path_contains: str | None,
    method: str,
    path: str,
    is_api: bool,
) -> bool:
    if want_method is not None and want_method.upper() != method.upper():
        return False
    if path_contains is None:
        return is_api
    return path_contains in path


def _copy_contact(contact: ContactRecord) -> ContactRecord:
    return replace(contact, values=dict(contact.values))


def _utcnow() -> datetime:
    return datetime.now(UTC)


__all__ = ["ImportState", "SandboxWorld"]
