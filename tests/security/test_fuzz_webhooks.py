"""Mutated but correctly signed webhook bodies against one running appliance.

The fixtures' bodies, mutated (:mod:`tests.security.mutations`: fields dropped, wrong types,
huge strings, unicode, deep nesting), signed with the app secret and POSTed to
``/webhooks/meta``. The contract (DESIGN invariants 2, 3 and 5):

- the answer is never a 5xx: 200 for a JSON object (journaled), 400 ``invalid_json`` for any
  other body, 413 over 1 MiB;
- the journal processor gets through every row it acknowledged: none stays pending, none is
  marked failed by an exception while applying it (bad parts are parse problems, not crashes);
- afterwards a normal message is still processed end to end: stored, and answered by a
  published flow through the Graph API stand-in (the pipeline is not wedged).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from appliance.app import create_app
from appliance.ingest import journal
from appliance.ingest.routes import MAX_BODY_BYTES
from appliance.settings import Settings
from appliance.store.rows import many, scalar
from appliance.store.workspace import Workspace, open_workspace
from tests.conftest import (
    APP_SECRET,
    FIXTURES,
    MASTER_KEY,
    VERIFY_TOKEN,
    fixture_json,
    signed_headers,
)
from tests.helpers import connect_channel, make_token
from tests.security.mutations import mutated
from tests.standins.graph_api import GraphStandIn

DELIVERIES = sorted(p.stem for p in FIXTURES.glob("*.json"))
PAGE_ID = "112233445566778"  # the Page of the messenger fixtures
FLOW = json.loads((Path(__file__).parents[1] / "fixtures" / "flows" / "pricing.json").read_text())


@dataclass(frozen=True)
class App:
    client: TestClient
    workspace: Workspace
    graph: GraphStandIn


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """One appliance (real lifespan: journal processor and sender) with the Messenger Page
    connected and the pricing flow published, for the whole module."""
    graph = GraphStandIn().start()
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("fuzz-webhooks") / "data", master_key=MASTER_KEY,
        meta_app_secret=APP_SECRET, meta_verify_token=VERIFY_TOKEN, graph_api_base=graph.base_url,
        instagram_api_base=graph.base_url, send_backoff_base_seconds=0.05, send_in_doubt_grace_seconds=0,
        http_timeout_seconds=2,
    )
    workspace = open_workspace(settings)
    try:
        with TestClient(app=create_app(settings, workspace=workspace, run_queue=False)) as client:
            connect_channel(workspace, "messenger", PAGE_ID)
            admin = make_token(workspace, "admin")
            created = client.post("/api/v1/flows", json=FLOW, headers=admin)
            assert created.status_code == 201, created.text
            published = client.post(f"/api/v1/flows/{created.json()['id']}/publish", headers=admin)
            assert published.status_code == 200, published.text
            yield App(client, workspace, graph)
    finally:
        workspace.close()
        graph.stop()


ACKNOWLEDGED: list[bytes] = []  # every body answered 200 in this module, in order


def _post(app: App, body: bytes) -> int:
    status = app.client.post("/webhooks/meta", content=body, headers=signed_headers(body)).status_code
    if status == 200:
        ACKNOWLEDGED.append(body)
    return status


def _settled(app: App, timeout: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lag = app.workspace.gateway.read_sync(journal.lag)
        if lag["pending"] == 0:
            return lag
        time.sleep(0.05)
    raise AssertionError("the journal processor is wedged: rows stay pending")


def _expected(body: bytes) -> int:
    """413 over the limit; 200 for a JSON object of valid Unicode; 400 for anything else (a
    lone surrogate escape is valid JSON syntax but no text: it is refused as not JSON)."""
    if len(body) > MAX_BODY_BYTES:
        return 413
    try:
        doc = json.loads(body)
        json.dumps(doc, ensure_ascii=False).encode()
    except (ValueError, RecursionError):
        return 400
    return 200 if isinstance(doc, dict) else 400


def _mutated_bodies(count: int) -> list[bytes]:
    """``count`` hypothesis-mutated fixture bodies. Drawn before any is posted: hypothesis
    checks that nothing touches the global ``random`` while it draws, and the app's workers
    (retry jitter) would, once they have work."""
    bodies: list[bytes] = []

    @settings(max_examples=count, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(doc=st.sampled_from(DELIVERIES).flatmap(lambda name: mutated(fixture_json(name), max_string=300_000)))
    def draw(doc: object) -> None:
        bodies.append(json.dumps(doc).encode())

    draw()
    return bodies


def test_mutated_signed_bodies_never_get_a_5xx(app: App) -> None:
    bodies = _mutated_bodies(60)
    assert len(bodies) >= 50
    answers = [(_post(app, body), _expected(body)) for body in bodies]
    wrong = [(i, got, want, bodies[i][:300]) for i, (got, want) in enumerate(answers) if got != want]
    assert wrong == []
    assert {want for _, want in answers} >= {200, 400}, "the mutations reach both outcomes"


@pytest.mark.parametrize("body, status", [
    (b'{"object": "page", "entry": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400),  # deeper than any decoder goes
    (b'{"object": "page", "entry": ' + b"[" * 500 + b"]" * 500 + b"}", 200),
    (b'{"object": "page", "entry": [{"id": "\\ud800", "messaging": [{"sender": {"id": "\\udfff"}}]}]}', 400),
    (b'{"object": "page", "entry": [{"id": "1"}]} trailing', 400),
    (b"\xff\xfe{}", 400),
    (b'{"object": ' + b'"' + b"x" * (MAX_BODY_BYTES + 10) + b'"}', 413),
    (b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"messages": '
     + json.dumps([{"id": f"wamid.{i}", "type": "text"} for i in range(5000)]).encode() + b"}}]}]}", 200),
], ids=["nested-100k", "nested-500", "lone-surrogates", "trailing-garbage", "not-utf8", "oversize", "5000-messages"])
def test_hostile_raw_bodies(app: App, body: bytes, status: int) -> None:
    assert _expected(body) == status
    assert _post(app, body) == status


def test_the_pipeline_still_works_afterwards(app: App) -> None:
    """Runs after the storms above (file order): every acknowledged row was processed or set
    aside with a parse problem; none crashed the applier; a new message gets its flow reply."""
    lag = _settled(app)
    crashed = app.workspace.gateway.read_sync(lambda db: many(
        db, "SELECT id, error FROM webhook_journal WHERE error LIKE '%could not be applied%'"))
    assert crashed == [], crashed
    journaled = app.workspace.gateway.read_sync(lambda db: [bytes(r["body"]) for r in many(
        db, "SELECT body FROM webhook_journal ORDER BY id")])
    assert len(ACKNOWLEDGED) >= 20, "the storm reached the journal"
    assert journaled == ACKNOWLEDGED, "an acknowledged body is missing or changed"
    assert lag["pending"] == 0

    body = fixture_json("messenger_text")
    event = body["entry"][0]["messaging"][0]
    event["sender"]["id"] = "2469999000111222"
    event["timestamp"] = body["entry"][0]["time"] = int(time.time() * 1000)
    event["message"] = {"mid": "m_after_the_storm", "text": "what is the price?"}
    assert _post(app, json.dumps(body).encode()) == 200
    _settled(app)
    stored = app.workspace.gateway.read_sync(lambda db: scalar(
        db, "SELECT count(*) FROM messages WHERE external_id = 'm_after_the_storm'"))
    assert stored == 1
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not app.graph.sends_to(PAGE_ID):
        time.sleep(0.05)
    replies = [r.json for r in app.graph.sends_to(PAGE_ID) if r.json["recipient"] == {"id": "2469999000111222"}]
    assert len(replies) == 1, replies
    assert replies[0]["message"]["attachment"]["payload"]["text"] == "Hi there! What would you like?"
