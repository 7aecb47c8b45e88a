"""The two ways of submitting changes, behind one interface the pipeline drives.

``list_import`` (default): CSV list imports of at most ``max_import_bytes``; a POST whose answer
was lost is looked up by its deterministic file name before it is ever sent again.
``segmentation_field_api``: the beta JSON route Segment's destination uses, in batches of
``json_chunk_size`` contacts; re-sending a batch is harmless (setting a value twice is a no-op),
so its lost answers are retried like any idempotent request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Protocol

from audience_sync.config import ListrakSettings
from audience_sync.listrak.client import ListrakClient
from audience_sync.listrak.imports import (
    ImportPart,
    build_import_file,
    field_value_batch,
    import_file_name,
    split_batches_into_parts,
)
from audience_sync.listrak.models import ContactSegmentationFieldValues
from audience_sync.state.db import utcnow

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class Part:
    number: int
    file_name: str
    first_email: str
    last_email: str
    row_count: int
    byte_count: int
    body: bytes
    blanks: int = 0  # rows whose value is blank (a trait's clear)


class SubmitRoute(Protocol):
    name: str

    def initial_limit(self) -> int: ...

    def smaller_limit(self, part: Part) -> int: ...

    def parts(
        self, batches: Iterable[pa.RecordBatch], *, limit: int, first_number: int
    ) -> Iterator[Part]:
        """Arrow batches of ``(email, value)`` in email order, as parts of at most ``limit``."""
        ...

    def post(self, part: Part) -> str: ...


class _Route:
    def __init__(
        self,
        client: ListrakClient,
        settings: ListrakSettings,
        *,
        installation_id: str,
        run_id: int,
        audience_key: str,
        list_id: int,
        field_id: int,
        blank_clears: bool = False,
    ) -> None:
        self._client = client
        # A computed trait: a part with blank values goes as an Overwrite import, so the blank
        # cells clear the field; parts without blanks stay Update imports.
        self._blank_clears = blank_clears
        self._settings = settings
        self._installation_id = installation_id
        self._run_id = run_id
        # A look-up by name accepts no import created before this submission began.
        self._not_before = utcnow()
        self._key = audience_key
        self._list_id = list_id
        self._field_id = field_id


class ListImportRoute(_Route):
    name = "list_import"

    def initial_limit(self) -> int:
        return self._settings.max_import_bytes

    def smaller_limit(self, part: Part) -> int:
        return part.byte_count // 2

    def parts(
        self, batches: Iterable[pa.RecordBatch], *, limit: int, first_number: int
    ) -> Iterator[Part]:
        for offset, chunk in enumerate(
            split_batches_into_parts(batches, column_name=self._key, max_bytes=limit)
        ):
            number = first_number + offset
            yield Part(
                number=number,
                file_name=import_file_name(
                    self._installation_id, self._run_id, self._key, self._field_id, number
                ),
                first_email=chunk.first_email,
                last_email=chunk.last_email,
                row_count=chunk.row_count,
                byte_count=len(chunk.body),
                body=chunk.body,
                blanks=chunk.blanks,
            )

    def post(self, part: Part) -> str:
        """POST the part as one import; the client retries it and never applies it twice."""
        body = build_import_file(
            ImportPart(part.number, part.body, part.first_email, part.last_email, part.row_count),
            file_name=part.file_name,
            field_id=self._field_id,
            segmentation_import_type=(
                "Overwrite" if self._blank_clears and part.blanks else "Update"
            ),
        )
        return self._client.post_import(self._list_id, body, not_before=self._not_before)


class FieldValuesRoute(_Route):
    name = "segmentation_field_api"

    def initial_limit(self) -> int:
        return self._settings.json_chunk_size

    def smaller_limit(self, part: Part) -> int:
        return part.row_count // 2

    def parts(
        self, batches: Iterable[pa.RecordBatch], *, limit: int, first_number: int
    ) -> Iterator[Part]:
        iterator = (
            pair
            for batch in batches
            for pair in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True)
        )
        number = first_number
        while batch := list(islice(iterator, limit)):
            body = json.dumps(
                [b.model_dump() for b in field_value_batch(batch, field_id=self._field_id)]
            ).encode()
            yield Part(
                number=number,
                file_name=(
                    f"audience-sync_{self._installation_id}_run{self._run_id}_{self._key}"
                    f"_field{self._field_id}_batch{number}.json"
                ),
                first_email=batch[0][0],
                last_email=batch[-1][0],
                row_count=len(batch),
                byte_count=len(body),
                body=body,
            )
            number += 1

    def post(self, part: Part) -> str:
        contacts = [ContactSegmentationFieldValues.model_validate(c) for c in json.loads(part.body)]
        return self._client.post_field_values(self._list_id, contacts)
