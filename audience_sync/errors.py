"""One exception hierarchy, named by what the caller should do.

Every error raised by audience_sync derives from :class:`AudienceSyncError`, and its class
carries the decision the pipeline takes; the pipeline catches by class only:

- :class:`StopRunError`: nothing more is sent for any audience (credentials refused, the beta
  route unavailable, the run lock lost, the state database unusable);
- :class:`SourceError` and every other :class:`ListrakError`: this audience fails, with the
  message recorded on it, and the other audiences go on;
- :class:`RetriableListrakError`: the same request may succeed later (retried by the client;
  when retries run out, the audience fails and the next run plans its changes again);
- :class:`SkippableListrakError`: one contact cannot be updated; carry on with the others.

Messages never contain secrets, tokens or raw emails.
"""

from __future__ import annotations


class AudienceSyncError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code = 1


class CommandFailedError(AudienceSyncError):
    """A command did its work and reports a failure (a run failed, drift was found, ...)."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ConfigError(AudienceSyncError):
    """The configuration file or environment is invalid; the message names the key."""

    exit_code = 2


class TraitsNotSyncedError(ConfigError):
    """``[[traits]]`` is configured for a command that does not handle computed traits yet
    (``verify``, ``run --reconcile``).

    Refused loudly (exit 2) rather than ignored: a command that skipped the traits would look
    complete while their Listrak fields went unchecked.
    """


class StopRunError(AudienceSyncError):
    """Ends the whole run: no audience sends anything more (open imports stay open)."""


class SourceError(AudienceSyncError):
    """An audience's member source could not be read completely; that audience fails."""


class PlanningError(AudienceSyncError):
    """The embedded planner could not plan an audience (memory, spill disk); that audience
    fails, the others go on."""


class StateError(StopRunError):
    """The state database is unusable (locked, full, read-only, unreachable, out of date).

    Its message is one line naming the database (password hidden) and the cause, never SQL or
    bound parameters (see :mod:`audience_sync.state.db_errors`); ``cause`` is the cause alone.
    """

    def __init__(self, message: str, *, cause: str | None = None) -> None:
        super().__init__(message)
        self.cause = cause or message


class MissingStateError(StateError):
    """A command that only reads the state database found no database file there."""

    exit_code = 2


class GuardError(AudienceSyncError):
    """A safety guard refused a run before anything was sent."""

    exit_code = 3


class RunInProgressError(AudienceSyncError):
    """Another run holds the run lock."""

    exit_code = 4


class LockLostError(StopRunError):
    """This run no longer holds the run lock (taken over, or its lease could not be kept);
    it stops before sending anything more."""


class DemoWorkdirError(AudienceSyncError):
    """The demo would overwrite files in a directory it did not create."""

    exit_code = 2


class NoSuchOpenImportError(AudienceSyncError):
    """``imports abandon`` named an import that is not open."""

    exit_code = 2


class NotInLedgerError(AudienceSyncError, LookupError):
    """The run or audience asked about is not in the state database."""


class ListrakError(AudienceSyncError):
    """Anything Listrak (or the transport to it) answered that was not a success.

    ``status`` is the HTTP status (``None`` for transport errors) and ``code`` Listrak's
    ``error`` code from the error envelope, the value to branch on. ``may_have_been_applied``:
    the request reached Listrak and its effect is unknown (a lost answer, a 5xx to a write);
    False when it was never sent or was refused.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        may_have_been_applied: bool = False,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.may_have_been_applied = may_have_been_applied


class RetriableListrakError(ListrakError):
    """429, 5xx and transport failures: the same request may succeed later."""


class AnswerLostError(RetriableListrakError):
    """A request was sent but its answer never arrived: it may or may not have been applied."""

    def __init__(self, message: str) -> None:
        super().__init__(message, may_have_been_applied=True)


class ImportStillRunningError(RetriableListrakError):
    """Listrak has not finished an import within ``import_timeout``; a later run collects it."""


class FatalListrakError(ListrakError):
    """4xx answers that retrying cannot fix (bad request, unknown resource, ...): the audience
    the request was for fails."""


class AuthenticationError(FatalListrakError, StopRunError):
    """Token refused or a second 401 after a refresh: no audience can be sent."""


class CredentialsRefusedError(AuthenticationError):
    """The token endpoint refused the client id or secret: a configuration problem."""

    exit_code = 2


class BetaRouteUnavailableError(FatalListrakError, StopRunError):
    """The integration is not enrolled in a beta route: no audience can be sent."""


class PayloadTooLargeError(FatalListrakError):
    """Listrak answers 404 when an undisclosed body-size limit is exceeded."""


class AlertDeliveryError(AudienceSyncError):
    """An alert could not be delivered to one receiver; recorded, never raised to the run."""


class RetriableDeliveryError(AlertDeliveryError):
    """5xx, 429 or a transport failure: delivery is tried again while time is left."""


class FatalDeliveryError(AlertDeliveryError):
    """Any other answer, or no time left: the receiver is given up."""


class SkippableListrakError(ListrakError):
    """The request was about one contact that Listrak will not update; skip it."""
