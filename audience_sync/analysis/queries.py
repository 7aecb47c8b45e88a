"""The analysis API's questions as SQLAlchemy Core selects: pure, no I/O, bound parameters only.

Every select joins the audience key in, so callers never see internal audience ids.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, and_, case, cast, func, or_, select, true

from audience_sync.state.statuses import ChangeAction, ChangeStatus
from audience_sync.state.tables import (
    audiences,
    listrak_imports,
    memberships,
    parked_contacts,
    run_changes,
    sync_runs,
)


def last_run_id() -> Select[Any]:
    return select(func.max(sync_runs.c.id))


def run_exists(run_id: int) -> Select[Any]:
    return select(sync_runs.c.id).where(sync_runs.c.id == run_id)


def audience_keys() -> Select[Any]:
    return select(audiences.c.key).order_by(audiences.c.key)


def runs() -> Select[Any]:
    return select(
        sync_runs.c.id.label("run_id"),
        sync_runs.c.trigger,
        sync_runs.c.status,
        sync_runs.c.started_at,
        sync_runs.c.finished_at,
        sync_runs.c.planned_count.label("planned"),
        sync_runs.c.confirmed_count.label("confirmed"),
        sync_runs.c.skipped_count.label("skipped"),
        sync_runs.c.failed_count.label("failed"),
        sync_runs.c.error,
    ).order_by(sync_runs.c.id)


def changes(
    *,
    run_id: int | None,
    audience: str | None,
    action: str | None,
    status: str | None,
) -> Select[Any]:
    query = (
        select(
            run_changes.c.run_id,
            audiences.c.key.label("audience"),
            run_changes.c.email,
            run_changes.c.action,
            run_changes.c.status,
            run_changes.c.reason,
            listrak_imports.c.file_name.label("import_file"),
        )
        .join(audiences, audiences.c.id == run_changes.c.audience_id)
        .outerjoin(listrak_imports, listrak_imports.c.id == run_changes.c.import_id)
        .order_by(run_changes.c.run_id, audiences.c.key, run_changes.c.email)
    )
    return query.where(*_change_filters(run_id, audience, action, status))


def change_counts(*, run_id: int | None, audience: str | None) -> Select[Any]:
    """How many changes per run, audience, action, status and reason."""
    return (
        select(
            run_changes.c.run_id,
            audiences.c.key.label("audience"),
            run_changes.c.action,
            run_changes.c.status,
            run_changes.c.reason,
            func.count().label("contacts"),
        )
        .join(audiences, audiences.c.id == run_changes.c.audience_id)
        .where(*_change_filters(run_id, audience, None, None))
        .group_by(
            run_changes.c.run_id,
            audiences.c.key,
            run_changes.c.action,
            run_changes.c.status,
            run_changes.c.reason,
        )
        .order_by(
            run_changes.c.run_id,
            audiences.c.key,
            run_changes.c.action,
            run_changes.c.status,
            run_changes.c.reason,
        )
    )


def membership(*, audience: str, as_of_run: int | None) -> Select[Any]:
    """Emails whose latest confirmed change up to ``as_of_run`` turned them ``on``."""
    latest_first = func.row_number().over(
        partition_by=run_changes.c.email, order_by=run_changes.c.run_id.desc()
    )
    confirmed = (
        select(
            run_changes.c.email,
            run_changes.c.action,
            run_changes.c.run_id,
            latest_first.label("recency"),
        )
        .join(audiences, audiences.c.id == run_changes.c.audience_id)
        .where(audiences.c.key == audience, run_changes.c.status == ChangeStatus.CONFIRMED)
    )
    if as_of_run is not None:
        confirmed = confirmed.where(run_changes.c.run_id <= as_of_run)
    latest = confirmed.subquery("latest")
    return (
        select(latest.c.email, latest.c.run_id.label("confirmed_run_id"))
        .where(latest.c.recency == 1, latest.c.action == ChangeAction.ON)
        .order_by(latest.c.email)
    )


def audience_sizes() -> Select[Any]:
    """Members per audience after every run, from the confirmed changes.

    A confirmed change counts only when it flips the contact's previous confirmed value, so a
    full sync re-sending ``on`` to existing members leaves the size alone.
    """
    previous = func.lag(run_changes.c.action).over(
        partition_by=(run_changes.c.audience_id, run_changes.c.email),
        order_by=run_changes.c.run_id,
    )
    confirmed = (
        select(
            run_changes.c.run_id,
            run_changes.c.audience_id,
            run_changes.c.action,
            previous.label("previous"),
        )
        .where(run_changes.c.status == ChangeStatus.CONFIRMED)
        .subquery("confirmed")
    )
    was = confirmed.c.previous
    delta = case(
        (
            and_(
                confirmed.c.action == ChangeAction.ON,
                or_(was.is_(None), was == ChangeAction.OFF),
            ),
            1,
        ),
        (and_(confirmed.c.action == ChangeAction.OFF, was == ChangeAction.ON), -1),
        else_=0,
    )
    deltas = (
        select(confirmed.c.run_id, confirmed.c.audience_id, func.sum(delta).label("delta"))
        .group_by(confirmed.c.run_id, confirmed.c.audience_id)
        .subquery("deltas")
    )
    size = func.sum(func.coalesce(deltas.c.delta, 0)).over(
        partition_by=audiences.c.id, order_by=sync_runs.c.id
    )
    return (
        select(
            sync_runs.c.id.label("run_id"),
            sync_runs.c.started_at,
            audiences.c.key.label("audience"),
            cast(size, BigInteger).label("members"),
        )
        .select_from(sync_runs)
        .join(audiences, true())
        .outerjoin(
            deltas,
            and_(deltas.c.run_id == sync_runs.c.id, deltas.c.audience_id == audiences.c.id),
        )
        .order_by(audiences.c.key, sync_runs.c.id)
    )


def skipped(*, run_id: int | None, audience: str | None, reason: str | None) -> Select[Any]:
    query = (
        select(
            run_changes.c.run_id,
            audiences.c.key.label("audience"),
            run_changes.c.email,
            run_changes.c.action,
            run_changes.c.reason,
            parked_contacts.c.run_id.label("parked_by_run"),
        )
        .join(audiences, audiences.c.id == run_changes.c.audience_id)
        .outerjoin(
            parked_contacts,
            and_(
                parked_contacts.c.audience_id == run_changes.c.audience_id,
                parked_contacts.c.email == run_changes.c.email,
            ),
        )
        .where(*_change_filters(run_id, audience, None, ChangeStatus.SKIPPED))
        .order_by(run_changes.c.run_id, audiences.c.key, run_changes.c.email)
    )
    if reason is not None:
        query = query.where(run_changes.c.reason == reason)
    return query


def imports(*, run_id: int | None, audience: str | None) -> Select[Any]:
    """Every Listrak import with what became of the changes it carried."""
    per_import = (
        select(
            run_changes.c.import_id,
            _count_status(ChangeStatus.CONFIRMED).label("confirmed"),
            _count_status(ChangeStatus.SKIPPED).label("skipped"),
            _count_status(ChangeStatus.FAILED).label("failed"),
        )
        .where(run_changes.c.import_id.is_not(None))
        .group_by(run_changes.c.import_id)
        .subquery("outcomes")
    )
    query = (
        select(
            listrak_imports.c.id.label("import_id"),
            listrak_imports.c.run_id,
            audiences.c.key.label("audience"),
            listrak_imports.c.part,
            listrak_imports.c.route,
            listrak_imports.c.file_name,
            listrak_imports.c.row_count.label("rows"),
            listrak_imports.c.byte_count.label("bytes"),
            listrak_imports.c.status,
            listrak_imports.c.listrak_import_id,
            listrak_imports.c.listrak_status,
            func.coalesce(per_import.c.confirmed, 0).label("confirmed"),
            func.coalesce(per_import.c.skipped, 0).label("skipped"),
            func.coalesce(per_import.c.failed, 0).label("failed"),
            listrak_imports.c.error,
            listrak_imports.c.summary,
            listrak_imports.c.created_at,
            listrak_imports.c.submitted_at,
            listrak_imports.c.finished_at,
        )
        .join(audiences, audiences.c.id == listrak_imports.c.audience_id)
        .outerjoin(per_import, per_import.c.import_id == listrak_imports.c.id)
        .order_by(listrak_imports.c.run_id, audiences.c.key, listrak_imports.c.part)
    )
    if run_id is not None:
        query = query.where(listrak_imports.c.run_id == run_id)
    if audience is not None:
        query = query.where(audiences.c.key == audience)
    return query


def contact_history(*, email: str, audience: str | None) -> Select[Any]:
    """Every change ever planned for one contact, oldest first."""
    query = (
        select(
            run_changes.c.run_id,
            sync_runs.c.started_at,
            audiences.c.key.label("audience"),
            run_changes.c.action,
            run_changes.c.status,
            run_changes.c.reason,
        )
        .join(audiences, audiences.c.id == run_changes.c.audience_id)
        .join(sync_runs, sync_runs.c.id == run_changes.c.run_id)
        .where(run_changes.c.email == email)
        .order_by(run_changes.c.run_id, audiences.c.key)
    )
    if audience is not None:
        query = query.where(audiences.c.key == audience)
    return query


def contact_state(*, email: str) -> Select[Any]:
    """Per audience: the value Listrak last confirmed for the contact, and any parked skip."""
    return (
        select(
            audiences.c.key.label("audience"),
            memberships.c.value.label("confirmed_value"),
            memberships.c.confirmed_run_id,
            parked_contacts.c.reason.label("parked_reason"),
            parked_contacts.c.run_id.label("parked_by_run"),
        )
        .select_from(audiences)
        .outerjoin(
            memberships,
            and_(memberships.c.audience_id == audiences.c.id, memberships.c.email == email),
        )
        .outerjoin(
            parked_contacts,
            and_(
                parked_contacts.c.audience_id == audiences.c.id,
                parked_contacts.c.email == email,
            ),
        )
        .order_by(audiences.c.key)
    )


def _change_filters(
    run_id: int | None, audience: str | None, action: str | None, status: str | None
) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = []
    if run_id is not None:
        filters.append(run_changes.c.run_id == run_id)
    if audience is not None:
        filters.append(audiences.c.key == audience)
    if action is not None:
        filters.append(run_changes.c.action == action)
    if status is not None:
        filters.append(run_changes.c.status == status)
    return filters


def _count_status(status: ChangeStatus) -> ColumnElement[int]:
    return func.sum(case((run_changes.c.status == status, 1), else_=0))
