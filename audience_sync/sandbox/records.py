"""Plain records the sandbox world keeps; mutated only under the world's lock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

SUBSCRIBED = "Subscribed"
UNSUBSCRIBED = "Unsubscribed"
SUBSCRIPTION_STATES = (SUBSCRIBED, UNSUBSCRIBED)


@dataclass
class ListRecord:
    list_id: int
    name: str
    created: datetime


@dataclass
class GroupRecord:
    group_id: int
    list_id: int
    name: str
    position: int


@dataclass
class FieldRecord:
    field_id: int
    list_id: int
    group_id: int
    name: str
    data_type: str
    max_length: int
    position: int
    choices: tuple[str, ...] = ()
    """A RadioButton field's values (an admin-only extension: the Swagger document has none)."""


@dataclass
class ContactRecord:
    email: str
    subscription_state: str = SUBSCRIBED
    banned: bool = False
    suppressed: bool = False
    subscribed: datetime | None = None
    values: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportRow:
    """One contact of an import: the address as sent and the field values it carries.

    A value of ``None`` means the cell was blank.
    """

    email: str
    values: dict[int, str | None]


@dataclass(frozen=True)
class ImportOptions:
    import_type: str = "UpdateSubscribers"
    segmentation_import_type: str = "Update"
    include_unsubscribed: bool = False


@dataclass
class ImportRecord:
    import_id: int
    list_id: int
    file_name: str | None
    route: str
    created: datetime
    start: float
    """Monotonic time at which the import leaves ``Queued`` for ``Processing``."""
    due: float
    """Monotonic time at which the import completes and its rows are applied."""
    rows: list[ImportRow]
    options: ImportOptions
    results: list[str] | None = None
    completed: datetime | None = None
