from __future__ import annotations

from click.testing import CliRunner

from audience_sync.sandbox.cli import sandbox_command


def test_help_lists_every_knob() -> None:
    result = CliRunner().invoke(sandbox_command, ["--help"])
    assert result.exit_code == 0
    for option in (
        "--host",
        "--port",
        "--client-id",
        "--client-secret",
        "--seed",
        "--token-lifetime",
        "--import-delay",
        "--max-body-bytes",
        "--api-paused",
        "--no-beta-route",
        "--fail-next",
        "--fail-status",
        "--drop-next-post",
    ):
        assert option in result.output
    assert sandbox_command.name == "sandbox"
