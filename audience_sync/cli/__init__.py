"""The ``audience-sync`` command: a few lines over the library per command.

:mod:`.app` holds the group, its global options and the one error path; each ``*_commands``
module holds a family of commands, and :mod:`.state` what they share.
"""

from audience_sync.cli.app import main

__all__ = ["main"]
