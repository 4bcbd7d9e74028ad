"""``/api/v1/flows`` (docs/spec/api.md, the flows rows) through the real stack: documents,
publishing, validation answers, the JSON Schema, export and import (preview and stats: test_flows_preview_api.py, test_flows_stats_api.py).

Flows are made through the API; contacts and runs the way production makes them, by ingesting
signed webhooks. Only what no request can set (a run that started ten days ago, a draft saved
before a validation rule existed) is written through the workspace gateway.

Tests that need an app of their own (runs, stand-in traffic, listing) use ``client``; the
tables of refused input, which each make their own flow and compare before and after, share
one app per module (``shared``): starting an app is most of an API test's cost.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from litestar.testing import AsyncTestClient

from appliance.flows.tasks import fire_due_timers
from appliance.store.workspace import Workspace
from appliance.timeutil import to_iso, utcnow
from tests.appliance.api_helpers import (
    Shared,
    error_of,
    on_shared_app,
    rows,
    shared,  # noqa: F401 - a fixture
    snapshot,
    walk,
)
from tests.appliance.flow_helpers import document, pricing_document
from tests.appliance.flow_run_helpers import (
    publish_flow,
    reply_ids,
    say,
    sent,
    tap,
    texts_of,
)
from tests.appliance.flows_api_helpers import (  # noqa: F401 - fixtures
    admin,
    channels,
    create,
    get,
    listed,
    reminder,
    same_flow,
    with_step,
)
from tests.helpers import make_token, outbox_empty
from tests.standins.graph_api import GraphStandIn

FLOWS = "/api/v1/flows"


# --- create, get, list, update, delete ---------------------------------------------------------

async def test_create_answers_201_with_a_draft_at_version_0(client: AsyncTestClient, admin: dict[str, str]) -> None:
    response = await client.post(FLOWS, json=pricing_document(), headers=admin)
    assert response.status_code == 201, response.text
    body = response.json()
    assert isinstance(body["id"], str) and body["id"].isdigit()
    assert (body["name"], body["status"], body["version"]) == ("Pricing questions", "draft", 0)
    assert same_flow(body["document"], pricing_document())


async def test_get_answers_what_create_answered(client: AsyncTestClient, admin: dict[str, str]) -> None:
    created = await create(client, admin, pricing_document())
    assert await get(client, admin, created["id"]) == created


async def test_get_of_an_unknown_flow_is_404(client: AsyncTestClient, admin: dict[str, str]) -> None:
    assert error_of(await client.get(f"{FLOWS}/999", headers=admin), 404)["code"] == "not_found"


async def test_list_pages_through_every_flow_with_the_cursor(client: AsyncTestClient, admin: dict[str, str]) -> None:
    ids = [(await create(client, admin, document({"s": {"type": "end"}}, name=f"Flow {i}")))["id"] for i in range(5)]
    pages = await walk(client, FLOWS, admin, limit=2)
    assert [[item["id"] for item in page] for page in pages] == [ids[0:2], ids[2:4], ids[4:5]]
    assert [item["name"] for page in pages for item in page] == [f"Flow {i}" for i in range(5)]


async def test_list_refuses_a_cursor_it_did_not_issue(client: AsyncTestClient, admin: dict[str, str]) -> None:
    response = await client.get(FLOWS, params={"cursor": "bm90LWEtY3Vyc29y"}, headers=admin)
    assert error_of(response, 400)["code"] == "invalid_cursor"


async def test_update_replaces_the_draft(client: AsyncTestClient, admin: dict[str, str]) -> None:
    created = await create(client, admin, pricing_document())
    changed = pricing_document()
    changed["name"] = "Prices, take two"
    changed["steps"]["plans"]["text"] = "Pro is 12 EUR a month."
    response = await client.put(f"{FLOWS}/{created['id']}", json=changed, headers=admin)
    assert response.status_code == 200, response.text
    fetched = await get(client, admin, created["id"])
    assert fetched == response.json()
    assert (fetched["name"], fetched["status"], fetched["version"]) == ("Prices, take two", "draft", 0)
    assert same_flow(fetched["document"], changed)


async def test_update_of_an_unknown_flow_is_404(client: AsyncTestClient, admin: dict[str, str]) -> None:
    response = await client.put(f"{FLOWS}/999", json=pricing_document(), headers=admin)
    assert error_of(response, 404)["code"] == "not_found"


async def test_delete_answers_204_and_then_the_flow_is_gone(client: AsyncTestClient, admin: dict[str, str]) -> None:
    kept = await create(client, admin, pricing_document())
    gone = await create(client, admin, pricing_document())
    response = await client.delete(f"{FLOWS}/{gone['id']}", headers=admin)
    assert (response.status_code, response.content) == (204, b"")
    assert error_of(await client.get(f"{FLOWS}/{gone['id']}", headers=admin), 404)["code"] == "not_found"
    assert error_of(await client.delete(f"{FLOWS}/{gone['id']}", headers=admin), 404)["code"] == "not_found"
    assert error_of(await client.post(f"{FLOWS}/{gone['id']}/publish", headers=admin), 404)["code"] == "not_found"
    assert [item["id"] for item in await listed(client, admin)] == [kept["id"]]


async def test_a_deleted_flow_no_longer_fires_and_its_active_runs_end_interrupted(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str], channels: None
) -> None:
    flow_id = await publish_flow(client, admin, pricing_document())
    await say(client, "messenger", "price")
    first = (await sent(graph_api, 1))[0]
    await tap(client, "messenger", reply_ids(first)[0][1], "Plans")
    await sent(graph_api, 3)  # the run now waits for the e-mail address
    assert (await client.delete(f"{FLOWS}/{flow_id}", headers=admin)).status_code == 204
    runs = rows(workspace, "SELECT status, ended_at FROM flow_runs")
    assert [r["status"] for r in runs] == ["interrupted"] and runs[0]["ended_at"] is not None
    await say(client, "messenger", "ana@example.com")  # the answer the run waited for
    await say(client, "messenger", "price")  # its keyword, from the same contact
    await say(client, "whatsapp", "pricing")  # and from a new one
    await outbox_empty(client)
    assert len(graph_api.requests) == 3
    assert [r["status"] for r in rows(workspace, "SELECT status FROM flow_runs")] == ["interrupted"]


async def test_a_deleted_flows_old_buttons_do_not_bring_it_back(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str], channels: None
) -> None:
    flow_id = await publish_flow(client, admin, pricing_document())
    await say(client, "messenger", "price")
    first = (await sent(graph_api, 1))[0]
    assert (await client.delete(f"{FLOWS}/{flow_id}", headers=admin)).status_code == 204
    await tap(client, "messenger", reply_ids(first)[0][1], "Plans")  # the button sent before the delete
    await outbox_empty(client)
    assert texts_of(graph_api.requests) == ["Hi there! What would you like?"]
    assert [r["status"] for r in rows(workspace, "SELECT status FROM flow_runs")] == ["interrupted"]


async def test_a_deleted_flows_pending_delay_does_not_fire(
    client: AsyncTestClient, graph_api: GraphStandIn, admin: dict[str, str], channels: None, runtime: Any
) -> None:
    flow_id = await publish_flow(client, admin, reminder())
    await say(client, "whatsapp", "remind me")
    await sent(graph_api, 1)
    assert (await client.delete(f"{FLOWS}/{flow_id}", headers=admin)).status_code == 204
    await asyncio.to_thread(fire_due_timers, runtime, to_iso(utcnow() + timedelta(hours=2)))
    await outbox_empty(client)
    assert texts_of(graph_api.requests) == ["See you in an hour."]


async def test_an_agent_cannot_create_flows(client: AsyncTestClient, workspace: Workspace) -> None:
    response = await client.post(FLOWS, json=pricing_document(), headers=make_token(workspace, "agent"))
    assert error_of(response, 403)["code"] == "forbidden"


# --- publishing -------------------------------------------------------------------------------

async def test_publish_makes_version_1(client: AsyncTestClient, admin: dict[str, str]) -> None:
    created = await create(client, admin, pricing_document())
    response = await client.post(f"{FLOWS}/{created['id']}/publish", headers=admin)
    assert (response.status_code, response.json()) == (200, {"version": 1, "warnings": []})
    fetched = await get(client, admin, created["id"])
    assert (fetched["status"], fetched["version"], fetched["has_unpublished_changes"]) == ("published", 1, False)


async def test_an_update_after_publishing_is_an_unpublished_change(
    client: AsyncTestClient, admin: dict[str, str]
) -> None:
    flow_id = await publish_flow(client, admin, pricing_document())
    changed = pricing_document()
    changed["steps"]["bye"]["text"] = "Thanks a lot!"
    assert (await client.put(f"{FLOWS}/{flow_id}", json=changed, headers=admin)).status_code == 200
    fetched = await get(client, admin, flow_id)
    assert (fetched["status"], fetched["version"], fetched["has_unpublished_changes"]) == ("published", 1, True)
    again = await client.post(f"{FLOWS}/{flow_id}/publish", headers=admin)
    assert again.json() == {"version": 2, "warnings": []}
    fetched = await get(client, admin, flow_id)
    assert (fetched["version"], fetched["has_unpublished_changes"]) == (2, False)


async def test_published_versions_are_immutable(client: AsyncTestClient, admin: dict[str, str]) -> None:
    flow_id = await publish_flow(client, admin, pricing_document())
    changed = pricing_document()
    changed["steps"]["bye"]["text"] = "Version two."
    await client.put(f"{FLOWS}/{flow_id}", json=changed, headers=admin)
    await client.post(f"{FLOWS}/{flow_id}/publish", headers=admin)
    await client.put(f"{FLOWS}/{flow_id}", json=pricing_document() | {"name": "Draft three"}, headers=admin)
    v1 = await client.get(f"{FLOWS}/{flow_id}/export", params={"version": 1}, headers=admin)
    v2 = await client.get(f"{FLOWS}/{flow_id}/export", params={"version": 2}, headers=admin)
    assert same_flow(v1.json(), pricing_document())
    assert same_flow(v2.json(), changed)


async def test_the_published_version_runs_until_the_next_publish(
    client: AsyncTestClient, graph_api: GraphStandIn, admin: dict[str, str], channels: None
) -> None:
    flow_id = await publish_flow(client, admin, reminder("Version one."))
    assert (await client.put(f"{FLOWS}/{flow_id}", json=reminder("Version two."), headers=admin)).status_code == 200
    await say(client, "messenger", "remind me")
    assert texts_of(await sent(graph_api, 1)) == ["Version one."]
    await client.post(f"{FLOWS}/{flow_id}/publish", headers=admin)
    await say(client, "whatsapp", "remind me")
    assert texts_of((await sent(graph_api, 2))[1:]) == ["Version two."]


LOOP = {"type": "condition", "if": [{"field": "contact.fields.plan", "op": "exists"}],
        "then": "thanks", "else": "bye"}


async def test_publish_refuses_a_silent_cycle_and_names_it(client: AsyncTestClient, admin: dict[str, str]) -> None:
    raw = with_step("loop", LOOP)
    raw["steps"]["thanks"]["next"] = "loop"
    created = await create(client, admin, raw)  # a draft may loop; a published flow may not
    response = await client.post(f"{FLOWS}/{created['id']}/publish", headers=admin)
    error = error_of(response, 422)
    assert error["code"] == "invalid_flow"
    assert [d["path"] for d in error["details"]] == ["steps.thanks"]
    assert "thanks -> loop -> thanks" in error["details"][0]["message"]
    fetched = await get(client, admin, created["id"])
    assert (fetched["status"], fetched["version"]) == ("draft", 0)


@pytest.mark.parametrize("raw, path, channel", [
    (with_step("x", {"type": "message", "cards": [{"title": "Card"}]}, settings={"channels": ["whatsapp"]}),
     "steps.x", "whatsapp"),
    (pricing_document() | {"steps": pricing_document()["steps"] | {
        "plans": {"type": "message", "text": "x" * 1001, "next": "ask_email"}}}, "steps.plans", "instagram"),
], ids=["cards-on-whatsapp", "long-text-on-instagram"])
async def test_publish_refuses_content_a_targeted_channel_cannot_render(
    client: AsyncTestClient, admin: dict[str, str], raw: dict[str, Any], path: str, channel: str
) -> None:
    created = await create(client, admin, raw)
    error = error_of(await client.post(f"{FLOWS}/{created['id']}/publish", headers=admin), 422)
    assert error["code"] == "invalid_flow"
    assert [d["path"] for d in error["details"]] == [path]
    assert error["details"][0]["message"].startswith(f"cannot be sent on {channel}: ")


async def test_publish_with_an_unreachable_step_succeeds_with_a_warning(
    client: AsyncTestClient, admin: dict[str, str]
) -> None:
    created = await create(client, admin, with_step("orphan", {"type": "message", "text": "Nobody gets here."}))
    response = await client.post(f"{FLOWS}/{created['id']}/publish", headers=admin)
    assert response.status_code == 200, response.text
    assert response.json() == {"version": 1, "warnings": [
        {"path": "steps.orphan", "message": "no path from `start` reaches this step"}]}


# --- documents that are refused -----------------------------------------------------------------

def _changed(change: Any) -> dict[str, Any]:
    raw = pricing_document()
    change(raw)
    return raw


def _options(n: int) -> list[dict[str, str]]:
    return [{"title": f"Option {i}", "next": "plans"} for i in range(n)]


def _several(raw: dict[str, Any]) -> None:
    raw["steps"]["hello"]["colour"] = "blue"
    raw["steps"]["plans"]["next"] = "nope"
    raw["steps"]["ask_email"]["validate"] = "regex:("
    raw["steps"]["ask_email"]["max_retries"] = "many"
    raw["triggers"][0]["match"] = "fuzzy"


BAD_DOCUMENTS = [
    ("unknown-next", _changed(lambda r: r["steps"]["plans"].update(next="thx")), ["steps.plans.next"]),
    ("unknown-button-target", _changed(lambda r: r["steps"]["hello"]["buttons"][1].update(next="nowhere")),
     ["steps.hello.buttons.1.next"]),
    ("missing-start", _changed(lambda r: r.pop("start")), ["start"]),
    ("unknown-start", _changed(lambda r: r.update(start="nowhere")), ["start"]),
    ("wrong-type", _changed(lambda r: r["steps"]["ask_email"].update(max_retries="two")),
     ["steps.ask_email.max_retries"]),
    ("wrong-type-in-trigger", _changed(lambda r: r["triggers"][0].update(keywords="price")),
     ["triggers.0.keywords"]),
    ("unknown-top-level-field", _changed(lambda r: r.update(colour="blue")), ["colour"]),
    ("unknown-step-field", _changed(lambda r: r["steps"]["plans"].update(colour="blue")), ["steps.plans.colour"]),
    ("unknown-step-type", with_step("x", {"type": "teleport"}), ["steps.x.type"]),
    ("bad-regex", _changed(lambda r: r["steps"]["ask_email"].update(validate="regex:(")),
     ["steps.ask_email.validate"]),
    ("11-buttons", with_step("x", {"type": "message", "text": "Pick", "buttons": _options(11)}), ["steps.x.buttons"]),
    ("14-quick-replies", with_step("x", {"type": "message", "text": "Pick", "quick_replies": _options(14)}),
     ["steps.x.quick_replies"]),
    ("11-cards", with_step("x", {"type": "message", "cards": [{"title": f"Card {i}"} for i in range(11)]}),
     ["steps.x.cards"]),
    ("several-at-once", _changed(_several), sorted([
        "steps.hello.colour", "steps.plans.next", "steps.ask_email.validate", "steps.ask_email.max_retries",
        "triggers.0.match"])),
    ("several-references", _changed(lambda r: (r.update(start="nope"), r["steps"]["plans"].update(next="zz"))),
     ["start", "steps.plans.next"]),
]


@on_shared_app
@pytest.mark.parametrize("raw, paths", [(r, p) for _, r, p in BAD_DOCUMENTS], ids=[c[0] for c in BAD_DOCUMENTS])
async def test_create_refuses_a_bad_document_with_every_path_and_stores_nothing(
    shared: Shared, raw: dict[str, Any], paths: list[str]
) -> None:
    client, admin = shared.client, make_token(shared.workspace, "admin")
    await create(client, admin, pricing_document())
    before = (await listed(client, admin), snapshot(shared.workspace, "flows", "flow_versions"))
    error = error_of(await client.post(FLOWS, json=raw, headers=admin), 422)
    assert error["code"] == "invalid_flow"
    assert sorted(d["path"] for d in error["details"]) == paths
    assert all(d["message"] for d in error["details"])
    assert (await listed(client, admin), snapshot(shared.workspace, "flows", "flow_versions")) == before


@on_shared_app
@pytest.mark.parametrize("raw, paths", [(r, p) for _, r, p in BAD_DOCUMENTS], ids=[c[0] for c in BAD_DOCUMENTS])
async def test_update_refuses_a_bad_document_and_keeps_the_draft(
    shared: Shared, raw: dict[str, Any], paths: list[str]
) -> None:
    client, admin = shared.client, make_token(shared.workspace, "admin")
    created = await create(client, admin, pricing_document())
    error = error_of(await client.put(f"{FLOWS}/{created['id']}", json=raw, headers=admin), 422)
    assert (error["code"], sorted(d["path"] for d in error["details"])) == ("invalid_flow", paths)
    assert await get(client, admin, created["id"]) == created


@on_shared_app
async def test_an_unknown_reference_is_explained(shared: Shared) -> None:
    raw = pricing_document()
    raw["steps"]["ask_email"]["next"] = "thx"
    response = await shared.client.post(FLOWS, json=raw, headers=make_token(shared.workspace, "admin"))
    assert error_of(response, 422)["details"] == [{"path": "steps.ask_email.next", "message": 'unknown step "thx"'}]


@pytest.mark.parametrize("step", [
    {"type": "message", "text": "Pick", "buttons": _options(10)},
    {"type": "message", "text": "Pick", "quick_replies": _options(13)},
    {"type": "message", "cards": [{"title": f"Card {i}"} for i in range(10)]},
], ids=["10-buttons", "13-quick-replies", "10-cards"])
@on_shared_app
async def test_at_the_limits_a_document_is_stored(shared: Shared, step: dict[str, Any]) -> None:
    await create(shared.client, make_token(shared.workspace, "admin"), with_step("x", step))


@pytest.mark.parametrize("method, body", [("POST", [1, 2]), ("POST", "a flow"), ("PUT", None)],
                         ids=["post-list", "post-string", "put-null"])
@on_shared_app
async def test_a_body_that_is_not_an_object_is_an_invalid_flow(shared: Shared, method: str, body: Any) -> None:
    admin = make_token(shared.workspace, "admin")
    created = await create(shared.client, admin, pricing_document())
    before = snapshot(shared.workspace, "flows")
    url = FLOWS if method == "POST" else f"{FLOWS}/{created['id']}"
    response = await shared.client.request(method, url, content=json.dumps(body),
                                           headers={**admin, "Content-Type": "application/json"})
    assert snapshot(shared.workspace, "flows") == before
    error = error_of(response, 422)
    assert (error["code"], [d["path"] for d in error["details"]]) == ("invalid_flow", ["$"])


# --- the JSON Schema ----------------------------------------------------------------------------

@on_shared_app
async def test_the_schema_is_a_json_schema_the_spec_example_satisfies(shared: Shared) -> None:
    response = await shared.client.get(f"{FLOWS}/schema", headers=make_token(shared.workspace, "admin"))
    assert response.status_code == 200, response.text
    schema = response.json()
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    assert list(validator.iter_errors(pricing_document())) == []
    typo = pricing_document() | {"colour": "blue"}
    assert [e.validator for e in validator.iter_errors(typo)] == ["additionalProperties"]


@on_shared_app
async def test_an_agent_may_read_the_schema_but_not_the_flows(shared: Shared) -> None:
    agent = make_token(shared.workspace, "agent")
    assert (await shared.client.get(f"{FLOWS}/schema", headers=agent)).status_code == 200
    assert error_of(await shared.client.get(FLOWS, headers=agent), 403)["code"] == "forbidden"


# --- export and import --------------------------------------------------------------------------

async def test_export_is_a_download_that_imports_as_an_equal_flow(
    client: AsyncTestClient, admin: dict[str, str]
) -> None:
    original = await create(client, admin, pricing_document())
    exported = await client.get(f"{FLOWS}/{original['id']}/export", headers=admin)
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("application/json")
    assert exported.headers["content-disposition"] == (
        'attachment; filename="Pricing-questions.aat-flow.json"; filename*=UTF-8\'\'Pricing%20questions.aat-flow.json')
    assert exported.json() == original["document"]
    imported = await client.post(FLOWS, content=exported.content,
                                 headers={**admin, "Content-Type": "application/json"})
    assert imported.status_code == 201, imported.text
    copy = imported.json()
    assert copy["id"] != original["id"]
    assert (copy["name"], copy["status"], copy["document"]) == (original["name"], "draft", original["document"])
    again = await client.get(f"{FLOWS}/{copy['id']}/export", headers=admin)
    assert again.content == exported.content


async def test_export_of_a_published_version(client: AsyncTestClient, admin: dict[str, str]) -> None:
    flow_id = await publish_flow(client, admin, reminder("Version one."))
    await client.put(f"{FLOWS}/{flow_id}", json=reminder("Draft two."), headers=admin)
    published = await client.get(f"{FLOWS}/{flow_id}/export", params={"version": 1}, headers=admin)
    draft = await client.get(f"{FLOWS}/{flow_id}/export", headers=admin)
    assert published.headers["content-disposition"].startswith("attachment; ")
    assert published.json()["steps"]["ok"]["text"] == "Version one."
    assert draft.json()["steps"]["ok"]["text"] == "Draft two."


@pytest.mark.parametrize("name", ["ფასები", "Цены 2026"])
@on_shared_app
async def test_export_of_a_flow_with_a_non_latin_name(shared: Shared, name: str) -> None:
    admin = make_token(shared.workspace, "admin")
    created = await create(shared.client, admin, pricing_document() | {"name": name})
    exported = await shared.client.get(f"{FLOWS}/{created['id']}/export", headers=admin)
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-disposition"].startswith("attachment; ")
    assert exported.json()["name"] == name
