"""``audience-sync demo``: the whole job, twice, against a local sandbox with sample audiences.

It starts the sandbox on a free loopback port, seeds a list with contacts (some unsubscribed),
writes member files for three audiences and value files for four computed traits (one of each
type: Numeric, Text, Date, RadioButton) and a config, runs a first sync, changes the member
lists and some values, and runs a second sync that sends only the changes.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx

from audience_sync.config import Credentials, load_config
from audience_sync.errors import DemoWorkdirError
from audience_sync.listrak.client import ListrakClient
from audience_sync.pipeline import SyncJob
from audience_sync.report import format_run, summarize_run
from audience_sync.sandbox import SandboxServer, SandboxSettings
from audience_sync.state import migrate
from audience_sync.state.db import make_engine
from audience_sync.state.statuses import RunTrigger

LIST_ID = 100
AUDIENCES = {
    "first_time_shopper": 200,
    "ordered_last_30_days": 201,
    "vip_customer": 202,
}
# key -> (field id, data type, choices)
TRAITS = {
    "lifetime_value": (300, "Numeric", ()),
    "favorite_category": (301, "Text", ()),
    "last_order_date": (302, "Date", ()),
    "tier": (303, "RadioButton", ("gold", "silver", "bronze")),
}
CATEGORIES = ("shoes", "hats", "bags", "scarves", "gloves")
CONTACTS = 3000
UNSUBSCRIBED_EVERY = 12  # about 8% of contacts have unsubscribed from the list
DEMO_CLIENT_ID = "demo-client"
DEMO_CLIENT_SECRET = "demo-secret"  # noqa: S105 - the sandbox's throwaway credential

MARKER = ".audience-sync-demo"
CONFIG_HEADER = "# Written by `audience-sync demo`"

Echo = Callable[[str], None]


def run_demo(workdir: Path, *, echo: Echo = print, seed: int = 7, force: bool = False) -> Path:
    """Run the demo in ``workdir`` and return the path of the state database it leaves.

    ``workdir`` must be missing, empty or one the demo made (its marker file is there), unless
    ``force``: the demo replaces ``audience-sync.toml``, ``audience-sync.db*`` and ``members/``.
    """
    workdir = workdir.resolve()
    check_workdir(workdir, force=force)
    _reset(workdir)
    rng = random.Random(seed)  # noqa: S311 - sample data, not security
    contacts = [f"customer{i:05d}@example.com" for i in range(CONTACTS)]
    settings = SandboxSettings(client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET)
    with SandboxServer(settings) as sandbox:
        echo(f"sandbox (a local stand-in for Listrak) listening at {sandbox.base_url}")
        _seed_sandbox(sandbox.admin_url, contacts)
        members = {key: set(rng.sample(contacts, k=rng.randint(600, 1400))) for key in AUDIENCES}
        members["first_time_shopper"] |= {f"not-on-list{i}@example.com" for i in range(5)}
        _write_members(workdir, members, rng)
        values = _trait_values(contacts, rng)
        _write_traits(workdir, values)
        config_path = _write_config(workdir, sandbox.api_url, sandbox.auth_url)
        config = load_config(config_path)
        engine = make_engine(config.state_url, schema=config.state_schema)
        migrate.upgrade(engine)
        job = SyncJob(
            config,
            engine=engine,
            client_factory=lambda: ListrakClient.build(
                config.settings.listrak,
                Credentials(client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET),
            ),
        )
        echo(
            "\n== first sync: every subscribed member is turned on, every valid trait value "
            "is set =="
        )
        first = job.run(trigger=RunTrigger.MANUAL)
        echo(format_run(summarize_run(engine, first.run_id)))

        _change_members(members, contacts, rng)
        _write_members(workdir, members, rng)
        _change_values(values, rng)
        _write_traits(workdir, values)
        echo(
            "\n== member lists and some trait values changed; second sync sends only the changes =="
        )
        second = job.run(trigger=RunTrigger.MANUAL)
        echo(format_run(summarize_run(engine, second.run_id)))
        stats = httpx.get(f"{sandbox.admin_url}/stats").json()
        echo(f"\nimports Listrak received in all: {len(stats['imports'])}")
        engine.dispose()
    db_path = Path(str(engine.url.database))
    echo(f"\nstate database: {db_path}")
    echo(f"config:         {config_path}")
    echo(f"explore it:     audience-sync --config {config_path} plan")
    return db_path


def check_workdir(workdir: Path, *, force: bool) -> None:
    if force or not workdir.exists() or is_demo_workdir(workdir):
        return
    if not workdir.is_dir():
        raise DemoWorkdirError(f"demo workdir {workdir} is not a directory")
    if any(workdir.iterdir()):
        raise DemoWorkdirError(
            f"demo workdir {workdir} is not empty and was not created by the demo; choose "
            "another --workdir, or pass --force to let the demo replace its audience-sync.toml, "
            "audience-sync.db* and members/"
        )


def is_demo_workdir(workdir: Path) -> bool:
    """The marker is there, or the config says the demo wrote it (before the marker existed)."""
    if (workdir / MARKER).is_file():
        return True
    config = workdir / "audience-sync.toml"
    try:
        with config.open(encoding="utf-8") as handle:
            return handle.readline().startswith(CONFIG_HEADER)
    except (OSError, UnicodeDecodeError):
        return False


def _reset(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text(
        "This directory was created by `audience-sync demo`, which replaces its contents.\n",
        encoding="utf-8",
    )
    for name in ("members", "traits"):
        shutil.rmtree(workdir / name, ignore_errors=True)
    for pattern in ("audience-sync.db*", "audience-sync.toml"):
        for path in workdir.glob(pattern):
            path.unlink()


def _seed_sandbox(admin_url: str, contacts: list[str]) -> None:
    with httpx.Client(base_url=admin_url, timeout=30) as admin:
        admin.post("/lists", json={"listId": LIST_ID, "listName": "Demo list"}).raise_for_status()
        for key, field_id in AUDIENCES.items():
            admin.post(
                f"/lists/{LIST_ID}/fields",
                json={
                    "segmentationFieldId": field_id,
                    "segmentationFieldName": key,
                    "dataType": "CheckBox",
                    "groupName": "Engage Audiences",
                },
            ).raise_for_status()
        for key, (field_id, data_type, choices) in TRAITS.items():
            admin.post(
                f"/lists/{LIST_ID}/fields",
                json={
                    "segmentationFieldId": field_id,
                    "segmentationFieldName": key,
                    "dataType": data_type,
                    "groupName": "Engage Traits",
                    "maxLength": 50,
                    **({"choices": list(choices)} if choices else {}),
                },
            ).raise_for_status()
        states = [
            {
                "emailAddress": email,
                "subscriptionState": "Unsubscribed"
                if i % UNSUBSCRIBED_EVERY == 0
                else "Subscribed",
            }
            for i, email in enumerate(contacts)
        ]
        admin.post(f"/lists/{LIST_ID}/contacts", json={"contacts": states}).raise_for_status()


def _write_members(workdir: Path, members: dict[str, set[str]], rng: random.Random) -> None:
    folder = workdir / "members"
    folder.mkdir(exist_ok=True)
    for key, emails in members.items():
        lines = ["email"]
        for email in sorted(emails):
            # Segment exports are not tidy: mixed case and stray spaces are normalised away.
            lines.append(f"  {email.upper()} " if rng.random() < 0.05 else email)
        lines.append("not-an-email")
        (folder / f"{key}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _change_members(members: dict[str, set[str]], contacts: list[str], rng: random.Random) -> None:
    for emails in members.values():
        leaving = rng.sample(sorted(emails), k=len(emails) // 10)
        emails.difference_update(leaving)
        emails.update(rng.sample(contacts, k=60))


def _trait_values(contacts: list[str], rng: random.Random) -> dict[str, dict[str, str]]:
    """Per trait, raw values for a sample of contacts, as an Engage export writes them (some
    untidy, a few invalid: those are reported and never sent)."""
    values: dict[str, dict[str, str]] = {}
    for key in TRAITS:
        sample = rng.sample(contacts, k=rng.randint(700, 1200))
        values[key] = {email: _raw_value(key, rng) for email in sample}
        for email in rng.sample(sample, k=3):
            values[key][email] = {
                "lifetime_value": "n/a",
                "favorite_category": "x" * 60,
                "last_order_date": "last tuesday",
                "tier": "platinum",
            }[key]
    return values


def _raw_value(key: str, rng: random.Random) -> str:
    if key == "lifetime_value":
        return f"{rng.randint(0, 200_000) / 100:.2f}"  # 412.50 is sent as 412.5
    if key == "favorite_category":
        return rng.choice(CATEGORIES)
    if key == "last_order_date":
        return f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}"
    return rng.choice(TRAITS["tier"][2])


def _change_values(values: dict[str, dict[str, str]], rng: random.Random) -> None:
    for key, by_email in values.items():
        for email in rng.sample(sorted(by_email), k=len(by_email) // 20):
            by_email[email] = _raw_value(key, rng)


def _write_traits(workdir: Path, values: dict[str, dict[str, str]]) -> None:
    folder = workdir / "traits"
    folder.mkdir(exist_ok=True)
    for key, by_email in values.items():
        lines = ["email,value"] + [
            f'{email},"{value}"' for email, value in sorted(by_email.items())
        ]
        (folder / f"{key}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_config(workdir: Path, api_url: str, auth_url: str) -> Path:
    audiences = "\n".join(
        f"""
[[audiences]]
key = "{key}"
list_id = {LIST_ID}
profile_field_id = {field_id}
source = {{ kind = "csv", path = "members/{key}.csv", email_column = "email" }}
"""
        for key, field_id in AUDIENCES.items()
    )
    traits = "\n".join(
        f"""
[[traits]]
key = "{key}"
list_id = {LIST_ID}
profile_field_id = {field_id}
data_type = "{data_type}"
max_length = 50
{f"choices = {list(choices)!r}".replace("'", '"') if choices else ""}
source = {{ kind = "csv", path = "traits/{key}.csv", value_column = "value" }}
"""
        for key, (field_id, data_type, choices) in TRAITS.items()
    )
    path = workdir / "audience-sync.toml"
    path.write_text(
        f"""{CONFIG_HEADER}: a loopback sandbox stands in for Listrak.
[state]
url = "sqlite:///audience-sync.db"

[listrak]
api_url = "{api_url}"
auth_url = "{auth_url}"
poll_interval_seconds = 0.1
{audiences}{traits}""",
        encoding="utf-8",
    )
    return path
