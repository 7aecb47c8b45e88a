"""Reading contacts' actual field values back from the sandbox, paged, over HTTP."""

from __future__ import annotations

from audience_sync.config import Credentials, ListrakSettings
from audience_sync.listrak.client import ListrakClient
from audience_sync.sandbox import SandboxServer
from tests.harness import CLIENT_ID, CLIENT_SECRET, LIST_ID


def test_read_back_pages_through_every_contact(listrak_account: SandboxServer) -> None:
    world = listrak_account.world
    vip, _ = world.add_field(LIST_ID, "vip")
    new, _ = world.add_field(LIST_ID, "new")
    emails = [f"r{i:05d}@example.com" for i in range(5_200)]  # more than one page of 5000
    world.upsert_contacts(
        LIST_ID, [{"emailAddress": e, "subscriptionState": "Subscribed"} for e in emails]
    )
    world.set_field_values(LIST_ID, vip, {e: "on" for e in emails[::2]})
    world.set_field_values(LIST_ID, new, {emails[1]: "off"})

    settings = ListrakSettings(api_url=listrak_account.api_url, auth_url=listrak_account.auth_url)
    creds = Credentials(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    with ListrakClient.build(settings, creds) as client:
        values = {
            c.emailAddress: {v.segmentationFieldId: v.value for v in c.segmentationFieldValues}
            for c in client.contacts(LIST_ID, [vip, new])
        }
        contact_pages = world.stats()["requests"]["GET /email/v1/List/{listId}/Contact"]
    assert len(values) == len(emails)
    assert contact_pages == 2
    assert {e for e, v in values.items() if v.get(vip) == "on"} == set(emails[::2])
    assert values[emails[1]][new] == "off"
