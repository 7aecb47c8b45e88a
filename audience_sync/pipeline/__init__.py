"""One sync run: each audience is its own unit of work through plan, submit, await and
confirm, coordinated by :class:`SyncJob` (see :mod:`.job`)."""

from audience_sync.pipeline.context import AudienceRun
from audience_sync.pipeline.job import RunOutcome, SyncJob

__all__ = ["AudienceRun", "RunOutcome", "SyncJob"]
