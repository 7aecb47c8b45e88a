"""Analysing runs in notebooks: the state database as pandas DataFrames and matplotlib plots.

>>> from audience_sync import analysis
>>> ledger = analysis.open("demo/audience-sync.db")  # doctest: +SKIP
>>> ledger.changes("last")  # doctest: +SKIP

``open`` takes a config path (its ``[state] url``), a SQLAlchemy URL or a SQLite file path.
The notebooks in ``notebooks/`` read the database named by ``$AUDIENCE_SYNC_DB``
(:data:`DB_ENV_VAR`), defaulting to the one ``make demo`` leaves in ``demo/``.
"""

from audience_sync.analysis.locate import DB_ENV_VAR
from audience_sync.analysis.reader import Ledger, open
from audience_sync.errors import NotInLedgerError

__all__ = ["DB_ENV_VAR", "Ledger", "NotInLedgerError", "open"]
