"""Every audience's imports are posted, then awaited together in one polling loop, at most
``max_open_imports`` open at a time; each import is confirmed as soon as it finishes."""

from __future__ import annotations

from typing import Any

import httpx

from tests.crash.helpers import assert_in_step
from tests.harness import Harness

KEYS = [f"aud{n}" for n in range(5)]
MEMBERS = {key: [f"{key}_{i:02d}@example.com" for i in range(10)] for key in KEYS}


class ImportWatcher:
    """Follows, from the job's own HTTP traffic, which imports are open at Listrak."""

    def __init__(self) -> None:
        self.open: set[str] = set()
        self.most_open = 0
        self.posted_while_another_was_open = 0

    def on_response(self, response: httpx.Response) -> None:
        request = response.request
        path = request.url.path
        if request.method == "POST" and path.endswith("/ListImport") and response.is_success:
            response.read()
            if self.open:
                self.posted_while_another_was_open += 1
            self.open.add(str(response.json()["resourceId"]))
        elif request.method == "GET" and path.endswith("/Status") and response.is_success:
            response.read()
            if response.json()["data"]["status"] == "Completed":
                self.open.discard(path.split("/")[-2])
        self.most_open = max(self.most_open, len(self.open))


def five_audiences(h: Harness, *, max_open: int) -> ImportWatcher:
    h.listrak_settings["max_open_imports"] = max_open
    h.add_contacts(subscribed=[m for members in MEMBERS.values() for m in members])
    for n, key in enumerate(KEYS):
        h.add_audience(key, 600 + n, MEMBERS[key])
    h.sandbox.world.set_faults(import_delay_seconds=0.3)
    return ImportWatcher()


def hooks(watcher: ImportWatcher) -> dict[str, Any]:
    return {"event_hooks": {"response": [watcher.on_response]}}


def test_imports_of_all_audiences_are_awaited_together(harness: Harness) -> None:
    watcher = five_audiences(harness, max_open=8)
    outcome = harness.run(hooks(watcher))
    assert outcome.status == "succeeded"
    assert_in_step(harness, MEMBERS)
    # Each audience's import went out while earlier ones were still running at Listrak.
    assert watcher.posted_while_another_was_open == len(KEYS) - 1
    assert watcher.most_open == len(KEYS)
    assert watcher.open == set()


def test_no_more_than_max_open_imports_are_open_at_once(harness: Harness) -> None:
    watcher = five_audiences(harness, max_open=2)
    outcome = harness.run(hooks(watcher))
    assert outcome.status == "succeeded"
    assert_in_step(harness, MEMBERS)
    assert watcher.most_open == 2
    assert harness.import_count() == len(KEYS)
