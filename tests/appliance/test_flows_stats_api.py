"""``GET /api/v1/flows/{id}/stats``: runs by outcome, steps entered/completed, clicks, in a date range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from litestar.testing import AsyncTestClient

from appliance.store.workspace import Workspace
from appliance.timeutil import from_iso, to_iso, utcnow
from tests.appliance.api_helpers import (
    Shared,
    error_of,
    execute,
    on_shared_app,
    shared,  # noqa: F401 - a fixture
    value,
)
from tests.appliance.flow_helpers import pricing_document
from tests.appliance.flow_run_helpers import (
    publish_flow,
    reply_ids,
    say,
    sent,
    tap,
)
from tests.appliance.flows_api_helpers import (  # noqa: F401 - fixtures
    admin,
    channels,
    create,
)
from tests.helpers import make_token
from tests.standins.graph_api import GraphStandIn

FLOWS = "/api/v1/flows"


# --- stats --------------------------------------------------------------------------------------

async def stats(client: AsyncTestClient, headers: dict[str, str], flow_id: str, **params: str) -> httpx.Response:
    return await client.get(f"{FLOWS}/{flow_id}/stats", params=params, headers=headers)


async def two_runs_ten_days_apart(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str]
) -> tuple[str, str, str]:
    """A Messenger contact who clicked Plans ten days ago and a WhatsApp contact who wrote
    just now. Returns the flow id and the two runs' ``started_at``."""
    flow_id = await publish_flow(client, admin, pricing_document())
    await say(client, "messenger", "price")
    first = (await sent(graph_api, 1))[0]
    await tap(client, "messenger", reply_ids(first)[0][1], "Plans")
    await sent(graph_api, 3)
    old = to_iso(utcnow() - timedelta(days=10))
    execute(workspace, "UPDATE flow_runs SET started_at = ?", [old])
    execute(workspace, "UPDATE flow_step_events SET at = ?", [old])
    await say(client, "whatsapp", "price")
    await sent(graph_api, 4)
    recent = value(workspace, "SELECT started_at FROM flow_runs WHERE started_at > ?", [old])
    return flow_id, old, recent


async def test_stats_count_only_what_happened_in_the_range(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str], channels: None
) -> None:
    flow_id, old, _ = await two_runs_ten_days_apart(client, workspace, graph_api, admin)
    around_old = {"from": to_iso(from_iso(old) - timedelta(days=1)), "to": to_iso(from_iso(old) + timedelta(days=1))}
    then = (await stats(client, admin, flow_id, **around_old)).json()
    assert then["runs"]["started"] == 1
    assert then["steps"]["hello"] == {"entered": 1, "completed": 1, "clicks": {"Plans": 1}, "dropped": 0}
    assert set(then["steps"]) == {"hello", "plans", "ask_email"}
    last_hour = (await stats(client, admin, flow_id, **{"from": to_iso(utcnow() - timedelta(hours=1))})).json()
    assert last_hour["runs"]["started"] == 1
    assert last_hour["steps"] == {"hello": {"entered": 1, "completed": 0, "clicks": {}, "dropped": 1}}


async def test_stats_default_to_the_last_30_days(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str], channels: None
) -> None:
    flow_id, _, _ = await two_runs_ten_days_apart(client, workspace, graph_api, admin)
    response = await stats(client, admin, flow_id)
    body = response.json()
    assert body["runs"]["started"] == 2 and body["steps"]["hello"]["entered"] == 2
    span = from_iso(body["to"]) - from_iso(body["from"])
    assert span == timedelta(days=30)


async def test_the_range_includes_from_and_excludes_to(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str], channels: None
) -> None:
    flow_id, _, recent = await two_runs_ten_days_apart(client, workspace, graph_api, admin)
    starting = (await stats(client, admin, flow_id, **{"from": recent})).json()
    ending = (await stats(client, admin, flow_id, **{"from": to_iso(from_iso(recent) - timedelta(hours=1)),
                                                      "to": recent})).json()
    assert (starting["runs"]["started"], ending["runs"]["started"]) == (1, 0)


async def test_a_naive_time_means_utc(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str], channels: None
) -> None:
    flow_id, _, recent = await two_runs_ten_days_apart(client, workspace, graph_api, admin)
    naive = recent.removesuffix("Z")
    body = (await stats(client, admin, flow_id, **{"from": naive})).json()
    assert (body["from"], body["runs"]["started"]) == (recent, 1)


async def test_a_time_with_an_offset_is_converted_to_utc(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str], channels: None
) -> None:
    flow_id, _, recent = await two_runs_ten_days_apart(client, workspace, graph_api, admin)
    tbilisi = from_iso(recent).astimezone(timezone(timedelta(hours=4))).isoformat()
    body = (await stats(client, admin, flow_id, **{"from": tbilisi})).json()
    assert (body["from"], body["runs"]["started"]) == (recent, 1)


@pytest.mark.parametrize("params", [
    {"from": "yesterday"},
    {"to": "2026-02-30T00:00:00Z"},
    {"from": "2026-03-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
    {"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
    {"from": "2026-03-01T05:00:00+04:00", "to": "2026-03-01T01:00:00"},  # 01:00 UTC both: empty
    {"from": to_iso(datetime.now(UTC) + timedelta(days=1))},  # after `to`, which defaults to now
], ids=["not-a-time", "no-such-day", "from-equals-to", "from-after-to", "equal-after-utc", "from-in-future"])
@on_shared_app
async def test_stats_refuse_a_bad_range(shared: Shared, params: dict[str, str]) -> None:
    admin = make_token(shared.workspace, "admin")
    flow = await create(shared.client, admin, pricing_document())
    assert error_of(await stats(shared.client, admin, flow["id"], **params), 400)["code"] == "invalid_query"


@pytest.mark.parametrize("params", [
    {"to": "0001-01-01T00:00:00Z"},
    {"from": "9999-12-31T20:00:00Z", "to": "9999-12-31T23:00:00-05:00"},
], ids=["to-near-year-1", "to-past-year-9999-in-utc"])
@on_shared_app
async def test_stats_refuse_times_out_of_range(shared: Shared, params: dict[str, str]) -> None:
    admin = make_token(shared.workspace, "admin")
    flow = await create(shared.client, admin, pricing_document())
    assert error_of(await stats(shared.client, admin, flow["id"], **params), 400)["code"] == "invalid_query"


async def test_stats_from_a_year_before_1000(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str], channels: None
) -> None:
    flow_id, _, _ = await two_runs_ten_days_apart(client, workspace, graph_api, admin)
    body = (await stats(client, admin, flow_id, **{"from": "0999-01-01T00:00:00Z"})).json()
    assert (body["from"], body["runs"]["started"]) == ("0999-01-01T00:00:00.000Z", 2)


async def test_stats_of_an_unknown_flow_is_404(client: AsyncTestClient, admin: dict[str, str]) -> None:
    assert error_of(await stats(client, admin, "999"), 404)["code"] == "not_found"
