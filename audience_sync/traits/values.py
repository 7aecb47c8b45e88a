"""Validating and formatting one trait value for one Listrak profile field. Pure: no I/O.

A profile field's ``dataType`` decides what may be sent (Listrak's Swagger document allows
``Text``, ``Numeric``, ``RadioButton``, ``CheckBox``, ``CommentArea``, ``Date`` and
``ContentBlock``):

- ``Text`` / ``CommentArea``: the value as text, surrounding whitespace removed (a list import
  strips cells anyway), never truncated: longer than the field's ``maxLength`` is ``too_long``.
- ``Numeric``: a canonical decimal string: no exponent, no trailing zeros, no ``+``, no ``-0``
  (``412.50`` -> ``412.5``, ``1e3`` -> ``1000``); NaN, infinities and booleans are
  ``not_a_number``.
- ``Date``: the date in :data:`DEFAULT_DATE_FORMAT` or the configured format. Listrak's
  published contract (its Swagger document and error codes) names no date format for profile
  field values or imports; the only date representation it documents is Swagger's
  ``format: date-time``, i.e. ISO 8601. So the default is the ISO 8601 calendar date
  ``%Y-%m-%d``: unambiguous (``11/02/2026`` is not), sortable, and what that document uses.
  An account that expects US dates sets ``[listrak] date_format = "%m/%d/%Y"``.
  Accepted inputs: ``date``/``datetime`` objects, ISO 8601 strings (date or date-time; a
  date-time's own calendar date is kept, never shifted between zones) and strings already in
  the configured format. Years before 1000 are ``not_a_date`` (not four digits).
- ``RadioButton``: exactly one of the field's choices (``not_a_choice`` otherwise). The Swagger
  document has no property listing a RadioButton field's choices, so they come from the trait's
  configuration; with no choices known, nothing is accepted.
- ``CheckBox``: ``on`` / ``off`` (also from booleans and ``true``/``false``/``1``/``0``).
- ``ContentBlock``: not a value a trait can hold: ``unsupported_type``.

A missing value (``None``, NaN, a blank string) is ``empty``. Every reason is one of
:data:`REASONS`; the formatted value never depends on anything but the field and the input, and
formatting a formatted value gives it back (idempotent).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Context, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import pyarrow as pa

TEXT: Final = "Text"
NUMERIC: Final = "Numeric"
DATE: Final = "Date"
RADIO_BUTTON: Final = "RadioButton"
CHECKBOX: Final = "CheckBox"
COMMENT_AREA: Final = "CommentArea"
CONTENT_BLOCK: Final = "ContentBlock"
DATA_TYPES: Final = (TEXT, NUMERIC, RADIO_BUTTON, CHECKBOX, COMMENT_AREA, DATE, CONTENT_BLOCK)
TRAIT_DATA_TYPES: Final = (TEXT, NUMERIC, DATE, RADIO_BUTTON, CHECKBOX, COMMENT_AREA)

DEFAULT_DATE_FORMAT: Final = "%Y-%m-%d"

TOO_LONG: Final = "too_long"
NOT_A_NUMBER: Final = "not_a_number"
NOT_A_DATE: Final = "not_a_date"
NOT_A_CHOICE: Final = "not_a_choice"
EMPTY: Final = "empty"
UNSUPPORTED_TYPE: Final = "unsupported_type"
REASONS: Final = (TOO_LONG, NOT_A_NUMBER, NOT_A_DATE, NOT_A_CHOICE, EMPTY, UNSUPPORTED_TYPE)

# a plain decimal literal: no underscores, no "nan"/"inf", an optional exponent
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# beyond this many digits either side of the point a number is not a trait value but a typo
_MAX_DIGITS: Final = 100
# exact: normalising must never round (the default context keeps only 28 digits)
_EXACT = Context(prec=4 * _MAX_DIGITS)
_MIN_YEAR: Final = 1000
_CHECKBOX_TRUE = frozenset({"on", "true", "1", "yes"})
_CHECKBOX_FALSE = frozenset({"off", "false", "0", "no"})


@dataclass(frozen=True)
class FieldSpec:
    """What formatting needs to know of a profile field.

    ``max_length`` 0 means no limit known. ``choices`` are a RadioButton field's values.
    """

    data_type: str
    max_length: int = 0
    choices: tuple[str, ...] = ()
    date_format: str = DEFAULT_DATE_FORMAT


@dataclass(frozen=True)
class Formatted:
    """Either ``value`` (the string to send) or ``reason`` (why nothing is sent)."""

    value: str | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def _rejected(reason: str) -> Formatted:
    return Formatted(None, reason)


def format_value(field: FieldSpec, raw: object) -> Formatted:
    """The canonical value of ``raw`` for ``field``, or the reason it cannot be sent."""
    if _is_missing(raw):
        return _rejected(EMPTY)
    data_type = field.data_type
    if data_type in (TEXT, COMMENT_AREA):
        result = _text(raw)
    elif data_type == NUMERIC:
        result = _numeric(raw)
    elif data_type == DATE:
        result = _date(raw, field.date_format)
    elif data_type == RADIO_BUTTON:
        result = _choice(raw, field.choices)
    elif data_type == CHECKBOX:
        result = _checkbox(raw)
    else:
        return _rejected(UNSUPPORTED_TYPE)
    if result.value is not None and field.max_length > 0 and len(result.value) > field.max_length:
        return _rejected(TOO_LONG)
    return result


def format_values(field: FieldSpec, raws: Iterable[object]) -> list[Formatted]:
    return [format_value(field, raw) for raw in raws]


def format_array(field: FieldSpec, values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """``(formatted, reasons)``: two string arrays as long as ``values``.

    Where a value is accepted ``formatted`` holds it and ``reasons`` is null; where it is not,
    ``formatted`` is null and ``reasons`` holds the reason. Each distinct input is formatted once.
    """
    import pyarrow as pa

    encoded = values.dictionary_encode() if not pa.types.is_dictionary(values.type) else values
    results = format_values(field, encoded.dictionary.to_pylist())
    formatted = pa.array([r.value for r in results], type=pa.string())
    reasons = pa.array([r.reason for r in results], type=pa.string())
    indices = encoded.indices
    null_result = format_value(field, None)
    out_values = formatted.take(indices)
    out_reasons = reasons.take(indices)
    if indices.null_count:
        import pyarrow.compute as pc

        is_null = indices.is_null()
        out_values = pc.if_else(is_null, pa.scalar(null_result.value, pa.string()), out_values)
        out_reasons = pc.if_else(is_null, pa.scalar(null_result.reason, pa.string()), out_reasons)
    return out_values, out_reasons


def _is_missing(raw: object) -> bool:
    if raw is None:
        return True
    if isinstance(raw, float) and math.isnan(raw):
        return True
    return isinstance(raw, str) and not raw.strip()


def _text(raw: object) -> Formatted:
    if isinstance(raw, bool):
        return Formatted("true" if raw else "false")
    if isinstance(raw, int | float | Decimal):
        number = _numeric(raw)
        return number if number.ok else Formatted(str(raw))
    if isinstance(raw, datetime | date):
        return Formatted(raw.isoformat())
    return Formatted(str(raw).strip())


def _numeric(raw: object) -> Formatted:
    if isinstance(raw, bool):
        return _rejected(NOT_A_NUMBER)
    if isinstance(raw, int):
        number = Decimal(raw)
    elif isinstance(raw, float):
        if not math.isfinite(raw):
            return _rejected(NOT_A_NUMBER)
        number = Decimal(repr(raw))
    elif isinstance(raw, Decimal):
        number = raw
    elif isinstance(raw, str):
        text = raw.strip()
        if not _DECIMAL.fullmatch(text):
            return _rejected(NOT_A_NUMBER)
        try:
            number = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid literals
            return _rejected(NOT_A_NUMBER)
    else:
        return _rejected(NOT_A_NUMBER)
    if not number.is_finite():
        return _rejected(NOT_A_NUMBER)
    if number.is_zero():
        return Formatted("0")
    if abs(number.adjusted()) > _MAX_DIGITS or len(number.as_tuple().digits) > 2 * _MAX_DIGITS:
        return _rejected(TOO_LONG)
    return Formatted(format(number.normalize(_EXACT), "f"))


def _date(raw: object, date_format: str) -> Formatted:
    if isinstance(raw, datetime):
        day: date | None = raw.date()
    elif isinstance(raw, date):
        day = raw
    elif isinstance(raw, str):
        day = parse_date(raw.strip(), date_format)
    else:
        return _rejected(NOT_A_DATE)
    if day is None or day.year < _MIN_YEAR:  # strftime writes year 999 as "999"
        return _rejected(NOT_A_DATE)
    return Formatted(day.strftime(date_format))


def parse_date(text: str, date_format: str = DEFAULT_DATE_FORMAT) -> date | None:
    """The calendar date of an ISO 8601 date or date-time, or of text in ``date_format``."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        pass
    try:
        return datetime.strptime(text, date_format).date()
    except ValueError:
        return None


def _choice(raw: object, choices: Sequence[str]) -> Formatted:
    text = _text(raw).value
    if text is None or text not in choices:
        return _rejected(NOT_A_CHOICE)
    return Formatted(text)


def _checkbox(raw: object) -> Formatted:
    if isinstance(raw, bool):
        return Formatted("on" if raw else "off")
    text = str(raw).strip().lower()
    if text in _CHECKBOX_TRUE:
        return Formatted("on")
    if text in _CHECKBOX_FALSE:
        return Formatted("off")
    return _rejected(NOT_A_CHOICE)
