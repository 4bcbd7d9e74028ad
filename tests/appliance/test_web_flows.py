"""The flows pages and the dashboard, server side: who may open them (agents get the 403 page
on the builder, everyone gets the dashboard), what the list and the builder shell show (status,
versions, triggers, escaped names), the dashboard's numbers (messages by channel and direction,
new contacts, completions, AI replies, the median first response of agents) and its chart
geometry."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

from appliance.flows import analytics
from appliance.flows import store as flows
from appliance.store.workspace import Workspace
from appliance.timeutil import iso_now, to_iso, utcnow
from appliance.web.pages.common import CSP
from appliance.web.pages.dashboard import bar_chart, duration_words
from appliance.web.pages.flows import trigger_summary
from tests.appliance.api_helpers import Shared, on_shared_app, shared  # noqa: F401
from tests.appliance.web_helpers import add_message, conversation, sign_in

HOSTILE = '<script>alert("x")</script>'
EXAMPLE = {
    "schema": "aat.flow/v1", "name": "Pricing questions",
    "triggers": [{"type": "keyword", "keywords": ["price", "pricing"], "channels": ["messenger"]}],
    "start": "hello",
    "steps": {"hello": {"type": "message", "text": "Hi!", "buttons": [{"title": "Plans", "next": "bye"}]},
              "bye": {"type": "message", "text": "Bye."}},
}


class Web:
    def __init__(self, client: AsyncTestClient, workspace: Workspace) -> None:
        self.client, self.workspace, self.cookies = client, workspace, {}

    async def login(self, role: str) -> None:
        if role not in self.cookies:
            await sign_in(self.client, self.workspace, role)
            self.cookies[role] = self.client.cookies.get("aat-session")
        self.client.cookies.clear()
        self.client.cookies.set("aat-session", self.cookies[role])

    def flow(self, document: dict[str, Any], *, publish: int = 0) -> int:
        def write(db: Any) -> int:
            flow_id = int(flows.create_flow(db, document, iso_now())["id"])
            for _ in range(publish):
                flows.publish(db, flow_id, document, iso_now())
            return flow_id

        return self.workspace.gateway.write_sync(write)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def web(shared: Shared) -> AsyncIterator[Web]:  # noqa: F811 - shared is a fixture
    yield Web(shared.client, shared.workspace)


# --- access --------------------------------------------------------------------------------------

@on_shared_app
@pytest.mark.parametrize("path", ["/flows", "/flows/new", "/flows/1", "/dashboard"])
async def test_anonymous_visitors_are_sent_to_sign_in(web: Web, path: str) -> None:
    web.client.cookies.clear()
    response = await web.client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/signin?next={path}"


@on_shared_app
async def test_agents_cannot_open_the_flows_list_or_the_builder(web: Web) -> None:
    flow_id = web.flow(EXAMPLE)
    await web.login("agent")
    for path in ("/flows", "/flows/new", f"/flows/{flow_id}"):
        response = await web.client.get(path)
        assert response.status_code == 403, path
        assert "This page is for the admin role and above" in response.text
        assert "flow_editor.js" not in response.text and "Pricing questions" not in response.text


@on_shared_app
async def test_the_nav_shows_flows_to_admins_and_the_dashboard_to_everyone(web: Web) -> None:
    await web.login("agent")
    page = (await web.client.get("/dashboard")).text
    assert 'href="/dashboard"' in page and 'href="/flows"' not in page
    await web.login("admin")
    page = (await web.client.get("/dashboard")).text
    assert 'href="/dashboard"' in page and 'href="/flows"' in page


# --- the list and the builder shell --------------------------------------------------------------

@on_shared_app
async def test_the_list_shows_status_versions_and_triggers_with_names_escaped(web: Web) -> None:
    published = web.flow({**EXAMPLE, "name": f"Sales {HOSTILE}"}, publish=2)
    draft = web.flow({**EXAMPLE, "name": "Only a draft", "triggers": []})
    await web.login("admin")
    page = (await web.client.get("/flows")).text
    row = re.search(rf'<tr data-flow-id="{published}">(.*?)</tr>', page, re.S)
    assert row, page
    assert "Sales &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in row.group(1) and HOSTILE not in page
    assert "Published" in row.group(1) and "<td>2</td>" in row.group(1)
    assert "Keyword: price, pricing · on Messenger" in row.group(1)
    draft_row = re.search(rf'<tr data-flow-id="{draft}">(.*?)</tr>', page, re.S)
    assert draft_row and "Draft" in draft_row.group(1) and "none (only reachable from other flows)" in draft_row.group(1)
    assert 'href="/flows/new"' in page


@on_shared_app
async def test_the_builder_lists_published_versions_for_restore(web: Web) -> None:
    flow_id = web.flow(EXAMPLE, publish=3)
    await web.login("admin")
    response = await web.client.get(f"/flows/{flow_id}")
    assert response.status_code == 200
    page = response.text
    assert f'data-flow-id="{flow_id}"' in page
    assert re.findall(r'data-restore="(\d+)"', page) == ["3", "2", "1"]
    assert '<button type="button" id="publish">Publish</button>' in page
    assert '<button type="button" class="secondary" id="save">Save</button>' in page
    assert '<script type="module" src="/static/flow_editor.js"></script>' in page


@on_shared_app
async def test_a_new_flow_opens_an_empty_builder_and_a_missing_one_the_404_page(web: Web) -> None:
    await web.login("admin")
    page = (await web.client.get("/flows/new")).text
    assert 'data-flow-id=""' in page and "Not published yet." in page
    missing = await web.client.get("/flows/999999")
    assert missing.status_code == 404 and "This flow does not exist" in missing.text
    deleted_id = web.flow(EXAMPLE)
    web.workspace.gateway.write_sync(lambda db: flows.delete_flow(db, deleted_id, iso_now()))
    assert (await web.client.get(f"/flows/{deleted_id}")).status_code == 404


@on_shared_app
@pytest.mark.parametrize("path", ["/flows", "/flows/new", "/dashboard"])
async def test_pages_carry_the_csp_and_no_inline_code(web: Web, path: str) -> None:
    await web.login("owner")
    response = await web.client.get(path)
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CSP
    for tag in re.findall(r"<script\b[^>]*>", response.text):
        assert re.search(r'\bsrc="/static/[a-z_]+\.js"', tag), tag
    for tag in re.findall(r"<[A-Za-z][^>]*>", response.text):
        tag = re.sub(r'"[^"]*"', '""', tag)
        assert not re.search(r"\s(on[a-z]+|style)\s*=", tag), tag


def test_trigger_summaries() -> None:
    assert trigger_summary({"type": "ref", "ref": "spring"}) == "Link (ref): spring"
    assert trigger_summary({"type": "welcome"}) == "Welcome"
    assert trigger_summary({"type": "comment", "keywords": list("abcdef")}) == "Comment: a, b, c, d, e…"


# --- the dashboard -------------------------------------------------------------------------------

def test_bar_chart_stacks_channels_and_scales_to_a_round_top() -> None:
    chart = bar_chart(["2026-11-01", "2026-11-02"], {"messenger": {"2026-11-01": 3}, "whatsapp": {"2026-11-01": 2,
                                                                                                   "2026-11-02": 1}})
    assert chart["total"] == 6
    assert [g["label"] for g in chart["grid"]] == ["0", "5"]  # top of 5 fits the tallest bar (5)
    first = [b for b in chart["bars"] if b["title"].startswith("2026-11-01")]
    assert [b["cls"] for b in first] == ["messenger", "whatsapp"]
    plot = chart["height"] - 22 - 8
    assert first[0]["h"] == pytest.approx(plot * 3 / 5, abs=0.01)
    assert first[1]["y"] + first[1]["h"] == pytest.approx(first[0]["y"], abs=0.02)  # stacked on top
    assert bar_chart(["2026-11-01"], {"total": {}})["bars"] == []


def test_durations_for_people() -> None:
    assert [duration_words(s) for s in (None, 42, 90, 5400, 172800)] == ["—", "42 s", "1.5 min", "1.5 h", "2.0 d"]


async def test_the_dashboard_counts_messages_contacts_completions_ai_and_first_responses(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    # Everything happens in the last ten minutes, none of it later than now: the dashboard's days
    # end at midnight UTC, and a reply stamped minutes ahead fell into tomorrow in a run at 23:58.
    start = utcnow() - timedelta(minutes=10)
    waits = []
    for seconds in (90, 30, 300):
        ids = await conversation(client, workspace, text="hello?")  # inbound Messenger, a new contact
        workspace.gateway.write_sync(lambda db, ids=ids: db.execute(
            "UPDATE messages SET created_at = ?, occurred_at = ? WHERE conversation_id = ?",
            [to_iso(start), to_iso(start), ids["conversation"]]))
        if seconds == 90:  # a bot answer in between is not an agent's answer
            add_message(workspace, ids, direction="out", sent_by="bot", status="sent", text="Bot here",
                        payload={"meta": {"provider": "anthropic", "model": "m"}}, created_at=to_iso(start + timedelta(seconds=10)))
        add_message(workspace, ids, direction="out", sent_by="user", status="sent", text="Agent here",
                    created_at=to_iso(start + timedelta(seconds=seconds + 2)))
        waits.append(seconds)
    flow_id = int(workspace.gateway.write_sync(lambda db: flows.create_flow(db, EXAMPLE, iso_now()))["id"])
    workspace.gateway.write_sync(lambda db: db.execute(
        "INSERT INTO flow_runs (flow_id, version, contact_id, status, trigger, started_at, updated_at, ended_at) "
        "VALUES (?, 1, (SELECT min(id) FROM contacts), 'completed', 'keyword', ?, ?, ?)",
        [flow_id, iso_now(), iso_now(), iso_now()]))

    since, until = to_iso(start - timedelta(days=1)), to_iso(start + timedelta(days=1))
    result = workspace.gateway.read_sync(lambda db: analytics.agent_first_responses(db, since, until))
    assert result["count"] == 3
    assert result["median_seconds"] == 92  # the agent's reply 92 s after the inbound at `start`

    await sign_in(client, workspace, "agent")
    page = (await client.get("/dashboard?days=7")).text
    kpi = dict(re.findall(r'<div class="kpi" id="kpi-([a-z]+)"><span class="value">([^<]+)</span>', page))
    assert kpi == {"inbound": "3", "outbound": "4", "contacts": "3", "completions": "1", "ai": "1",
                   "response": "1.5 min"}
    inbound = re.search(r'id="chart-inbound".*?</section>', page, re.S).group(0)
    assert re.findall(r'<rect class="bar-([a-z]+)"', inbound) == ["messenger"]
    assert f"{start.strftime('%Y-%m-%d')}: 3 Messenger" in inbound
    assert 'aria-label="Messages sent per day: 4 in total"' in page
    assert '<option value="7" selected>' in page
