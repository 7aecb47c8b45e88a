"""``Ledger``: the state database's runs, changes and memberships as pandas DataFrames."""

from __future__ import annotations

import json
import os
from types import TracebackType
from typing import Any, Literal

import pandas as pd
from matplotlib.axes import Axes
from sqlalchemy import Select
from sqlalchemy.engine import Engine

from audience_sync.analysis import locate, plots
from audience_sync.errors import NotInLedgerError
from audience_sync.normalize import normalize_email
from audience_sync.state import ledger_queries
from audience_sync.state.db import make_engine
from audience_sync.state.migrate import ensure_current
from audience_sync.state.statuses import AudienceKind, ChangeStatus

Run = int | Literal["last"] | None
# Run ids that outer joins may leave empty: kept integers (pandas' nullable Int64), not floats.
NULLABLE_RUN_COLUMNS = frozenset({"parked_by_run", "confirmed_run_id"})


def open(target: str | os.PathLike[str]) -> Ledger:
    """Open the state database named by a config path, a database URL or a SQLite file path.

    >>> from audience_sync import analysis
    >>> ledger = analysis.open("demo/audience-sync.db")  # doctest: +SKIP
    >>> ledger.changes("last")  # doctest: +SKIP

    Raises :class:`~audience_sync.errors.StateError` when there is no database there or its
    schema is not at the newest migration.
    """
    url, schema = locate.state_database(target)
    engine = make_engine(url, schema=schema)
    try:
        ensure_current(engine)
    except Exception:
        engine.dispose()
        raise
    return Ledger(engine)


