from __future__ import annotations

import httpx

from audience_sync.sandbox import SandboxServer, SandboxSettings, SandboxWorld

from .helpers import LIST_ID, assert_error, import_body, wait_completed


def _seed(admin: httpx.Client) -> None:
    assert admin.post("/lists", json={"listId": 100, "listName": "Main"}).status_code == 201
    field = {
        "segmentationFieldId": 200,
        "segmentationFieldName": "first_time_shopper",
        "dataType": "CheckBox",
        "groupName": "Engage Audiences",
    }
    created = admin.post("/lists/100/fields", json=field)
    assert created.status_code == 201
    assert created.json()["segmentationFieldId"] == 200
    assert isinstance(created.json()["segmentationFieldGroupId"], int)
    contacts = [
        {"emailAddress": "A@B.com", "subscriptionState": "Subscribed"},
        {"emailAddress": "c@d.com", "subscriptionState": "Unsubscribed", "banned": False},
    ]
    response = admin.post("/lists/100/contacts", json={"contacts": contacts})
    assert response.json() == {"count": 2}


def test_seeding_is_visible_through_the_api(
    sandbox: SandboxServer, admin: httpx.Client, api: httpx.Client
) -> None:
    _seed(admin)
    groups = api.get("/List/100/SegmentationFieldGroup").json()["data"]
    assert [g["segmentationFieldGroupName"] for g in groups] == ["Engage Audiences"]
    group_id = groups[0]["segmentationFieldGroupId"]
    fields = api.get(f"/List/100/SegmentationFieldGroup/{group_id}/SegmentationField").json()
    assert [(f["segmentationFieldId"], f["dataType"]) for f in fields["data"]] == [
        (200, "CheckBox")
    ]
    contacts = api.get("/List/100/Contact").json()["data"]
    assert [c["emailAddress"] for c in contacts] == ["a@b.com"]


def test_field_without_id_gets_one_and_reuses_group(admin: httpx.Client) -> None:
    _seed(admin)
    created = admin.post("/lists/100/fields", json={"segmentationFieldName": "vip"}).json()
    assert created["segmentationFieldId"] != 200
    first_group = admin.post("/lists/100/fields", json={"segmentationFieldName": "x"}).json()
    assert first_group["segmentationFieldGroupId"] == created["segmentationFieldGroupId"]


def test_values_put_and_get(admin: httpx.Client) -> None:
    _seed(admin)
    assert admin.get("/lists/100/fields/200/values").json() == {"values": {}}
    assert admin.put(
        "/lists/100/fields/200/values", json={"values": {"a@b.com": "off"}}
    ).json() == {"count": 1}
    assert admin.get("/lists/100/fields/200/values").json() == {"values": {"a@b.com": "off"}}
    unknown = admin.put("/lists/100/fields/200/values", json={"values": {"zz@b.com": "on"}})
    assert_error(unknown, 400, "ERROR_INVALID_PARAMETER")
    assert_error(admin.get("/lists/100/fields/999/values"), 404, "ERROR_UNABLE_TO_LOCATE_RESOURCE")


def test_contacts_upsert_keeps_unsent_flags(admin: httpx.Client) -> None:
    _seed(admin)
    admin.post("/lists/100/contacts", json={"contacts": [{"emailAddress": "c@d.com"}]})
    listed = {c["emailAddress"]: c for c in admin.get("/lists/100/contacts").json()["contacts"]}
    assert listed["c@d.com"]["subscriptionState"] == "Unsubscribed"
    bad = admin.post(
        "/lists/100/contacts",
        json={"contacts": [{"emailAddress": "x@y.com", "subscriptionState": "Maybe"}]},
    )
    assert_error(bad, 400, "ERROR_INVALID_PARAMETER")


