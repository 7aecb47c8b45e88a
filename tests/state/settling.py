"""Settle every planned change of a run as one import, the way the pipeline does after Listrak
answers; shared by the state tests."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.engine import Engine

from audience_sync.state import changes, confirm, ledger

ALL_EMAILS_FROM, ALL_EMAILS_TO = "", "\U0010ffff"


def settle_run(
    engine: Engine,
    *,
    run_id: int,
    audience_id: int,
    vocabulary: changes.ResultVocabulary,
    results: Iterable[tuple[str, str]] | None,
    file_name: str | None = None,
) -> confirm.ImportOutcome:
    """``results``: per-contact ``(email, result)`` answers, or None when the summary said
    every row was accepted."""
    with engine.begin() as conn:
        import_id = ledger.record_import(
            conn,
            run_id=run_id,
            audience_id=audience_id,
            list_id=1,
            field_id=2,
            part=1,
            route="list_import",
            file_name=file_name or f"f{run_id}.csv",
            first_email=ALL_EMAILS_FROM,
            last_email=ALL_EMAILS_TO,
            row_count=0,
            byte_count=0,
        )
        changes.assign_to_import(
            conn,
            run_id=run_id,
            audience_id=audience_id,
            import_row_id=import_id,
            first_email=ALL_EMAILS_FROM,
            last_email=ALL_EMAILS_TO,
        )
        if results is not None:
            confirm.stage_results(conn, import_id, results)
        return confirm.settle_import(
            conn,
            import_row_id=import_id,
            run_id=run_id,
            audience_id=audience_id,
            vocabulary=vocabulary,
            all_accepted=results is None,
        )
