"""HTTP clients of the sandbox under test (``sandbox``, in tests/conftest.py) and seed data."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from audience_sync.sandbox import SandboxServer

from .helpers import FIELD_ID, LIST_ID, TEXT_FIELD_ID, get_token


@pytest.fixture
def admin(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.admin_url, timeout=10) as client:
        yield client


@pytest.fixture
def api(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """An httpx client for the Email API carrying a fresh bearer token."""
    headers = {"Authorization": f"Bearer {get_token(sandbox)}"}
    with httpx.Client(base_url=sandbox.api_url, headers=headers, timeout=10) as client:
        yield client


@pytest.fixture
def seeded(sandbox: SandboxServer) -> SandboxServer:
    """List 100 with CheckBox field 200, Text field 201 and five kinds of contact."""
    world = sandbox.world
    world.add_list(LIST_ID, "Main")
    world.add_field(LIST_ID, "first_time_shopper", field_id=FIELD_ID)
    world.add_field(LIST_ID, "nickname", data_type="Text", field_id=TEXT_FIELD_ID, max_length=10)
    world.upsert_contacts(
        LIST_ID,
        [
            {"emailAddress": "sub@example.com", "subscriptionState": "Subscribed"},
            {"emailAddress": "unsub@example.com", "subscriptionState": "Unsubscribed"},
            {"emailAddress": "banned@example.com", "banned": True},
            {"emailAddress": "suppressed@example.com", "suppressed": True},
            {"emailAddress": "other@example.com"},
        ],
    )
    world.set_faults(import_delay_seconds=0.0)
    return sandbox
