"""Failure alerts to webhooks (Slack/Mattermost or versioned JSON); see :mod:`.notify`."""

from audience_sync.alerts.notify import (
    after_abandon,
    after_run,
    after_verify,
    enabled,
    record_checks,
    send_test,
)

__all__ = ["after_abandon", "after_run", "after_verify", "enabled", "record_checks", "send_test"]
