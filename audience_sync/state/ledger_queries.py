"""The read model of the ledger: every question asked of runs, changes, imports and
memberships, as SQLAlchemy Core selects. Pure, no I/O, bound parameters only.

``status``, ``history`` and ``show`` (:mod:`audience_sync.runlog`), the run report
(:mod:`audience_sync.report`), ``imports`` (:mod:`audience_sync.open_imports`) and the analysis
API (:mod:`audience_sync.analysis`) all ask through these selects, so each fact of the ledger is
computed in one place; the callers only present the rows (text, JSON or DataFrames). Nothing
here imports pandas: the CLI uses it too.

Selects that name audiences join the audience key in, so callers never see internal audience
ids (the ``status`` counts, asked per audience, take one).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, and_, case, cast, func, or_, select, true
from sqlalchemy.sql.selectable import Subquery

from audience_sync.state.statuses import (
    OPEN_IMPORT_STATUSES,
    UNRESOLVED_CHANGE_STATUSES,
    AudienceKind,
    ChangeAction,
    ChangeStatus,
    RunTrigger,
)
from audience_sync.state.tables import (
    audiences,
    listrak_imports,
    memberships,
    parked_contacts,
    run_audiences,
    run_changes,
    sync_runs,
)


def last_run_id() -> Select[Any]:
    return select(func.max(sync_runs.c.id))


def run_exists(run_id: int) -> Select[Any]:
    return select(sync_runs.c.id).where(sync_runs.c.id == run_id)


def audience_keys(kind: AudienceKind = AudienceKind.AUDIENCE) -> Select[Any]:
    return select(audiences.c.key).where(audiences.c.kind == kind).order_by(audiences.c.key)


def trait_values(*, trait: str, as_of_run: int | None) -> Select[Any]:
    """A computed trait's values as Listrak had confirmed them after ``as_of_run``: per
    email, the latest confirmed change up to that run, when it set a value (not a clear)."""
    latest = _latest_confirmed(key=trait, as_of_run=as_of_run)
    return (
        select(latest.c.email, latest.c.value, latest.c.run_id.label("confirmed_run_id"))
        .where(latest.c.recency == 1, latest.c.action == ChangeAction.SET)
        .order_by(latest.c.email)
    )


def runs(*, newest: int | None = None, with_process: bool = False) -> Select[Any]:
    """One row per run with its change counts, oldest first; with ``newest``, only that many
    of the newest runs, newest first. ``with_process`` adds the ``host`` and ``pid`` that ran
    it (to tell a live ``running`` run from a dead one)."""
    query = select(
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
    )
    if with_process:
        query = query.add_columns(sync_runs.c.host, sync_runs.c.pid)
    if newest is not None:
        return query.order_by(sync_runs.c.id.desc()).limit(newest)
    return query.order_by(sync_runs.c.id)


def run(run_id: int) -> Select[Any]:
    """One run, as :func:`runs` has it."""
    return runs().where(sync_runs.c.id == run_id)


def run_audiences_of(run_id: int) -> Select[Any]:
    """What a run recorded per audience: its outcome and snapshot counts, by audience key."""
    return (
        select(
            audiences.c.key.label("audience"),
            run_audiences.c.status,
            run_audiences.c.snapshot_count.label("snapshot"),
            run_audiences.c.invalid_count.label("invalid"),
            run_audiences.c.unchanged_count.label("unchanged"),
            run_audiences.c.parked_count.label("parked"),
            run_audiences.c.error,
            audiences.c.kind,
        )
        .join(audiences, audiences.c.id == run_audiences.c.audience_id)
        .where(run_audiences.c.run_id == run_id)
        .order_by(audiences.c.key)
    )


def resolved_imports(*, since_run: int) -> Select[Any]:
    """Per run from ``since_run`` on: the imports of earlier runs it resolved, by outcome
    (columns ``run_id``, ``status``, ``imports``)."""
    return (
        select(
            listrak_imports.c.resolved_run_id.label("run_id"),
            listrak_imports.c.status,
            func.count().label("imports"),
        )
        .where(listrak_imports.c.resolved_run_id >= since_run)
        .group_by(listrak_imports.c.resolved_run_id, listrak_imports.c.status)
    )


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
    latest = _latest_confirmed(key=audience, as_of_run=as_of_run)
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
    """Every change ever planned for one contact, oldest first.

    Looked up through the changes' primary key once per run and audience (the ``IN`` lists),
    so the cost grows with the number of runs, not with the ledger's rows."""
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
        .where(
            run_changes.c.run_id.in_(select(sync_runs.c.id).scalar_subquery()),
            run_changes.c.audience_id.in_(select(audiences.c.id).scalar_subquery()),
            run_changes.c.email == email,
        )
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


