"""The broadcast send path's parts (appliance/outbox/bulk.py) against the Graph stand-in and a
real workspace: GraphWire keeps post_message's contract (the exact request, Meta's answer,
its errors and waits, a dead connection); the Recorder commits many outcomes together, and
one that fails rolls back alone."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from appliance.outbox.bulk import GraphWire, Recorder
from appliance.store.workspace import Workspace
from tests.appliance.api_helpers import rows
from tests.standins.graph_api import GraphStandIn, Scripted

PHONE = "109000000000777"
BODY = {"messaging_product": "whatsapp", "to": "995555000111", "type": "template",
        "template": {"name": "spring_sale", "language": {"code": "en_US"}},
        "biz_opaque_callback_data": "aat:7"}


def url(graph_api: GraphStandIn) -> str:
    return f"{graph_api.base_url}/v23.0/{PHONE}/messages"


async def test_graph_wire_sends_the_body_and_reads_meta_s_answers(graph_api: GraphStandIn) -> None:
    wire = GraphWire(user_agent="aat-appliance/test", timeout=5.0, connections=4)
    graph_api.fail_next(PHONE, GraphStandIn.graph_error(130429, headers={"Retry-After": "7"}),
                        Scripted(status=200, body=b"accepted"))
    try:
        throttled = await wire.post_whatsapp(url(graph_api), "EAAG-token", BODY)
        not_json = await wire.post_whatsapp(url(graph_api), "EAAG-token", BODY)
        sent = await wire.post_whatsapp(url(graph_api), "EAAG-token", BODY)
    finally:
        await wire.aclose()
    assert (throttled.ok, throttled.error.code, throttled.error.http_status, throttled.retry_after) == (
        False, 130429, 400, 7.0)
    assert (not_json.ok, not_json.external_id) == (True, None)
    assert sent.ok and sent.external_id and sent.external_id.startswith("wamid.")
    request = graph_api.sends_to(PHONE)[-1]
    assert request.json == BODY
    assert request.headers["authorization"] == "Bearer EAAG-token"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "aat-appliance/test"


async def test_graph_wire_reports_a_dead_endpoint_as_a_failed_connection() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once the socket is closed
    wire = GraphWire(user_agent="aat-appliance/test", timeout=2.0, connections=1)
    try:
        result = await wire.post_whatsapp(f"http://127.0.0.1:{port}/v23.0/{PHONE}/messages", "t", BODY)
    finally:
        await wire.aclose()
    assert (result.ok, result.error.code, result.error.message) == (False, None, "connection failed")


def _note(db, text: str) -> int:  # noqa: ANN001 - a store function, as the gateway calls it
    if text == "bad":
        db.conn.execute("INSERT INTO bulk_notes (text) VALUES (NULL)")  # NOT NULL: fails alone
    return int(db.conn.execute("INSERT INTO bulk_notes (text) VALUES (?)", [text]).lastrowid)


async def test_the_recorder_commits_together_and_a_failing_write_rolls_back_alone(
    workspace: Workspace,
) -> None:
    gateway = workspace.gateway
    gateway.write_sync(lambda db: db.conn.execute(
        "CREATE TABLE IF NOT EXISTS bulk_notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)"))
    commits: list[int] = []
    gateway.on_commit.append(lambda: commits.append(1))
    recorder = Recorder(gateway)
    try:
        outcomes = await asyncio.gather(*(recorder.write(_note, text) for text in
                                          ["a", "b", "bad", "c", *[f"n{i}" for i in range(40)]]),
                                        return_exceptions=True)
    finally:
        gateway.on_commit.clear()
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 1 and "NOT NULL" in str(failed[0])
    stored = [r["text"] for r in rows(workspace, "SELECT text FROM bulk_notes ORDER BY id")]
    assert stored == ["a", "b", "c", *[f"n{i}" for i in range(40)]]
    # The first write goes at once; everything queued behind it shares the next commit.
    assert len(commits) <= 3 < len(outcomes)
    assert json.dumps(sorted(o for o in outcomes if isinstance(o, int))) == json.dumps(
        sorted(r["id"] for r in rows(workspace, "SELECT id FROM bulk_notes")))


@pytest.fixture(autouse=True)
def _phone_rate(graph_api: GraphStandIn) -> None:
    graph_api.rate_limits[PHONE] = 1000