def test_faults_round_trip(admin: httpx.Client) -> None:
    defaults = admin.get("/faults").json()
    assert defaults == {
        "token_lifetime_seconds": 900.0,
        "import_delay_seconds": 0.2,
        "max_body_bytes": None,
        "api_paused": False,
        "beta_route_enabled": True,
        "fail_next": None,
        "drop_next_post": None,
        "stall_imports_named": None,
    }
    change = {
        "fail_next": {
            "count": 3,
            "status": 400,
            "method": "GET",
            "path_contains": "Status",
            "code": "ERROR_NOT_SUBSCRIBED_EMAIL_ADDRESS",
        },
        "drop_next_post": {"count": 1, "path_contains": "ListImport"},
        "max_body_bytes": 5000,
        "import_delay_seconds": 1.0,
        "token_lifetime_seconds": 2,
    }
    updated = admin.post("/faults", json=change).json()
    assert updated == {**defaults, **change, "token_lifetime_seconds": 2.0}
    assert admin.get("/faults").json() == updated
    assert admin.post("/faults", json={"api_paused": True}).json()["max_body_bytes"] == 5000
    assert_error(admin.post("/faults", json={"bogus": 1}), 400, "ERROR_INVALID_PARAMETER")
    bad_status = {"fail_next": {"count": 1, "status": 404}}
    assert_error(admin.post("/faults", json=bad_status), 400, "ERROR_INVALID_PARAMETER")


def test_reset_clears_data_and_faults(sandbox: SandboxServer, admin: httpx.Client) -> None:
    _seed(admin)
    admin.post("/faults", json={"api_paused": True})
    assert admin.post("/reset").status_code == 200
    assert admin.get("/faults").json()["api_paused"] is False
    assert sandbox.world.lists() == []
    assert admin.get("/stats").json() == {"requests": {}, "handling_seconds": {}, "imports": []}


def test_stats_count_requests_by_route_template(
    sandbox: SandboxServer, admin: httpx.Client, api: httpx.Client
) -> None:
    _seed(admin)
    text = "email,f\na@b.com,on\nc@d.com,on\n"
    for name in ("one.csv", "two.csv"):
        response = api.post(f"/List/{LIST_ID}/ListImport", json=import_body(text, fileName=name))
        import_id = response.json()["resourceId"]
    wait_completed(api, import_id)
    stats = admin.get("/stats").json()
    assert stats["requests"]["POST /email/v1/List/{listId}/ListImport"] == 2
    assert stats["requests"]["POST /OAuth2/Token"] == 1
    assert stats["requests"]["GET /email/v1/List/{listId}/ListImport/{importFileId}/Status"] >= 1
    assert stats["imports"][1] == {
        "importFileId": int(import_id),
        "listId": LIST_ID,
        "importFileName": "two.csv",
        "rows": 2,
        "route": "ListImport",
    }


def test_stats_add_up_the_time_spent_handling_each_route(
    sandbox: SandboxServer, admin: httpx.Client, api: httpx.Client
) -> None:
    _seed(admin)
    text = "email,f\na@b.com,on\n"
    response = api.post(f"/List/{LIST_ID}/ListImport", json=import_body(text, fileName="t.csv"))
    wait_completed(api, response.json()["resourceId"])
    admin.get("/faults")
    stats = admin.get("/stats").json()
    # Every request that reached a Listrak route is timed, under the same key it is counted;
    # the admin API is not.
    assert set(stats["handling_seconds"]) == set(stats["requests"])
    assert all(seconds > 0 for seconds in stats["handling_seconds"].values())
    assert "POST /email/v1/List/{listId}/ListImport" in stats["handling_seconds"]


def test_seed_settings_load_lists_fields_and_contacts() -> None:
    seed = {
        "lists": [
            {
                "listId": 7,
                "listName": "Seeded",
                "fields": [{"segmentationFieldId": 70, "segmentationFieldName": "vip"}],
                "contacts": [
                    {"emailAddress": "s@example.com", "subscriptionState": "Unsubscribed"}
                ],
            }
        ]
    }
    world = SandboxWorld(SandboxSettings(seed=seed))
    assert [(r.list_id, r.name) for r in world.lists()] == [(7, "Seeded")]
    assert world.field_values(7, 70) == {}
    assert [(c.email, c.subscription_state) for c in world.contacts(7)] == [
        ("s@example.com", "Unsubscribed")
    ]