class Ledger:
    """Read-only questions about the state database; every answer is a DataFrame or a plot.

    Runs are named by id, or ``"last"`` for the newest run; ``None`` means every run.
    Audiences are named by their key. Timestamps are timezone-aware UTC.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __repr__(self) -> str:
        return f"Ledger({self.engine.url.render_as_string(hide_password=True)})"

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    # --- runs and changes -----------------------------------------------------------------

    def runs(self) -> pd.DataFrame:
        """One row per run, oldest first: trigger, status, timestamps and change counts.

        >>> ledger.runs()[["run_id", "trigger", "status", "confirmed", "skipped"]]  # doctest: +SKIP
           run_id trigger     status  confirmed  skipped
        0       1  manual  succeeded       2655       95
        1       2  manual  succeeded        390        5
        """
        return self._read(ledger_queries.runs())

    def last_run(self) -> int:
        """The id of the newest run."""
        with self.engine.connect() as conn:
            run_id = conn.execute(ledger_queries.last_run_id()).scalar()
        if run_id is None:
            raise NotInLedgerError("the state database has no runs yet")
        return int(run_id)

    def changes(
        self,
        run: Run = None,
        *,
        audience: str | None = None,
        action: Literal["on", "off"] | None = None,
        status: str | None = None,
    ) -> pd.DataFrame:
        """Every change planned for a run (or all runs) and what became of it.

        ``status`` is one of ``planned``, ``submitted``, ``confirmed``, ``skipped``,
        ``failed``, ``aborted``; ``reason`` holds Listrak's skip reason or the failure's cause;
        ``import_file`` names the Listrak import that carried the change.

        >>> ledger.changes("last", audience="vip_customer", action="off")  # doctest: +SKIP
           run_id      audience                       email action     status reason ...
        0       2  vip_customer  customer00042@example.com    off  confirmed   None ...
        """
        return self._read(
            ledger_queries.changes(
                run_id=self._run_id(run),
                audience=self._audience(audience),
                action=action,
                status=status,
            )
        )

    def change_counts(self, run: Run = None, *, audience: str | None = None) -> pd.DataFrame:
        """How many changes per run, audience, action, status and reason (counted in SQL).

        >>> ledger.change_counts("last").query("status == 'confirmed'")  # doctest: +SKIP
        """
        return self._read(
            ledger_queries.change_counts(
                run_id=self._run_id(run), audience=self._audience(audience)
            )
        )

    # --- audiences ------------------------------------------------------------------------

    def audiences(self) -> list[str]:
        """The audience keys the state database knows (computed traits: :meth:`traits`)."""
        with self.engine.connect() as conn:
            return list(conn.execute(ledger_queries.audience_keys()).scalars())

    def traits(self) -> list[str]:
        """The computed trait keys the state database knows."""
        with self.engine.connect() as conn:
            return list(conn.execute(ledger_queries.audience_keys(AudienceKind.TRAIT)).scalars())

    def trait_values(self, trait: str, as_of_run: Run = None) -> pd.DataFrame:
        """A computed trait's values as Listrak had confirmed them after run ``as_of_run``
        (columns email, value, confirmed_run_id), rebuilt from the ledger; a cleared value is
        absent. Without ``as_of_run``, the current values.

        >>> ledger.trait_values("tier")["value"].value_counts()  # doctest: +SKIP
        """
        known = self.traits()
        if trait not in known:
            raise NotInLedgerError(
                f"no trait {trait!r} in the state database; known: {', '.join(known)}"
            )
        return self._read(
            ledger_queries.trait_values(trait=trait, as_of_run=self._run_id(as_of_run))
        )

    def membership(self, audience: str, as_of_run: Run = None) -> pd.DataFrame:
        """The audience's members as Listrak had confirmed them after run ``as_of_run``.

        Rebuilt from the ledger: a contact is a member when its latest confirmed change up to
        that run turned it ``on``. ``confirmed_run_id`` is the run of that change. Without
        ``as_of_run``, the current membership.

        >>> first = ledger.membership("vip_customer", as_of_run=1)  # doctest: +SKIP
        >>> now = ledger.membership("vip_customer")  # doctest: +SKIP
        >>> set(first.email) - set(now.email)  # who left since run 1  # doctest: +SKIP
        """
        return self._read(
            ledger_queries.membership(
                audience=self._required_audience(audience), as_of_run=self._run_id(as_of_run)
            )
        )

    def audience_sizes(self) -> pd.DataFrame:
        """Confirmed members per audience after every run (columns run_id, audience, members).

        >>> ledger.audience_sizes().pivot(index="run_id", columns="audience",
        ...                              values="members")  # doctest: +SKIP
        """
        return self._read(ledger_queries.audience_sizes())

    # --- skips and imports ----------------------------------------------------------------

    def skipped(
        self, run: Run = None, *, audience: str | None = None, reason: str | None = None
    ) -> pd.DataFrame:
        """Contacts Listrak skipped, with its reason, and whether they are still parked.

        A parked contact is not re-sent until its desired value changes, a full sync, or the
        retry interval has passed; ``parked_by_run`` is the run that parked it.

        >>> ledger.skipped("last", reason="NotSubscribed")  # doctest: +SKIP
        """
        frame = self._read(
            ledger_queries.skipped(
                run_id=self._run_id(run), audience=self._audience(audience), reason=reason
            )
        )
        frame["still_parked"] = frame["parked_by_run"].notna()
        return frame

    def skip_reasons(self, run: Run = None) -> pd.DataFrame:
        """Skipped contacts counted per run, audience and reason.

        >>> ledger.skip_reasons()  # doctest: +SKIP
           run_id            audience  action     reason  contacts
        0       1  first_time_shopper      on  NotOnList         5
        """
        counts = self.change_counts(run)
        skipped = counts[counts["status"] == ChangeStatus.SKIPPED]
        return skipped.drop(columns="status").reset_index(drop=True)

    def imports(self, run: Run = None, *, audience: str | None = None) -> pd.DataFrame:
        """Every Listrak import: file, size, Listrak's status and summary, and the outcome of
        the changes it carried (``confirmed``, ``skipped``, ``failed`` contacts).

        >>> ledger.imports("last")[["audience", "rows", "status", "confirmed"]]  # doctest: +SKIP
        """
        frame = self._read(
            ledger_queries.imports(run_id=self._run_id(run), audience=self._audience(audience))
        )
        frame["summary"] = frame["summary"].map(_json_or_none)
        return frame

    # --- one contact ----------------------------------------------------------------------

    def contact_history(self, email: str, *, audience: str | None = None) -> pd.DataFrame:
        """Every change ever planned for one contact, oldest first (the email is normalised).

        >>> ledger.contact_history("Customer00042@Example.com")  # doctest: +SKIP
        """
        return self._read(
            ledger_queries.contact_history(
                email=_canonical(email), audience=self._audience(audience)
            )
        )

    def contact_state(self, email: str) -> pd.DataFrame:
        """Per audience: the value Listrak last confirmed for the contact and any parked skip.

        >>> ledger.contact_state("not-on-list0@example.com")  # doctest: +SKIP
        """
        return self._read(ledger_queries.contact_state(email=_canonical(email)))

    # --- plots ----------------------------------------------------------------------------

    def plot_changes(self, audience: str | None = None, *, ax: Axes | None = None) -> Axes:
        """Bars per run: contacts Listrak confirmed turned on (up) and turned off (down).

        >>> ledger.plot_changes()  # doctest: +SKIP
        >>> ledger.plot_changes("vip_customer")  # doctest: +SKIP
        """
        per_run = plots.turned_on_off(self.change_counts(audience=audience))
        per_run = per_run.reindex(self.runs()["run_id"], fill_value=0)
        title = f"Changes per run: {audience or 'all audiences'}"
        return plots.plot_changes(per_run, title=title, ax=ax)

    def plot_audience_size(self, *, ax: Axes | None = None) -> Axes:
        """One line per audience: members confirmed after each run.

        >>> ledger.plot_audience_size()  # doctest: +SKIP
        """
        return plots.plot_audience_size(self.audience_sizes(), ax=ax)

    # --- plumbing -------------------------------------------------------------------------

    def _read(self, query: Select[Any]) -> pd.DataFrame:
        with self.engine.connect() as conn:
            frame = pd.read_sql(query, conn)
        for column in frame.columns:
            name = str(column)
            if name.endswith("_at"):
                frame[column] = pd.to_datetime(frame[column], utc=True)
            elif name in NULLABLE_RUN_COLUMNS:
                frame[column] = pd.to_numeric(frame[column]).astype("Int64")
        return frame

    def _run_id(self, run: Run) -> int | None:
        if run is None:
            return None
        if run == "last":
            return self.last_run()
        if isinstance(run, bool) or not isinstance(run, int):
            raise TypeError(f"run must be a run id, 'last' or None, not {run!r}")
        with self.engine.connect() as conn:
            if conn.execute(ledger_queries.run_exists(run)).first() is None:
                raise NotInLedgerError(f"there is no run {run} in the state database")
        return run

    def _audience(self, audience: str | None) -> str | None:
        return None if audience is None else self._required_audience(audience)

    def _required_audience(self, audience: str) -> str:
        known = self.audiences() + self.traits()  # a trait's changes are read the same way
        if audience not in known:
            raise NotInLedgerError(
                f"no audience {audience!r} in the state database; known: {', '.join(known)}"
            )
        return audience


def _canonical(email: str) -> str:
    canonical, _reason = normalize_email(email)
    return canonical or email


def _json_or_none(text: object) -> object:
    return json.loads(text) if isinstance(text, str) else None