def open_imports() -> Select[Any]:
    """Imports posted to Listrak (or about to be) and not yet resolved, oldest first."""
    return (
        select(
            listrak_imports.c.id.label("import_id"),
            audiences.c.key.label("audience"),
            listrak_imports.c.run_id,
            listrak_imports.c.file_name,
            listrak_imports.c.status,
            listrak_imports.c.created_at,
            listrak_imports.c.list_id,
            listrak_imports.c.listrak_import_id,
        )
        .join(audiences, audiences.c.id == listrak_imports.c.audience_id)
        .where(listrak_imports.c.status.in_(OPEN_IMPORT_STATUSES))
        .order_by(listrak_imports.c.id)
    )


# --- one audience now (``status``, metrics) ----------------------------------------------


def audience_id(key: str) -> Select[Any]:
    return select(audiences.c.id).where(audiences.c.key == key)


def last_run_of_audience(audience_id: int, *, finished_only: bool = False) -> Select[Any]:
    """The newest run (not a ``plan``) that took the audience up: the run's ``status`` and
    the audience's own outcome in it (``audience_status``)."""
    query = (
        select(
            sync_runs.c.id,
            sync_runs.c.trigger,
            sync_runs.c.status,
            sync_runs.c.started_at,
            sync_runs.c.finished_at,
            sync_runs.c.host,
            sync_runs.c.pid,
            run_audiences.c.status.label("audience_status"),
        )
        .join(run_audiences, run_audiences.c.run_id == sync_runs.c.id)
        .where(run_audiences.c.audience_id == audience_id, sync_runs.c.trigger != RunTrigger.PLAN)
        .order_by(sync_runs.c.id.desc())
        .limit(1)
    )
    if finished_only:
        query = query.where(sync_runs.c.finished_at.is_not(None))
    return query


def confirmed_on_count(audience_id: int) -> Select[Any]:
    """Contacts whose value Listrak last confirmed as ``on``."""
    return (
        select(func.count())
        .select_from(memberships)
        .where(memberships.c.audience_id == audience_id, memberships.c.value == ChangeAction.ON)
    )


def parked_count(audience_id: int) -> Select[Any]:
    """Contacts parked after a skip (not re-sent until something changes)."""
    return (
        select(func.count())
        .select_from(parked_contacts)
        .where(parked_contacts.c.audience_id == audience_id)
    )


def unresolved_count(run_id: int, audience_id: int) -> Select[Any]:
    """Changes of one audience in a run that Listrak has not confirmed or skipped yet."""
    return (
        select(func.count())
        .select_from(run_changes)
        .where(
            run_changes.c.run_id == run_id,
            run_changes.c.audience_id == audience_id,
            run_changes.c.status.in_(UNRESOLVED_CHANGE_STATUSES),
        )
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


def _latest_confirmed(*, key: str, as_of_run: int | None) -> Subquery:
    """Each email's confirmed changes of one audience or trait up to ``as_of_run``, the latest
    ranked ``recency = 1``."""
    latest_first = func.row_number().over(
        partition_by=run_changes.c.email, order_by=run_changes.c.run_id.desc()
    )
    confirmed = (
        select(
            run_changes.c.email,
            run_changes.c.action,
            run_changes.c.value,
            run_changes.c.run_id,
            latest_first.label("recency"),
        )
        .join(audiences, audiences.c.id == run_changes.c.audience_id)
        .where(audiences.c.key == key, run_changes.c.status == ChangeStatus.CONFIRMED)
    )
    if as_of_run is not None:
        confirmed = confirmed.where(run_changes.c.run_id <= as_of_run)
    return confirmed.subquery("latest")
