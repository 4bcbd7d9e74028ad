"""The Broadcasts pages as rendered by the server: who may open them, what the list shows of a
broadcast (status, progress, counts, reasons, the actions it allows), what the form offers
(flows a button can start, approved templates only, the workspace's time zone), and that they
carry no inline code and label every control. The browser side: tests/e2e/browser/test_broadcasts.py."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from litestar.testing import AsyncTestClient

from appliance.store.workspace import Workspace
from appliance.web.pages.broadcasts import broadcast_view
from appliance.web.pages.common import CSP
from tests.appliance.broadcast_helpers import ORDER_READY, SPRING_SALE, catalogue, connect, create, sync_templates
from tests.appliance.web_helpers import csrf_of, sign_in
from tests.helpers import make_token
from tests.standins.graph_api import GraphStandIn

PAGES = ["/broadcasts", "/broadcasts/new"]
FLOW = {"schema": "aat.flow/v1", "name": "Sale flow", "triggers": [{"type": "postback", "payload": "SALE"}],
        "start": "hello", "steps": {"hello": {"type": "message", "text": "On sale"}}}
NO_POSTBACK = {**FLOW, "name": "Keyword flow", "triggers": [{"type": "keyword", "keywords": ["hi"]}]}


def _item(status: str = "sending", complete: bool = True, **counts: int) -> dict[str, Any]:
    base = {"total": 10, "sent": 0, "delivered": 0, "read": 0, "failed": 0, "skipped": 0}
    return {"id": "1", "name": "Sale", "status": status, "status_reason": None, "audience": {},
            "message": {"text": "Hi"}, "send_at": None, "timezone": None, "counts": {**base, **counts},
            "skipped_reasons": {"unsubscribed": counts.get("skipped", 0)} if counts.get("skipped") else {},
            "progress": {"audience_complete": complete, "pending": 0, "queued": 0},
            "created_at": "2026-11-26T10:00:00.000Z", "started_at": None, "completed_at": None}


@pytest.mark.parametrize(("item", "done", "percent"), [
    (_item(sent=4, failed=1, skipped=2), 7, 70),
    (_item(complete=False, sent=3), 3, None),            # still counting the audience
    (_item(status="completed", total=0), 0, 100),        # nobody matched
])
def test_progress_counts_every_decided_recipient(item: dict[str, Any], done: int, percent: int | None) -> None:
    view = broadcast_view(item, ZoneInfo("UTC"))
    assert (view["done"], view["percent"]) == (done, percent)


@pytest.mark.parametrize(("status", "actions"), [
    ("draft", (True, False, True)), ("scheduled", (False, True, True)), ("sending", (False, True, True)),
    ("paused", (True, False, True)), ("completed", (False, False, False)), ("cancelled", (False, False, False)),
])
def test_the_actions_follow_the_status(status: str, actions: tuple[bool, bool, bool]) -> None:
    view = broadcast_view(_item(status), ZoneInfo("UTC"))
    assert (view["can_start"], view["can_pause"], view["can_cancel"]) == actions


async def test_anonymous_visitors_are_sent_to_sign_in(client: AsyncTestClient) -> None:
    for path in PAGES:
        response = await client.get(path, follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (303, f"/signin?next={path}")


async def test_agents_get_the_403_page_and_no_nav_line(client: AsyncTestClient, workspace: Workspace) -> None:
    await sign_in(client, workspace, "agent")
    for path in PAGES:
        response = await client.get(path)
        assert response.status_code == 403 and "for the admin role and above" in response.text
    assert 'href="/broadcasts"' not in (await client.get("/inbox")).text


async def test_pages_carry_the_security_headers_label_every_control_and_run_no_inline_code(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    connect(workspace, "whatsapp")
    await sign_in(client, workspace, "admin")
    for path in PAGES:
        response = await client.get(path)
        assert (response.status_code, response.headers["content-security-policy"]) == (200, CSP)
        page = response.text
        assert 'href="/broadcasts" class="nav-link active" aria-current="page"' in page
        for tag in re.findall(r"<script\b[^>]*>", page):
            assert re.search(r'\bsrc="/static/[a-z_]+\.js"', tag), tag
        assert not re.search(r"\s(?:on[a-z]+|style)\s*=", re.sub(r'"[^"]*"', '""', page))
        labelled = set(re.findall(r'<label[^>]*\bfor="([^"]+)"', page))
        for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", page):
            if 'type="radio"' in tag or 'type="checkbox"' in tag or 'type="hidden"' in tag:
                continue  # inside their label
            found = re.search(r'\bid="([^"]+)"', tag)
            assert found and found.group(1) in labelled, f"{path}: {tag}"
        for attributes, content in re.findall(r"<button\b([^>]*)>(.*?)</button>", page, flags=re.S):
            assert re.sub(r"<[^>]+>", "", content).strip() or "aria-label=" in attributes, path


async def test_the_list_shows_each_broadcast_with_its_progress_and_actions(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    connect(workspace, "whatsapp")
    auth = make_token(workspace, "admin")
    draft = await create(client, auth, {"text": "Hi <b>there</b>"})
    await create(client, auth, {"text": "Later"}, send_at="2099-01-01T09:00:00", timezone="Asia/Tbilisi")
    await sign_in(client, workspace, "admin")
    page = (await client.get("/broadcasts")).text
    rows = re.findall(r'<tr data-broadcast-id="(\d+)" data-status="(\w+)">', page)
    assert rows == [(str(int(draft["id"]) + 1), "draft"), (draft["id"], "draft")]  # newest first
    assert "Hi &lt;b&gt;there&lt;/b&gt;" in page and "<b>there</b>" not in page
    assert '<time datetime="2099-01-01T05:00:00.000Z">' in page and "given in Asia/Tbilisi" in page
    assert 'aria-label="Send Spring sale"' in page and 'data-action="pause" hidden' in page


async def test_the_form_offers_flows_with_a_postback_and_approved_templates_only(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    connect(workspace, "whatsapp")
    auth = make_token(workspace, "admin")
    for document in (FLOW, NO_POSTBACK):
        flow = await client.post("/api/v1/flows", json=document, headers=auth)
        assert (await client.post(f"/api/v1/flows/{flow.json()['id']}/publish", headers=auth)).status_code == 200
    catalogue(graph_api, SPRING_SALE, {**ORDER_READY, "status": "PENDING"})
    await sync_templates(client, auth)
    await sign_in(client, workspace, "admin")
    response = await client.get("/broadcasts/new")
    page = response.text
    flows = re.search(r'<template id="flow-options">(.*?)</template>', page, flags=re.S)
    assert flows and re.findall(r">([^<]+)</option>", flows.group(1)) == ["Sale flow"]
    assert re.findall(r'data-name="([a-z_]+)"', page) == ["spring_sale"]
    assert '<option selected>UTC</option>' in page  # the workspace's zone is preselected
    assert csrf_of(page)
