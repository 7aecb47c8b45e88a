"""Step 3, for all audiences at once: one polling loop over every open import, confirming each
as soon as Listrak finishes it, so a run takes about as long as its slowest import, not the sum.

Each import is polled at most once per ``poll_interval_seconds``, and at most
``max_open_imports`` of this run's imports are open at a time, which bounds the request rate.
Imports of earlier runs are watched while this run's own are in flight but never extend the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from audience_sync.checkpoints import checkpoint
from audience_sync.errors import ImportStillRunningError, ListrakError, StopRunError
from audience_sync.pipeline.context import AudienceRun, RunContext
from audience_sync.pipeline.outcomes import fail_audience
from audience_sync.pipeline.settling import import_row, is_finished, settle_finished_import

logger = logging.getLogger("audience_sync.pipeline")


@dataclass
class _Watched:
    import_row_id: int
    file_name: str
    audience: AudienceRun
    deadline: float | None  # monotonic; None for an earlier run's import
    next_poll: float = 0.0
    last_status: str = ""


class ImportPoller:
    def __init__(self, ctx: RunContext, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._ctx = ctx
        self._clock = clock
        self._watched: dict[int, _Watched] = {}
        self._warned: set[str] = set()
        settings = ctx.config.settings.listrak
        vocabulary = settings.vocabulary
        self._known = {*vocabulary.import_success, *vocabulary.import_failure, "Queued"}
        self._known.add("Processing")

    def watch(self, import_row_id: int, audience: AudienceRun, *, own: bool = True) -> None:
        """Poll this import until it finishes; ``own`` imports are awaited (until
        ``import_timeout``), the others only while some own import is still open."""
        row = import_row(self._ctx, import_row_id)
        timeout = self._ctx.config.settings.listrak.import_timeout.total_seconds()
        self._watched[import_row_id] = _Watched(
            import_row_id=import_row_id,
            file_name=str(row["file_name"]),
            audience=audience,
            deadline=self._clock() + timeout if own else None,
        )

    @property
    def own_open(self) -> int:
        return sum(1 for w in self._watched.values() if w.deadline is not None)

    def open_for(self, audience: AudienceRun) -> int:
        return sum(1 for w in self._watched.values() if w.audience is audience)

    def wait_for_slot(self) -> None:
        """Before the next POST: wait until fewer than ``max_open_imports`` are open."""
        limit = self._ctx.config.settings.listrak.max_open_imports
        while self.own_open >= limit:
            self._poll_due()
            if self.own_open >= limit:
                self._sleep_until_next_poll()

    def drain(self, on_progress: Callable[[], None] | None = None) -> None:
        """Until every import this run awaits is settled or has passed ``import_timeout``.

        ``on_progress`` is called after every round of polls; it may post more imports (an
        audience that waited for an earlier run's import is planned once that one settles).
        """
        progress = on_progress or (lambda: None)
        with self._ctx.bar("imports", "imports") as bar:
            progress()
            bar.reset(total=self.own_open)
            while self.own_open:
                before = self.own_open
                self._poll_due()
                settled = before - self.own_open
                progress()
                bar.total = max(bar.total or 0, bar.n + settled + self.own_open)
                bar.update(settled)
                if self.own_open:
                    self._sleep_until_next_poll()
        self._watched.clear()  # earlier runs' imports stay open for a later run

    # --- internals ------------------------------------------------------------------------

    def _sleep_until_next_poll(self) -> None:
        checkpoint("polling")
        next_poll = min(w.next_poll for w in self._watched.values())
        self._ctx.sleep(max(0.0, next_poll - self._clock()))

    def _poll_due(self) -> None:
        interval = self._ctx.config.settings.listrak.poll_interval_seconds
        for watched in list(self._watched.values()):
            now = self._clock()
            if watched.next_poll > now:
                continue
            watched.next_poll = now + interval
            if watched.audience.failed and watched.deadline is None:
                self._watched.pop(watched.import_row_id)
                continue
            try:
                self._poll_one(watched)
            except StopRunError:
                raise
            except ListrakError as exc:
                # The import stays open in the ledger; a later run resolves it.
                self._watched.pop(watched.import_row_id, None)
                fail_audience(self._ctx, watched.audience, str(exc))

    def _poll_one(self, watched: _Watched) -> None:
        ctx = self._ctx
        row = import_row(ctx, watched.import_row_id)
        status = ctx.client.import_status(int(row["list_id"]), str(row["listrak_import_id"]))
        value = status.status or ""
        watched.last_status = value
        if value and value not in self._known and value not in self._warned:
            self._warned.add(value)
            logger.warning("import.unknown_status", extra={"status": value})
        if is_finished(ctx, value, status.endDate):
            self._watched.pop(watched.import_row_id)
            settle_finished_import(ctx, row, value)
            return
        if watched.deadline is not None and self._clock() > watched.deadline:
            self._watched.pop(watched.import_row_id)
            timeout = ctx.config.settings.listrak.import_timeout
            raise ImportStillRunningError(
                f"import {watched.file_name} still {value or 'pending'} after {timeout}; "
                "a later run collects it"
            )
