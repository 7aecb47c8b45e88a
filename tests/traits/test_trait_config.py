"""``[[traits]]`` in the config: validated like audiences, sharing keys and fields with none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from audience_sync.config import load_config
from audience_sync.errors import ConfigError
from audience_sync.sources.specs import (
    CsvTraitSourceSpec,
    SegmentEventsTraitSourceSpec,
    SqlTraitSourceSpec,
)

BASE = """
[listrak]
api_url = "https://api.listrak.com/email/v1"

[[audiences]]
key = "vip"
list_id = 100
profile_field_id = 200
source = { kind = "csv", path = "vip.csv" }
"""

LTV = """
[[traits]]
key = "lifetime_value"
list_id = 100
profile_field_id = {field}
source = {{ kind = "csv", path = "ltv.csv", value_column = "ltv" }}
"""


def write(tmp_path: Path, *extra: str) -> Path:
    path = tmp_path / "audience-sync.toml"
    path.write_text(BASE + "".join(extra), encoding="utf-8")
    return path


def problems(tmp_path: Path, *extra: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, *extra))
    return str(caught.value).splitlines()[1:]


def test_a_config_without_traits_has_none(tmp_path: Path) -> None:
    assert load_config(write(tmp_path)).settings.traits == []


def test_traits_of_every_source_kind_load(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            LTV.format(field=300),
            """
[[traits]]
key = "favorite_category"
list_id = 100
data_type = "Text"
max_length = 50
clear_missing = true
guards = { max_changed_fraction = 0.5 }
source = { kind = "segment_events", path = "events/*.jsonl.gz" }

[[traits]]
key = "last_order_date"
list_id = 100
profile_field_id = 301
data_type = "Date"
source = { kind = "sql", url = "sqlite:///dw.db", query = "select email, d as value from t" }

[[traits]]
key = "tier"
list_id = 100
profile_field_id = 302
data_type = "RadioButton"
choices = ["gold", "silver"]
source = { kind = "parquet", path = "tier.parquet", value_column = "tier" }
""",
        )
    )
    ltv, category, last_order, tier = config.settings.traits
    assert isinstance(ltv.source, CsvTraitSourceSpec)
    assert ltv.source.value_column == "ltv"
    assert ltv.clear_missing is False
    assert ltv.guards.max_changed_fraction == 0.2
    assert isinstance(category.source, SegmentEventsTraitSourceSpec)
    assert category.source.trait is None
    assert category.clear_missing is True
    assert category.guards.max_changed_fraction == 0.5
    assert isinstance(last_order.source, SqlTraitSourceSpec)
    assert last_order.source.value_column == "value"
    assert tier.choices == ["gold", "silver"]
    assert config.trait("tier") is tier
    assert config.settings.listrak.date_format == "%Y-%m-%d"
    assert config.settings.listrak.trait_field_group_name == "Engage Traits"


def test_a_file_trait_needs_its_value_column(tmp_path: Path) -> None:
    trait = LTV.format(field=300).replace(', value_column = "ltv"', "")
    assert problems(tmp_path, trait) == [
        "  trait 'lifetime_value': traits[0].source.csv.value_column: required key is missing"
    ]


def test_a_trait_without_a_field_needs_a_type_setup_can_create(tmp_path: Path) -> None:
    trait = LTV.format(field=300).replace("profile_field_id = 300\n", "")
    assert problems(tmp_path, trait) == [
        "  trait 'lifetime_value': traits[0]: set profile_field_id, or data_type (Text, "
        "Numeric or Date) so that 'audience-sync setup' can create the field"
    ]


def test_radio_buttons_need_choices(tmp_path: Path) -> None:
    trait = LTV.format(field=300).replace(
        "list_id = 100", 'list_id = 100\ndata_type = "RadioButton"'
    )
    assert problems(tmp_path, trait) == [
        "  trait 'lifetime_value': traits[0]: a RadioButton trait needs its choices"
    ]


def test_keys_are_unique_across_audiences_and_traits(tmp_path: Path) -> None:
    trait = LTV.format(field=300).replace('"lifetime_value"', '"vip"')
    assert problems(tmp_path, trait) == [
        "  traits: keys must be unique across audiences and traits; repeated: vip"
    ]


def test_two_traits_on_one_field_are_refused(tmp_path: Path) -> None:
    second = LTV.format(field=300).replace('"lifetime_value"', '"ltv_copy"')
    assert problems(tmp_path, LTV.format(field=300), second) == [
        "  traits: trait 'lifetime_value' and trait 'ltv_copy' both write list 100 profile "
        "field 300; give each its own field"
    ]


@pytest.mark.parametrize("date_format", ["%H:%M", "%Y", "nonsense"])
def test_the_date_format_must_write_a_whole_date(tmp_path: Path, date_format: str) -> None:
    path = write(tmp_path)
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("[listrak]\n", f'[listrak]\ndate_format = "{date_format}"\n'),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"listrak\.date_format: expected a strftime format"):
        load_config(path)


@pytest.mark.parametrize("command", ["plan", "setup"])
def test_a_trait_and_an_audience_on_one_field_exit_2(tmp_path: Path, command: str) -> None:
    path = write(tmp_path, LTV.format(field=200))
    result = subprocess.run(
        [sys.executable, "-m", "audience_sync", "--config", str(path), command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (
        "  traits: audience 'vip' and trait 'lifetime_value' both write list 100 profile "
        "field 200; give each its own field"
    ) in result.stderr.splitlines()


def test_the_field_spec_of_a_trait_comes_from_setup_and_config(tmp_path: Path) -> None:
    from audience_sync.setup_fields import FieldSetup, trait_field_spec
    from audience_sync.traits.values import FieldSpec

    extra = """
[[traits]]
key = "tier"
list_id = 100
profile_field_id = 302
data_type = "RadioButton"
choices = ["gold", "silver"]
source = { kind = "csv", path = "tier.csv", value_column = "tier" }
"""
    path = write(tmp_path, extra)
    path.write_text(
        path.read_text().replace("[listrak]\n", '[listrak]\ndate_format = "%m/%d/%Y"\n')
    )
    config = load_config(path)
    tier = config.trait("tier")
    found = FieldSetup("tier", 100, 302, "verified", kind="trait", data_type="RadioButton")
    assert trait_field_spec(config, tier, found) == FieldSpec(
        "RadioButton", 0, ("gold", "silver"), "%m/%d/%Y"
    )
    with pytest.raises(ConfigError, match="type of its profile field is not known"):
        trait_field_spec(config, tier, FieldSetup("tier", 100, 302, "failed", "gone"))
