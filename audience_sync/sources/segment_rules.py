"""How Segment Engage messages decide audience membership: pure functions, no I/O.

A message is first *flattened* into a :class:`FlatEvent`, the row shape shared with the
``segment_events_sql`` table (one row per message and audience):

* **Membership.** An Identify whose ``traits[<key>]`` is a boolean, or a Track
  ``Audience Entered`` / ``Audience Exited`` whose ``properties.audience_key`` is the key;
  its value is the boolean ``properties[<key>]``, or the event name when that is not a boolean.
* **Email.** The first non-blank string of ``context.traits.email``, ``traits.email`` and
  ``properties.email``; any message of the profile may carry it.
* **Profile.** ``userId``, else ``anonymousId`` (a profile seen under both is two profiles).
* **Time.** ``timestamp`` orders events; ``receivedAt`` breaks ties and stands in for a missing
  ``timestamp``. ISO 8601 strings; a missing offset means UTC.

:func:`decide_profile` states the per-profile rules that the SQL in
:mod:`audience_sync.sources.segment_events_sql` applies at scale; the tests hold them equal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ENTERED = "Audience Entered"
EXITED = "Audience Exited"
MEMBERSHIP_EVENTS = (ENTERED, EXITED)
EMAIL_PLACES = (("context", "traits", "email"), ("traits", "email"), ("properties", "email"))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FlatEvent:
    """One message as a row. ``audience_key``/``value`` are set only for membership rows;
    times are microseconds since the Unix epoch (UTC)."""

    message_id: str | None
    user_id: str | None
    anonymous_id: str | None
    type: str | None
    event: str | None
    audience_key: str | None
    value: bool | None
    email: str | None
    timestamp: int | None
    received_at: int | None

    @property
    def profile(self) -> str | None:
        return self.user_id or self.anonymous_id

    @property
    def order_time(self) -> int | None:
        return self.timestamp if self.timestamp is not None else self.received_at

    def as_row(self) -> tuple[Any, ...]:
        return (
            self.message_id,
            self.user_id,
            self.anonymous_id,
            self.type,
            self.event,
            self.audience_key,
            self.value,
            self.email,
            self.timestamp,
            self.received_at,
        )


@dataclass(frozen=True)
class Decision:
    """A profile's membership after all its events, and the email to report it under."""

    member: bool
    email: str | None


def parse_timestamp(value: object) -> int | None:
    """An ISO 8601 string as microseconds since the epoch (naive means UTC); else ``None``."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _text(value: object) -> str | None:
    """A non-blank string (numbers accepted for ids), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def _dig(message: Mapping[str, Any], path: tuple[str, ...]) -> object:
    node: object = message
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def membership_value(message: Mapping[str, Any], audience_key: str) -> bool | None:
    """The membership this message states for ``audience_key``, or ``None`` if it states none."""
    kind = message.get("type")
    if kind == "identify":
        value = _dig(message, ("traits", audience_key))
        return value if isinstance(value, bool) else None
    if kind == "track" and message.get("event") in MEMBERSHIP_EVENTS:
        if _dig(message, ("properties", "audience_key")) != audience_key:
            return None
        value = _dig(message, ("properties", audience_key))
        return value if isinstance(value, bool) else message.get("event") == ENTERED
    return None


def message_email(message: Mapping[str, Any]) -> str | None:
    for path in EMAIL_PLACES:
        value = _dig(message, path)
        if isinstance(value, str) and value.strip():
            return value
    return None


def flatten_message(message: Mapping[str, Any], audience_key: str) -> FlatEvent | None:
    """The row for ``message``, or ``None`` if it neither states membership nor carries email."""
    value = membership_value(message, audience_key)
    email = message_email(message)
    if value is None and email is None:
        return None
    return FlatEvent(
        message_id=_text(message.get("messageId")),
        user_id=_text(message.get("userId")),
        anonymous_id=_text(message.get("anonymousId")),
        type=_text(message.get("type")),
        event=_text(message.get("event")),
        audience_key=audience_key if value is not None else None,
        value=value,
        email=email,
        timestamp=parse_timestamp(message.get("timestamp")),
        received_at=parse_timestamp(message.get("receivedAt")),
    )


def is_membership(event: FlatEvent, audience_key: str) -> bool:
    """Whether a row states membership of ``audience_key`` (same test as the SQL)."""
    if event.audience_key != audience_key or event.value is None:
        return False
    return event.type == "identify" or (event.type == "track" and event.event in MEMBERSHIP_EVENTS)


def _copy_rank(event: FlatEvent) -> tuple[Any, ...]:
    """Among copies of one messageId the smallest is kept: first received, then earliest."""
    return (
        event.received_at is None,
        event.received_at or 0,
        event.timestamp is None,
        event.timestamp or 0,
        event.value,
        event.email is None,
        event.email or "",
    )


def _recency(event: FlatEvent) -> tuple[Any, ...]:
    """Larger is later: order time, then receivedAt, then messageId (missing ones first)."""
    return (
        event.order_time is not None,
        event.order_time or 0,
        event.received_at is not None,
        event.received_at or 0,
        event.message_id is not None,
        event.message_id or "",
    )


def dedupe_messages(events: Iterable[FlatEvent]) -> list[FlatEvent]:
    """One row per messageId of a profile (see :func:`_copy_rank`); rows without one all stay."""
    kept: dict[str, FlatEvent] = {}
    anonymous: list[FlatEvent] = []
    for event in events:
        if event.message_id is None:
            anonymous.append(event)
        elif event.message_id not in kept or _copy_rank(event) < _copy_rank(kept[event.message_id]):
            kept[event.message_id] = event
    return [*kept.values(), *anonymous]


def decide_profile(events: Iterable[FlatEvent], audience_key: str) -> Decision | None:
    """The membership of one profile from all its rows; ``None`` if none states membership.

    The latest membership row wins (by :func:`_recency`; on a full tie exit wins, then the
    row with the greater email). Rows
    without any time cannot be ordered and are ignored for membership. The email is the
    winner's, else that of the latest row of the profile carrying one.
    """
    rows = list(events)
    candidates = dedupe_messages(
        e for e in rows if is_membership(e, audience_key) and e.order_time is not None
    )
    if not candidates:
        return None
    winner = max(
        candidates, key=lambda e: (*_recency(e), not e.value, e.email is not None, e.email or "")
    )
    email = winner.email
    if email is None:
        with_email = [e for e in rows if e.email is not None]
        if with_email:
            email = max(with_email, key=lambda e: (*_recency(e), e.email)).email
    return Decision(member=bool(winner.value), email=email)
