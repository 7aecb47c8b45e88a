"""The two ways of submitting changes, behind one interface the pipeline drives.

``list_import`` (default): CSV list imports of at most ``max_import_bytes``; a POST whose answer
was lost is looked up by its deterministic file name before it is ever sent again.
``segmentation_field_api``: the beta JSON route Segment's destination uses, in batches of
``json_chunk_size`` contacts; re-sending a batch is harmless (setting a value twice is a no-op),
so its lost answers are retried like any idempotent request.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

from audience_sync.checkpoints import checkpoint
from audience_sync.config import ListrakSettings
from audience_sync.errors import RetriableListrakError
from audience_sync.listrak.client import ListrakClient
from audience_sync.listrak.imports import (
    ImportPart,
    build_import_file,
    field_value_batch,
    import_file_name,
    split_into_parts,
)
from audience_sync.listrak.models import ContactSegmentationFieldValues

logger = logging.getLogger("audience_sync.listrak")


@dataclass(frozen=True)
class Part:
    number: int
    file_name: str
    first_email: str
    last_email: str
    row_count: int
    byte_count: int
    body: bytes


class SubmitRoute(Protocol):
    name: str

    def initial_limit(self) -> int: ...

    def smaller_limit(self, part: Part) -> int: ...

    def parts(
        self, rows: Iterable[tuple[str, str]], *, limit: int, first_number: int
    ) -> Iterator[Part]: ...

    def post(self, part: Part) -> str: ...


class _Route:
    def __init__(
        self,
        client: ListrakClient,
        settings: ListrakSettings,
        *,
        run_id: int,
        audience_key: str,
        list_id: int,
        field_id: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._settings = settings
        self._run_id = run_id
        self._key = audience_key
        self._list_id = list_id
        self._field_id = field_id
        self._sleep = sleep


class ListImportRoute(_Route):
    name = "list_import"

    def initial_limit(self) -> int:
        return self._settings.max_import_bytes

    def smaller_limit(self, part: Part) -> int:
        return part.byte_count // 2

    def parts(
        self, rows: Iterable[tuple[str, str]], *, limit: int, first_number: int
    ) -> Iterator[Part]:
        for offset, chunk in enumerate(
            split_into_parts(rows, column_name=self._key, max_bytes=limit)
        ):
            number = first_number + offset
            yield Part(
                number=number,
                file_name=import_file_name(self._run_id, self._key, self._field_id, number),
                first_email=chunk.first_email,
                last_email=chunk.last_email,
                row_count=chunk.row_count,
                byte_count=len(chunk.body),
                body=chunk.body,
            )

    def post(self, part: Part) -> str:
        """POST once; when the answer may have been lost, look the import up before re-sending."""
        body = build_import_file(
            ImportPart(part.number, part.body, part.first_email, part.last_email, part.row_count),
            file_name=part.file_name,
            field_id=self._field_id,
        )
        attempts = self._settings.retry_attempts
        for attempt in range(1, attempts + 1):
            try:
                return self._client.post_import(self._list_id, body)
            except RetriableListrakError as exc:
                if not exc.may_have_been_applied:
                    # Never reached Listrak (no token, no connection, 429): nothing to look up.
                    logger.warning(
                        "import.not_sent", extra={"file_name": part.file_name, "error": str(exc)}
                    )
                else:
                    logger.warning(
                        "import.answer_lost",
                        extra={"file_name": part.file_name, "error": str(exc)},
                    )
                    checkpoint("answer_lost")
                    found = self._client.find_import(self._list_id, part.file_name)
                    if found is not None:
                        logger.info("import.found_by_name", extra={"file_name": part.file_name})
                        return found
                if attempt == attempts:
                    raise
                self._sleep(
                    min(
                        self._settings.retry_initial_wait_seconds * 2**attempt,
                        self._settings.retry_max_wait_seconds,
                    )
                )
        raise AssertionError("unreachable")  # pragma: no cover


class FieldValuesRoute(_Route):
    name = "segmentation_field_api"

    def initial_limit(self) -> int:
        return self._settings.json_chunk_size

    def smaller_limit(self, part: Part) -> int:
        return part.row_count // 2

    def parts(
        self, rows: Iterable[tuple[str, str]], *, limit: int, first_number: int
    ) -> Iterator[Part]:
        iterator = iter(rows)
        number = first_number
        while batch := list(islice(iterator, limit)):
            body = json.dumps(
                [b.model_dump() for b in field_value_batch(batch, field_id=self._field_id)]
            ).encode()
            yield Part(
                number=number,
                file_name=(
                    f"audience-sync_run{self._run_id}_{self._key}_field{self._field_id}"
                    f"_batch{number}.json"
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
