"""Audience selection: each segment condition, run as SQL on a real (SQLCipher) workspace, and
the live recipient count through the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.broadcasts.audience import compile_where
from appliance.store.rows import many
from appliance.store.workspace import Workspace
from appliance.timeutil import to_iso, utcnow
from tests.appliance.api_helpers import error_of
from tests.appliance.broadcast_helpers import connect, make_contact, wa_contact
from tests.helpers import make_token

# name -> traits; every contact is on WhatsApp unless it says otherwise
PEOPLE: dict[str, dict[str, Any]] = {
    "ana": {"tags": ("vip", "newsletter"), "fields": {"plan": "Pro", "age": 34, "city": "Tbilisi"}, "hours_ago": 2},
    "ben": {"tags": ("vip",), "fields": {"plan": "free", "age": "19"}, "hours_ago": 30},
    "cleo": {"tags": ("newsletter",), "fields": {"plan": "pro", "age": "n/a"}, "hours_ago": 24 * 10},
    "dato": {"tags": ("churned",), "fields": {}, "hours_ago": None, "subscribed": False},
    "eka": {"tags": (), "fields": {"plan": "Enterprise", "age": 51}, "hours_ago": 0.5, "channel": "messenger"},
}


@pytest.fixture
def people(workspace: Workspace) -> dict[str, int]:
    whatsapp, messenger = connect(workspace, "whatsapp"), connect(workspace, "messenger")
    ids = {}
    for n, (name, traits) in enumerate(PEOPLE.items()):
        traits = dict(traits)
        if traits.pop("channel", "whatsapp") == "messenger":
            ids[name] = make_contact(workspace, messenger, f"246000{n}", **traits)
        else:
            ids[name] = wa_contact(workspace, whatsapp, n, **traits)
    return ids


def select(workspace: Workspace, people: dict[str, int], audience: dict[str, Any]) -> list[str]:
    where, params = compile_where(audience, utcnow())
    found = {r["id"] for r in workspace.gateway.read_sync(lambda db: many(
        db, f"SELECT c.id FROM contacts c JOIN channels ch ON ch.id = c.channel_id WHERE {where}", params))}
    return sorted(name for name, contact_id in people.items() if contact_id in found)


SEGMENTS = [
    pytest.param({}, ["ana", "ben", "cleo", "dato", "eka"], id="everyone"),
    pytest.param({"tags": {"any": ["vip", "churned"]}}, ["ana", "ben", "dato"], id="tags-any"),
    pytest.param({"tags": {"all": ["vip", "newsletter"]}}, ["ana"], id="tags-all"),
    pytest.param({"tags": {"none": ["vip"]}}, ["cleo", "dato", "eka"], id="tags-none"),
    pytest.param({"tags": {"any": ["newsletter"], "none": ["vip"]}}, ["cleo"], id="tags-any-and-none"),
    pytest.param({"fields": [{"field": "plan", "op": "eq", "value": "PRO"}]}, ["ana", "cleo"], id="eq-ignores-case"),
    pytest.param({"fields": [{"field": "age", "op": "eq", "value": "34"}]}, ["ana"], id="eq-number-as-text"),
    pytest.param({"fields": [{"field": "plan", "op": "ne", "value": "pro"}]}, ["ben", "dato", "eka"],
                 id="ne-includes-missing"),
    pytest.param({"fields": [{"field": "plan", "op": "contains", "value": "ER"}]}, ["eka"], id="contains"),
    pytest.param({"fields": [{"field": "plan", "op": "starts_with", "value": "f"}]}, ["ben"], id="starts-with"),
    pytest.param({"fields": [{"field": "age", "op": "gt", "value": 20}]}, ["ana", "eka"], id="gt-skips-non-numbers"),
    pytest.param({"fields": [{"field": "age", "op": "lte", "value": 19}]}, ["ben"], id="lte-numeric-text"),
    pytest.param({"fields": [{"field": "city", "op": "is_set"}]}, ["ana"], id="is-set"),
    pytest.param({"fields": [{"field": "age", "op": "is_not_set"}]}, ["dato"], id="is-not-set"),
    pytest.param({"fields": [{"field": "plan", "op": "eq", "value": "pro"}, {"field": "age", "op": "gt", "value": 40}]},
                 [], id="fields-are-and"),
    pytest.param({"channels": ["messenger"]}, ["eka"], id="channel-type"),
    pytest.param({"subscribed": True}, ["ana", "ben", "cleo", "eka"], id="subscribed"),
    pytest.param({"subscribed": False}, ["dato"], id="unsubscribed"),
    pytest.param({"last_interaction": {"after": "1d"}}, ["ana", "eka"], id="interaction-after-span"),
    pytest.param({"last_interaction": {"before": "1d"}}, ["ben", "cleo", "dato"], id="before-includes-never"),
    pytest.param({"last_interaction": {"after": "2w", "before": "1d"}}, ["ben", "cleo"], id="between"),
    pytest.param({"tags": {"any": ["vip"]}, "last_interaction": {"after": "1d"}, "channels": ["whatsapp"]}, ["ana"],
                 id="everything-is-and"),
]


@pytest.mark.parametrize(("audience", "expected"), SEGMENTS)
def test_segments(workspace: Workspace, people: dict[str, int], audience: dict[str, Any], expected: list[str]) -> None:
    assert select(workspace, people, audience) == expected


def test_interaction_with_absolute_times(workspace: Workspace, people: dict[str, int]) -> None:
    after = to_iso(utcnow() - timedelta(hours=40)).replace("Z", "+00:00")
    before = to_iso(utcnow() - timedelta(hours=1))
    assert select(workspace, people, {"last_interaction": {"after": after, "before": before}}) == ["ana", "ben"]


def test_channel_ids(workspace: Workspace, people: dict[str, int]) -> None:
    messenger = workspace.gateway.read_sync(lambda db: many(db, "SELECT id FROM channels WHERE type = 'messenger'"))
    assert select(workspace, people, {"channel_ids": [str(messenger[0]["id"])]}) == ["eka"]


def test_a_quote_in_a_value_is_only_a_value(workspace: Workspace, people: dict[str, int]) -> None:
    hostile = {"fields": [{"field": "plan", "op": "eq", "value": "x' OR '1'='1"}]}
    assert select(workspace, people, hostile) == []


# --- the live count, through the API --------------------------------------------------------

async def test_the_estimate_counts_the_audience_and_the_policys_verdicts(
    client: AsyncTestClient, workspace: Workspace, people: dict[str, int]
) -> None:
    response = await client.post("/api/v1/broadcasts/estimate", headers=make_token(workspace), json={
        "audience": {"channels": ["whatsapp"]}, "message": {"text": "Hello"}})
    assert response.status_code == 200, response.text
    # ben and cleo wrote more than 24 h ago (free-form needs the window); dato unsubscribed.
    assert response.json() == {"total": 4, "eligible": 1,
                               "skipped_reasons": {"outside_window": 2, "unsubscribed": 1}}


async def test_the_estimate_follows_the_contacts_as_they_change(
    client: AsyncTestClient, workspace: Workspace, people: dict[str, int]
) -> None:
    auth = make_token(workspace)
    body = {"audience": {"tags": {"any": ["vip"]}}, "message": {"text": "Hello"}}
    before = (await client.post("/api/v1/broadcasts/estimate", headers=auth, json=body)).json()["total"]
    await client.post(f"/api/v1/contacts/{people['eka']}/tags", headers=auth, json={"tag": "vip"})
    after = (await client.post("/api/v1/broadcasts/estimate", headers=auth, json=body)).json()["total"]
    assert (before, after) == (2, 3)


BAD_AUDIENCES = [
    pytest.param({"fields": [{"field": "age", "op": "gt", "value": "20"}]}, "audience.fields.0", id="gt-needs-number"),
    pytest.param({"fields": [{"field": "age", "op": "eq"}]}, "audience.fields.0", id="eq-needs-value"),
    pytest.param({"fields": [{"field": "age", "op": "is_set", "value": 1}]}, "audience.fields.0",
                 id="is-set-takes-none"),
    pytest.param({"fields": [{"field": "a'b", "op": "is_set"}]}, "audience.fields.0.field", id="field-name"),
    pytest.param({"last_interaction": {"after": "7y"}}, "audience.last_interaction.after", id="bad-span"),
    pytest.param({"last_interaction": {"after": "2026-11-01T09:00:00"}}, "audience.last_interaction.after",
                 id="time-without-offset"),
    pytest.param({"channels": ["telegram"]}, "audience.channels.0", id="unknown-channel"),
    pytest.param({"segment": "vip"}, "audience.segment", id="unknown-key"),
]


@pytest.mark.parametrize(("audience", "path"), BAD_AUDIENCES)
async def test_a_bad_audience_is_422_with_its_path(
    client: AsyncTestClient, workspace: Workspace, audience: dict[str, Any], path: str
) -> None:
    response = await client.post("/api/v1/broadcasts/estimate", headers=make_token(workspace),
                                 json={"audience": audience, "message": {"text": "Hello"}})
    details = error_of(response, 422).get("details", [])
    assert [d["path"] for d in details] == [path], details
