"""Step 4, per import: once Listrak has finished an import, confirm exactly the contacts it
accepted, park the ones it skipped, and fail the rest (planned again by the next run)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import select

from audience_sync.checkpoints import checkpoint
from audience_sync.normalize import normalize_email
from audience_sync.pipeline.context import RunContext
from audience_sync.state import changes, confirm, ledger
from audience_sync.state.db import utcnow
from audience_sync.state.statuses import ImportStatus
from audience_sync.state.tables import listrak_imports

logger = logging.getLogger("audience_sync.pipeline")


def import_row(ctx: RunContext, import_row_id: int) -> Mapping[str, Any]:
    with ctx.engine.connect() as conn:
        row = conn.execute(
            select(listrak_imports).where(listrak_imports.c.id == import_row_id)
        ).one()
    return dict(row._mapping)


def is_finished(ctx: RunContext, status: str | None, end_date: str | None) -> bool:
    vocabulary = ctx.config.settings.listrak.vocabulary
    value = status or ""
    return (
        value in vocabulary.import_success or value in vocabulary.import_failure or bool(end_date)
    )


def resolved_by(ctx: RunContext, row: Mapping[str, Any]) -> int | None:
    """This run, when it resolves an import of an earlier run."""
    return ctx.run_id if int(row["run_id"]) != ctx.run_id else None


def give_up_import(
    ctx: RunContext, row: Mapping[str, Any], *, status: ImportStatus, reason: str
) -> None:
    """``lost`` or ``abandoned``: its changes fail, so the next plan sends them again."""
    with ctx.engine.begin() as conn:
        ledger.give_up_import(
            conn,
            int(row["id"]),
            status=status,
            reason=reason,
            resolved_run_id=resolved_by(ctx, row),
        )
    logger.warning(f"import.{status}", extra={"file_name": row["file_name"], "reason": reason})


def settle_finished_import(ctx: RunContext, row: Mapping[str, Any], status: str) -> None:
    """Confirm what a finished import applied. An import found by name whose row count is not
    ours is somebody else's: its changes are given up and sent again."""
    checkpoint("finished")
    vocabulary = ctx.config.settings.listrak.vocabulary
    import_row_id = int(row["id"])
    list_id = int(row["list_id"])
    listrak_id = str(row["listrak_import_id"])
    if status not in vocabulary.import_success:
        reason = f"import ended with status {status!r}"
        with ctx.engine.begin() as conn:
            changes.fail_import(conn, import_row_id, reason)
            ledger.update_import(
                conn,
                import_row_id,
                status=ImportStatus.FAILED,
                listrak_status=status,
                finished_at=utcnow(),
                error=reason,
                resolved_run_id=resolved_by(ctx, row),
            )
        return
    summary = ctx.client.import_summary(list_id, listrak_id)
    if row["found_by_name"] and summary.processedCount != row["row_count"]:
        give_up_import(
            ctx,
            row,
            status=ImportStatus.LOST,
            reason=(
                f"the import named {row['file_name']} holds {summary.processedCount} rows, "
                f"not {row['row_count']}: not this one"
            ),
        )
        return
    all_accepted = summary.processedCount == row["row_count"] and summary.rejected_count() == 0
    with ctx.engine.begin() as conn:
        if not all_accepted:
            confirm.stage_results(conn, import_row_id, _contact_results(ctx, list_id, listrak_id))
        outcome = confirm.settle_import(
            conn,
            import_row_id=import_row_id,
            run_id=int(row["run_id"]),
            audience_id=int(row["audience_id"]),
            vocabulary=changes.ResultVocabulary(
                accepted=vocabulary.contact_accepted, skipped=vocabulary.contact_skipped
            ),
            all_accepted=all_accepted,
        )
        ledger.update_import(
            conn,
            import_row_id,
            status=ImportStatus.FINISHED,
            listrak_status=status,
            summary=summary.model_dump(),
            finished_at=utcnow(),
            resolved_run_id=resolved_by(ctx, row),
        )
    if int(row["run_id"]) == ctx.run_id:
        ctx.resolved.add(int(row["audience_id"]), outcome.settled)
    for result, count in outcome.unknown_results.items():
        logger.warning(
            "import.unknown_contact_result",
            extra={"result": result, "contacts": count, "file_name": row["file_name"]},
        )
    logger.info(
        "import.settled",
        extra={
            "file_name": row["file_name"],
            "confirmed": outcome.confirmed,
            "skipped": outcome.skipped,
            "failed": outcome.failed,
        },
    )


def _contact_results(ctx: RunContext, list_id: int, listrak_id: str) -> Iterator[tuple[str, str]]:
    for contact in ctx.client.import_contacts(list_id, listrak_id):
        email, _ = normalize_email(contact.emailAddress)
        if email is not None:
            yield email, contact.importResult or ""
