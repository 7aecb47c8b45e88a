"""Step 2, per audience: post the planned changes in parts. Every part has a committed ledger
row before its POST, so a run killed at any point is resolved by the next one; a 404 on a large
body (Listrak's size limit) halves the part size and goes on with what is left."""

from __future__ import annotations

import logging
from pathlib import Path

from audience_sync.checkpoints import checkpoint
from audience_sync.errors import (
    FatalListrakError,
    ListrakError,
    PayloadTooLargeError,
    SkippableListrakError,
)
from audience_sync.listrak.routes import FieldValuesRoute, ListImportRoute, Part, SubmitRoute
from audience_sync.pipeline.context import AudienceRun, RunContext
from audience_sync.pipeline.polling import ImportPoller
from audience_sync.state import changes, diff, ledger
from audience_sync.state.db import utcnow
from audience_sync.state.statuses import AudienceStatus, ImportStatus

logger = logging.getLogger("audience_sync.pipeline")


def submit_audience(ctx: RunContext, run: AudienceRun, poller: ImportPoller) -> None:
    """POST every planned change of ``run``; each import posted is handed to ``poller``.
    Raises the Listrak error that stopped it (the caller fails the audience)."""
    route = _route(ctx, run)
    limit = route.initial_limit()
    next_number = 1
    with ctx.engine.begin() as conn:
        ledger.set_audience_status(conn, ctx.run_id, run.audience_id, AudienceStatus.SUBMITTED)
    while True:
        with diff.sent_values_in_order(
            ctx.engine, ctx.run_id, run.audience_id, trait=run.is_trait, workdir=_spill(ctx)
        ) as batches:
            for part in route.parts(batches, limit=limit, first_number=next_number):
                next_number = part.number + 1
                poller.wait_for_slot()
                if run.failed:
                    return  # an earlier part of this audience failed while we waited
                import_row_id = _record_part(ctx, run, part, route.name)
                ctx.before_post()
                checkpoint("posting")
                try:
                    listrak_id = route.post(part)
                except PayloadTooLargeError:
                    _release_part(ctx, import_row_id, "404: body over Listrak's size limit")
                    if part.row_count <= 1:
                        raise
                    _check_list_exists(ctx, run)
                    limit = route.smaller_limit(part)
                    break
                except (FatalListrakError, SkippableListrakError) as exc:
                    # A refused request was not applied; an ambiguous one (retriable, answer
                    # lost) stays ``posting`` for a later run to look up by name.
                    _refused_part(ctx, import_row_id, exc)
                    raise
                checkpoint("posted")
                _mark_submitted(ctx, run, import_row_id, part, listrak_id)
                poller.watch(import_row_id, run)
            else:
                return


def _spill(ctx: RunContext) -> Path | None:
    """Where a large read of the changes is staged: the planner's configured spill directory,
    else the system's temporary directory."""
    configured = ctx.config.settings.planner.temp_directory
    if configured is None:
        return None
    spill = ctx.config.base_dir / configured.expanduser()
    spill.mkdir(parents=True, exist_ok=True)
    return spill


def _route(ctx: RunContext, run: AudienceRun) -> SubmitRoute:
    audience = run.settings
    assert audience.profile_field_id is not None
    settings = ctx.config.settings.listrak
    if run.is_trait:
        # Traits always go by list import: clearing a value takes an Overwrite import with a
        # blank cell, and the JSON route documents no empty value.
        return ListImportRoute(
            ctx.client,
            settings,
            installation_id=ctx.installation_id,
            run_id=ctx.run_id,
            audience_key=audience.key,
            list_id=audience.list_id,
            field_id=audience.profile_field_id,
            blank_clears=True,
        )
    route_class = (
        FieldValuesRoute if settings.submit_via == "segmentation_field_api" else ListImportRoute
    )
    return route_class(
        ctx.client,
        settings,
        installation_id=ctx.installation_id,
        run_id=ctx.run_id,
        audience_key=audience.key,
        list_id=audience.list_id,
        field_id=audience.profile_field_id,
    )


def _check_list_exists(ctx: RunContext, run: AudienceRun) -> None:
    """Tell a missing list (a real 404) from a body over the size limit (also a 404)."""
    list_id = run.settings.list_id
    try:
        ctx.client.get_list(list_id)
    except FatalListrakError as exc:
        if exc.status == 404:
            raise FatalListrakError(
                f"Listrak has no list {list_id} (or this integration cannot see it)",
                status=404,
                code=exc.code,
            ) from None
        raise


def _record_part(ctx: RunContext, run: AudienceRun, part: Part, route: str) -> int:
    audience = run.settings
    assert audience.profile_field_id is not None  # planning fails an audience without one
    with ctx.engine.begin() as conn:
        import_row_id = ledger.record_import(
            conn,
            run_id=ctx.run_id,
            audience_id=run.audience_id,
            list_id=audience.list_id,
            field_id=audience.profile_field_id,
            part=part.number,
            route=route,
            file_name=part.file_name,
            first_email=part.first_email,
            last_email=part.last_email,
            row_count=part.row_count,
            byte_count=part.byte_count,
        )
        changes.assign_to_import(
            conn,
            run_id=ctx.run_id,
            audience_id=run.audience_id,
            import_row_id=import_row_id,
            first_email=part.first_email,
            last_email=part.last_email,
        )
    return import_row_id


def _refused_part(ctx: RunContext, import_row_id: int, exc: ListrakError) -> None:
    reason = f"refused by Listrak: {exc}"
    with ctx.engine.begin() as conn:
        changes.fail_import(conn, import_row_id, reason)
        ledger.update_import(conn, import_row_id, status=ImportStatus.FAILED, error=reason[:1000])


def _release_part(ctx: RunContext, import_row_id: int, reason: str) -> None:
    with ctx.engine.begin() as conn:
        changes.release_import(conn, import_row_id)
        ledger.update_import(conn, import_row_id, status=ImportStatus.FAILED, error=reason)


def _mark_submitted(
    ctx: RunContext, run: AudienceRun, import_row_id: int, part: Part, listrak_id: str
) -> None:
    with ctx.engine.begin() as conn:
        ledger.update_import(
            conn,
            import_row_id,
            status=ImportStatus.SUBMITTED,
            listrak_import_id=listrak_id,
            submitted_at=utcnow(),
        )
    logger.info(
        "import.submitted",
        extra={
            "audience": run.key,
            "file_name": part.file_name,
            "rows": part.row_count,
            "listrak_import_id": listrak_id,
        },
    )
