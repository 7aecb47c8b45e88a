"""Named step boundaries of a run, where the crash tests stop the process.

``checkpoint(name)`` does nothing unless a test asked for it through the environment:

* ``AUDIENCE_SYNC_KILL_AT=<name>``: the process SIGKILLs itself at that boundary, the way a
  deploy or a machine restart would stop it (no ``finally``, no rollback, no goodbye).
* ``AUDIENCE_SYNC_WAIT_AT=<name>`` with ``AUDIENCE_SYNC_WAIT_FILE=<path>``: the process waits at
  that boundary until ``path`` exists, so a test can hold a run mid-way (and its lock).

The boundaries, in run order: ``staged``, ``planned``, ``posting`` (ledger row committed, POST not
sent), ``answer_lost`` (a POST's answer was lost, before the look-up by name), ``posted`` (Listrak
answered with an import id, not yet stored), ``polling`` (the import is still running),
``finished`` (the import finished, before its contacts are confirmed).
"""

from __future__ import annotations

import os
import signal
import time

KILL_ENV = "AUDIENCE_SYNC_KILL_AT"
WAIT_ENV = "AUDIENCE_SYNC_WAIT_AT"
WAIT_FILE_ENV = "AUDIENCE_SYNC_WAIT_FILE"
WAIT_POLL_SECONDS = 0.05

NAMES = ("staged", "planned", "posting", "answer_lost", "posted", "polling", "finished")


def checkpoint(name: str) -> None:
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(WAIT_ENV) == name:
        release = os.environ.get(WAIT_FILE_ENV)
        while release and not os.path.exists(release):
            time.sleep(WAIT_POLL_SECONDS)
