"""`audience-sync setup` against the sandbox: create, verify, and write ids back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from audience_sync.cli import main
from audience_sync.config import load_config
from audience_sync.sandbox import SandboxServer
from tests.harness import CLIENT_ID, CLIENT_SECRET, LIST_ID

ENV = {"LISTRAK_CLIENT_ID": CLIENT_ID, "LISTRAK_CLIENT_SECRET": CLIENT_SECRET}


def config_file(tmp_path: Path, listrak_account: SandboxServer, audiences: str) -> Path:
    path = tmp_path / "audience-sync.toml"
    path.write_text(
        f"""# production config: keep this comment
[state]
url = "sqlite:///state.db"

[listrak]
api_url = "{listrak_account.api_url}"
auth_url = "{listrak_account.auth_url}"
{audiences}""",
        encoding="utf-8",
    )
    return path


AUDIENCE = """
[[audiences]]
key = "{key}"
list_id = {list_id}{field}
source = {{ kind = "csv", path = "m.csv" }}
"""


def audience(key: str, list_id: int = LIST_ID, field_id: int | None = None) -> str:
    field = f"\nprofile_field_id = {field_id}" if field_id else ""
    return AUDIENCE.format(key=key, list_id=list_id, field=field)


def test_setup_creates_checkbox_fields_and_write_round_trips(
    tmp_path: Path, listrak_account: SandboxServer
) -> None:
    path = config_file(tmp_path, listrak_account, audience("first_time_shopper") + audience("vip"))
    result = CliRunner().invoke(main, ["--config", str(path), "setup", "--write"], env=ENV)
    assert result.exit_code == 0, result.output
    assert "first_time_shopper: created" in result.output
    assert "wrote 2 profile_field_id value(s)" in result.output

    config = load_config(path)
    ids = {a.key: a.profile_field_id for a in config.settings.audiences}
    assert all(ids.values())
    assert path.read_text().startswith("# production config: keep this comment")
    for key, field_id in ids.items():
        assert field_id is not None
        field_groups = {g.name for g in listrak_account.world.groups(LIST_ID)}
        assert "Engage Audiences" in field_groups
        (field,) = [
            f
            for g in listrak_account.world.groups(LIST_ID)
            for f in listrak_account.world.fields(LIST_ID, g.group_id)
            if f.field_id == field_id
        ]
        assert (field.name, field.data_type) == (key, "CheckBox")

    again = CliRunner().invoke(main, ["--config", str(path), "setup"], env=ENV)
    assert again.exit_code == 0, again.output
    assert again.output.count(": verified") == 2


def test_setup_finds_an_existing_field_instead_of_duplicating(
    tmp_path: Path, listrak_account: SandboxServer
) -> None:
    field_id, _ = listrak_account.world.add_field(LIST_ID, "vip")
    path = config_file(tmp_path, listrak_account, audience("vip"))
    result = CliRunner().invoke(main, ["--config", str(path), "setup"], env=ENV)
    assert result.exit_code == 0, result.output
    assert f"vip: found (list {LIST_ID}, profile field {field_id})" in result.output


@pytest.mark.parametrize(
    ("make_audience", "problem"),
    [
        (lambda sb: audience("vip", list_id=999, field_id=5), "Listrak has no list 999"),
        (
            lambda sb: audience("vip", field_id=424242),
            f"list {LIST_ID} has no profile field 424242",
        ),
        (
            lambda sb: audience(
                "vip", field_id=sb.world.add_field(LIST_ID, "notes", data_type="Text")[0]
            ),
            "is a Text, not a CheckBox",
        ),
    ],
)
def test_setup_verification_failures_name_the_audience(
    tmp_path: Path,
    listrak_account: SandboxServer,
    make_audience: Callable[[SandboxServer], str],
    problem: str,
) -> None:
    path = config_file(tmp_path, listrak_account, make_audience(listrak_account))
    result = CliRunner().invoke(main, ["--config", str(path), "setup"], env=ENV)
    assert result.exit_code == 1
    assert "vip: FAILED:" in result.output
    assert problem in result.output


TRAIT = """
[[traits]]
key = "{key}"
list_id = {list_id}{more}
source = {{ kind = "csv", path = "t.csv", value_column = "value" }}
"""


def trait(key: str, more: str = "", list_id: int = LIST_ID) -> str:
    return TRAIT.format(key=key, list_id=list_id, more=more)


def _field(sandbox: SandboxServer, field_id: int) -> tuple[str, str, str, int]:
    world = sandbox.world
    ((group, field),) = [
        (g, f)
        for g in world.groups(LIST_ID)
        for f in world.fields(LIST_ID, g.group_id)
        if f.field_id == field_id
    ]
    return group.name, field.name, field.data_type, field.max_length


def test_setup_creates_typed_trait_fields_and_writes_their_ids(
    tmp_path: Path, listrak_account: SandboxServer
) -> None:
    traits = (
        trait("lifetime_value", '\ndata_type = "Numeric"')
        + trait("favorite_category", '\ndata_type = "Text"\nmax_length = 40')
        + trait("last_order_date", '\ndata_type = "Date"')
    )
    path = config_file(tmp_path, listrak_account, audience("vip") + traits)
    result = CliRunner().invoke(main, ["--config", str(path), "setup", "--write"], env=ENV)
    assert result.exit_code == 0, result.output
    assert "wrote 4 profile_field_id value(s)" in result.output
    assert "lifetime_value: created (list" in result.output
    assert result.output.count(", Numeric)") == 1

    config = load_config(path)
    ids = {t.key: t.profile_field_id for t in config.settings.traits}
    assert path.read_text().startswith("# production config: keep this comment")
    fields = {}
    for key, field_id in ids.items():
        assert field_id is not None
        fields[key] = _field(listrak_account, field_id)
    assert fields == {
        "lifetime_value": ("Engage Traits", "lifetime_value", "Numeric", 50),
        "favorite_category": ("Engage Traits", "favorite_category", "Text", 40),
        "last_order_date": ("Engage Traits", "last_order_date", "Date", 20),
    }

    again = CliRunner().invoke(main, ["--config", str(path), "setup"], env=ENV)
    assert again.exit_code == 0, again.output
    assert again.output.count(": verified") == 4
    assert "favorite_category: verified" in again.output


def test_setup_reads_an_existing_trait_field_and_its_group_is_configurable(
    tmp_path: Path, listrak_account: SandboxServer
) -> None:
    world = listrak_account.world
    tier_id, _ = world.add_field(
        LIST_ID, "tier", data_type="RadioButton", max_length=12, choices=["gold", "silver"]
    )
    world.add_field(LIST_ID, "spend", data_type="Numeric", group_name="Scores")
    traits = trait(
        "tier", f'\nprofile_field_id = {tier_id}\ndata_type = "RadioButton"\nchoices = ["gold"]'
    ) + trait("spend", '\ndata_type = "Numeric"')
    path = config_file(
        tmp_path,
        listrak_account,
        'trait_field_group_name = "Scores"\n' + audience("vip") + traits,
    )
    result = CliRunner().invoke(main, ["--config", str(path), "setup"], env=ENV)
    assert result.exit_code == 0, result.output
    assert f"tier: verified (list {LIST_ID}, profile field {tier_id}, RadioButton)" in (
        result.output
    )
    assert "spend: found" in result.output


@pytest.mark.parametrize(
    ("make_trait", "problem"),
    [
        (lambda sb: trait("ltv", "\nprofile_field_id = 424242"), "has no profile field 424242"),
        (
            lambda sb: trait(
                "ltv",
                "\nprofile_field_id = "
                f"{sb.world.add_field(LIST_ID, 'block', data_type='ContentBlock')[0]}",
            ),
            "is a ContentBlock; a trait needs one of",
        ),
        (
            lambda sb: trait(
                "ltv",
                f"\nprofile_field_id = {sb.world.add_field(LIST_ID, 'n', data_type='Text')[0]}"
                '\ndata_type = "Numeric"',
            ),
            "is a Text, not a Numeric",
        ),
        (lambda sb: trait("ltv", '\ndata_type = "Date"', list_id=999), "Listrak has no list 999"),
    ],
)
def test_setup_trait_failures_name_the_trait(
    tmp_path: Path,
    listrak_account: SandboxServer,
    make_trait: Callable[[SandboxServer], str],
    problem: str,
) -> None:
    path = config_file(tmp_path, listrak_account, audience("vip") + make_trait(listrak_account))
    result = CliRunner().invoke(main, ["--config", str(path), "setup"], env=ENV)
    assert result.exit_code == 1
    assert "ltv: FAILED:" in result.output
    assert problem in result.output
