"""The configuration: a TOML file validated by pydantic, plus secrets from the environment only.

Built once (:func:`load_config`) and passed down as an explicit value. Relative paths in the file
(SQLite databases, source files) are relative to the config file's folder.
"""

from __future__ import annotations

import os
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url

from audience_sync import config_errors
from audience_sync.durations import parse_duration
from audience_sync.errors import ConfigError
from audience_sync.planner_placement import check_planner_placement
from audience_sync.sources.specs import SourceSpec, TraitSourceSpec
from audience_sync.state.lock import DEFAULT_LEASE_SECONDS
from audience_sync.state.schema import check_schema_name
from audience_sync.traits.values import DEFAULT_DATE_FORMAT, parse_date
from audience_sync.urls import check_http_url, check_state_url

DEFAULT_CONFIG_NAME = "audience-sync.toml"
CONFIG_ENV_VAR = "AUDIENCE_SYNC_CONFIG"
CLIENT_ID_ENV_VAR = config_errors.CLIENT_ID_ENV_VAR
CLIENT_SECRET_ENV_VAR = config_errors.CLIENT_SECRET_ENV_VAR

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
_DAY = 86400.0  # upper bound of the settings in seconds: larger is a typo, and overflows


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StateSettings(_Section):
    """Where the state lives: ``url``, and on PostgreSQL optionally the schema holding its tables
    (``schema``; unset: the database's default, ``public``)."""

    url: Annotated[str, AfterValidator(check_state_url)] = "sqlite:///audience-sync.db"
    # Named schema_name because pydantic's BaseModel has a ``schema`` attribute.
    schema_name: str | None = Field(default=None, alias="schema")

    @field_validator("schema_name")
    @classmethod
    def _schema_on_postgresql(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        check_schema_name(value)
        url = info.data.get("url")
        if url is not None and make_url(url).get_backend_name() != "postgresql":
            raise ValueError(
                "SQLite has no schemas: a schema applies only to a PostgreSQL state database; "
                "remove it, or use a postgresql+psycopg:// url"
            )
        return value


class Vocabulary(_Section):
    """Listrak values the published spec leaves open; see the README's "Listrak unknowns"."""

    import_success: list[str] = ["Completed", "Complete", "Finished"]
    import_failure: list[str] = ["Failed", "Error", "Cancelled"]
    contact_accepted: list[str] = ["Updated"]
    contact_skipped: list[str] = [
        "NotSubscribed",
        "NotOnList",
        "InvalidEmail",
        "Banned",
        "Suppressed",
    ]


class ListrakSettings(_Section):
    api_url: str = "https://api.listrak.com/email/v1"
    auth_url: str = "https://auth.listrak.com/OAuth2/Token"
    submit_via: Literal["list_import", "segmentation_field_api"] = "list_import"
    field_group_name: str = Field(default="Engage Audiences", min_length=1)
    trait_field_group_name: str = Field(default="Engage Traits", min_length=1)
    date_format: str = Field(default=DEFAULT_DATE_FORMAT, min_length=2)
    timeout_seconds: float = Field(default=120.0, gt=0, le=_DAY)
    connect_timeout_seconds: float = Field(default=10.0, gt=0, le=_DAY)
    retry_attempts: int = Field(default=6, ge=1)
    retry_timeout_seconds: float = Field(default=300.0, gt=0, le=_DAY)
    retry_initial_wait_seconds: float = Field(default=0.5, ge=0, le=_DAY)
    retry_max_wait_seconds: float = Field(default=30.0, ge=0, le=_DAY)
    poll_interval_seconds: float = Field(default=5.0, gt=0, le=_DAY)
    import_timeout: Duration = timedelta(hours=6)
    abandon_after: Duration = timedelta(hours=24)
    max_open_imports: int = Field(default=8, ge=1, le=100)
    max_import_bytes: int = Field(default=195_000_000, gt=1000, le=195_000_000)
    json_chunk_size: int = Field(default=1000, ge=1, le=10_000)
    vocabulary: Vocabulary = Vocabulary()

    @field_validator("api_url", "auth_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return check_http_url(value)

    @field_validator("date_format")
    @classmethod
    def _round_trip_date_format(cls, value: str) -> str:
        """The format must write a date it can read back: year, month and day, nothing else."""
        from datetime import date

        sample = date(2026, 11, 2)
        try:
            written = sample.strftime(value)
        except ValueError:
            written = ""
        if not written or parse_date(written, value) != sample or "%H" in value:
            raise ValueError(
                "expected a strftime format of a calendar date such as '%Y-%m-%d' or '%m/%d/%Y'"
            )
        return value


class SyncSettings(_Section):
    chunk_size: int = Field(default=50_000, ge=1)
    retry_skipped_after: Duration = timedelta(hours=24)
    lock_lease_seconds: float = Field(default=DEFAULT_LEASE_SECONDS, gt=0)


class PlannerSettings(_Section):
    """The embedded DuckDB planner: its memory cap, where it spills beyond it, its threads."""

    memory_limit: str = Field(default="1GB", pattern=r"^\s*\d+(\.\d+)?\s*[KMGT]?i?B\s*$")
    temp_directory: Path | None = None
    threads: int | None = Field(default=None, ge=1, le=256)
    # A directory kept between runs: each audience's last snapshot as a file, read instead of
    # the state rows it stands for (:mod:`audience_sync.plan.snapshot_cache`).
    snapshot_cache: Path | None = None


class GuardSettings(_Section):
    max_removed_fraction: float = Field(default=0.2, ge=0, le=1)
    allow_empty: bool = False


class ScheduleSettings(_Section):
    every: Duration | None = None
    cron: str | None = None
    misfire_grace: Duration = timedelta(hours=1)
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                "expected an IANA time zone such as 'UTC' or 'Europe/Berlin'"
            ) from None
        return value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None:
            from audience_sync.crontab import cron_trigger

            cron_trigger(value, ZoneInfo("UTC"))
        return value

    @field_validator("every", "misfire_grace")
    @classmethod
    def _at_least_a_second(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(seconds=1):
            raise ValueError("expected at least one second")
        return value

    @model_validator(mode="after")
    def _one_trigger(self) -> ScheduleSettings:
        if self.every is not None and self.cron is not None:
            raise ValueError("set either 'every' or 'cron', not both")
        return self


class AlertSettings(_Section):
    """Webhooks told when a run fails or an audience keeps failing (:mod:`audience_sync.alerts`)."""

    webhook_urls: list[str] = []
    format: Literal["slack", "json"] = "slack"
    after_failures: int = Field(default=1, ge=1, le=1000)
    on_recovery: bool = False
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    retry_attempts: int = Field(default=3, ge=1, le=20)

    @field_validator("webhook_urls")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        return [check_http_url(url) for url in value]


class MetricsSettings(_Section):
    """Prometheus metrics after every run: a node_exporter textfile and/or a Pushgateway."""

    textfile: Path | None = None
    pushgateway: str | None = None
    job: str = Field(default="audience_sync", pattern=r"^[A-Za-z0-9_.\-]+$")
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    @field_validator("pushgateway")
    @classmethod
    def _gateway_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, separator, rest = value.partition("://")
        if not separator or scheme.lower() not in ("http", "https") or not rest:
            raise ValueError("expected an http(s) URL such as http://pushgateway:9091")
        return value.rstrip("/")


PlannerKind = Literal["embedded", "in_database"]


class AudienceSettings(_Section):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$", max_length=100)
    list_id: int = Field(gt=0)
    profile_field_id: int | None = Field(default=None, gt=0)
    source: SourceSpec
    guards: GuardSettings | None = None
    # Where the plan is computed: DuckDB in the job, or SQL inside the state database
    # (allowed combinations: :mod:`audience_sync.planner_placement`).
    planner: PlannerKind = "embedded"


class TraitGuardSettings(_Section):
    """A trait's guards: a run stops when more than ``max_changed_fraction`` of the confirmed
    values would change (sent or cleared), or when the source is empty (unless allowed)."""

    max_changed_fraction: float = Field(default=0.2, ge=0, le=1)
    allow_empty: bool = False


TraitFieldType = Literal["Text", "Numeric", "Date", "RadioButton"]


class TraitSettings(_Section):
    """A computed trait written to one typed profile field (``[[traits]]``).

    ``data_type`` is what ``setup`` creates when ``profile_field_id`` is unset (Text, Numeric
    or Date, ``max_length`` characters) and what it checks an existing field against.
    ``choices`` are a RadioButton field's values: Listrak's contract has no way to read them.
    ``clear_missing`` clears the value of a member that leaves the trait's source.
    """

    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$", max_length=100)
    list_id: int = Field(gt=0)
    profile_field_id: int | None = Field(default=None, gt=0)
    data_type: TraitFieldType | None = None
    max_length: int | None = Field(default=None, gt=0, le=4000)
    choices: list[str] | None = Field(default=None, min_length=1)
    source: TraitSourceSpec
    clear_missing: bool = False
    guards: TraitGuardSettings = TraitGuardSettings()
    planner: PlannerKind = "embedded"

    @model_validator(mode="after")
    def _field_known(self) -> TraitSettings:
        if self.profile_field_id is None and self.data_type is None:
            raise ValueError(
                "set profile_field_id, or data_type (Text, Numeric or Date) so that "
                "'audience-sync setup' can create the field"
            )
        if self.profile_field_id is None and self.data_type == "RadioButton":
            raise ValueError(
                "setup cannot create a RadioButton field (Listrak's API cannot set its "
                "choices); create it in Listrak and set profile_field_id"
            )
        if self.data_type == "RadioButton" and not self.choices:
            raise ValueError("a RadioButton trait needs its choices")
        if self.choices is not None and self.data_type != "RadioButton":
            raise ValueError("choices apply only to data_type = 'RadioButton'")
        if self.choices is not None and len(set(self.choices)) != len(self.choices):
            raise ValueError("choices must be unique")
        return self


class Settings(_Section):
    state: StateSettings = StateSettings()
    listrak: ListrakSettings = ListrakSettings()
    sync: SyncSettings = SyncSettings()
    planner: PlannerSettings = PlannerSettings()
    guards: GuardSettings = GuardSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    alerts: AlertSettings = AlertSettings()
    metrics: MetricsSettings = MetricsSettings()
    audiences: list[AudienceSettings] = Field(min_length=1)
    traits: list[TraitSettings] = []

    @field_validator("audiences")
    @classmethod
    def _unique_keys(cls, audiences: list[AudienceSettings]) -> list[AudienceSettings]:
        keys = [a.key for a in audiences]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"audience keys must be unique; repeated: {', '.join(repeated)}")
        return audiences

    @field_validator("audiences")
    @classmethod
    def _one_audience_per_field(cls, audiences: list[AudienceSettings]) -> list[AudienceSettings]:
        """Two audiences writing one field would overwrite each other's members."""
        owner: dict[tuple[int, int], str] = {}
        for audience in audiences:
            if audience.profile_field_id is None:
                continue
            target = (audience.list_id, audience.profile_field_id)
            if target in owner:
                raise ValueError(
                    f"audiences {owner[target]!r} and {audience.key!r} both write list "
                    f"{target[0]} profile field {target[1]}; give each audience its own field"
                )
            owner[target] = audience.key
        return audiences

    @field_validator("traits")
    @classmethod
    def _traits_apart(
        cls, traits: list[TraitSettings], info: ValidationInfo
    ) -> list[TraitSettings]:
        """Keys are unique across audiences and traits; every entry writes its own field."""
        audiences: list[AudienceSettings] = info.data.get("audiences") or []
        entries = [("audience", a.key, a.list_id, a.profile_field_id) for a in audiences] + [
            ("trait", t.key, t.list_id, t.profile_field_id) for t in traits
        ]
        keys = [key for _, key, _, _ in entries]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(
                f"keys must be unique across audiences and traits; repeated: {', '.join(repeated)}"
            )
        owner: dict[tuple[int, int], tuple[str, str]] = {}
        for kind, key, list_id, field_id in entries:
            if field_id is None:
                continue
            target = (list_id, field_id)
            if target in owner and "trait" in (kind, owner[target][0]):
                first_kind, first_key = owner[target]
                raise ValueError(
                    f"{first_kind} {first_key!r} and {kind} {key!r} both write list {list_id} "
                    f"profile field {field_id}; give each its own field"
                )
            owner.setdefault(target, (kind, key))
        return traits


class AppConfig(BaseModel):
    """Validated settings plus where they came from."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    settings: Settings
    path: Path

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def state_url(self) -> str:
        return resolve_sqlite_path(self.settings.state.url, self.base_dir)

    @property
    def state_schema(self) -> str | None:
        return self.settings.state.schema_name

    @property
    def metrics_textfile(self) -> Path | None:
        textfile = self.settings.metrics.textfile
        return None if textfile is None else self.base_dir / textfile.expanduser()

    def guards_for(self, audience: AudienceSettings) -> GuardSettings:
        return audience.guards or self.settings.guards

    def trait(self, key: str) -> TraitSettings:
        for trait in self.settings.traits:
            if trait.key == key:
                return trait
        raise ConfigError(f"no trait {key!r} in {self.path}")

    def audience(self, key: str) -> AudienceSettings:
        for audience in self.settings.audiences:
            if audience.key == key:
                return audience
        raise ConfigError(f"no audience {key!r} in {self.path}")


class Credentials(BaseModel):
    """Listrak API client credentials; the secret never prints (``SecretStr``)."""

    model_config = ConfigDict(frozen=True)

    client_id: str
    client_secret: SecretStr


def resolve_sqlite_path(url: str, base_dir: Path) -> str:
    """Make a relative SQLite file path absolute against ``base_dir``; other URLs pass through."""
    parsed = make_url(url)
    database = parsed.database
    if not parsed.drivername.startswith("sqlite") or not database or database == ":memory:":
        return url
    if database.startswith("file:") or Path(database).is_absolute():
        return url
    return parsed.set(database=str((base_dir / database).resolve())).render_as_string(
        hide_password=False
    )


def find_config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """``--config`` wins, then ``$AUDIENCE_SYNC_CONFIG``, then ``./audience-sync.toml``."""
    candidate = explicit or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_NAME
    return Path(candidate).expanduser().resolve()


def load_config(explicit_path: str | os.PathLike[str] | None = None) -> AppConfig:
    path = find_config_path(explicit_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"config file {path} not found (use --config PATH or set {CONFIG_ENV_VAR})"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    settings = parse_settings(raw, source=str(path))
    check_planner_placement(settings, os.environ)
    return AppConfig(settings=settings, path=path)


def parse_settings(raw: dict[str, Any], *, source: str = "config") -> Settings:
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, raw)) from None


def format_validation_error(
    exc: ValidationError, source: str, raw: dict[str, Any] | None = None
) -> str:
    """One line per problem naming the key path; see :mod:`audience_sync.config_errors`."""
    lines = [f"invalid config in {source}:"]
    for error in exc.errors(include_url=False):
        lines.append(f"  {config_errors.describe_error(error, raw or {})}")
    return "\n".join(lines)


def load_credentials(environ: dict[str, str] | None = None) -> Credentials:
    env = os.environ if environ is None else environ
    missing = [name for name in (CLIENT_ID_ENV_VAR, CLIENT_SECRET_ENV_VAR) if not env.get(name)]
    if missing:
        raise ConfigError(
            f"{' and '.join(missing)} must be set in the environment "
            "(Listrak API credentials are never read from the config file)"
        )
    return Credentials(
        client_id=env[CLIENT_ID_ENV_VAR], client_secret=SecretStr(env[CLIENT_SECRET_ENV_VAR])
    )
