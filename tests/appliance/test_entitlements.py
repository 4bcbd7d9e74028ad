"""Entitlements in the appliance: the signed token, ``GET /api/v1/entitlements``, the control
plane's push (``PUT /entitlements``), and the limits enforced where quantities grow."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from litestar.testing import AsyncTestClient
from pydantic import SecretStr

from appliance.entitlements import FEATURE, report, report_usage
from appliance.queue import create_huey
from appliance.entitlements.token import InvalidEntitlement, load_public_key, sign, verify
from appliance.settings import Settings
from appliance.store.workspace import Workspace
from tests.appliance.flow_helpers import document
from tests.appliance.flow_run_helpers import ASSETS, publish_flow, say, sent
from tests.helpers import connect_channel, journal_settled, make_token
from tests.standins.graph_api import GraphStandIn
from tests.standins.loopback import LoopbackStandIn, StandInHandler

KEY = Ed25519PrivateKey.generate()
PUBLIC = base64.b64encode(KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
TENANT = "t_4f2a"
NOW = datetime.now(UTC).replace(microsecond=0)


def token(*, limits: dict[str, int] | None = None, plan: str = "starter", tenant: str = TENANT,
          issued: datetime = NOW, key: Ed25519PrivateKey = KEY, days: int = 30) -> str:
    return sign(key, tenant=tenant, plan=plan, limits=limits or {}, issued_at=issued,
                expires_at=issued + timedelta(days=days))


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"entitlements_public_key": PUBLIC, "tenant_id": TENANT})


def rows(workspace: Workspace, sql: str) -> list[tuple[Any, ...]]:
    return workspace.gateway.read_sync(lambda db: [tuple(r) for r in db.execute(sql).fetchall()])


# --- the token --------------------------------------------------------------------------------

def test_a_signed_token_verifies_to_its_plan_and_limits() -> None:
    found = verify(token(limits={"contacts": 500, "seats": 3}), load_public_key(PUBLIC), tenant=TENANT)
    assert (found.plan, found.tenant, found.limits, found.issued_at) == ("starter", TENANT, {"contacts": 500, "seats": 3}, NOW)


def _tampered(good: str) -> str:
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["limits"]["contacts"] = 10**9
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize(("make", "problem"), [
    (lambda: _tampered(token(limits={"contacts": 5})), "signature"),
    (lambda: token(key=Ed25519PrivateKey.generate()), "signature"),
    (lambda: token(tenant="t_other"), "another workspace"),
    (lambda: jwt.encode({"iss": "aat-control-plane", "sub": TENANT, "plan": "x", "iat": 1, "exp": 2}, None,
                        algorithm="none"), "not valid"),
    (lambda: jwt.encode({"iss": "aat-control-plane", "sub": TENANT, "plan": "x", "iat": 1, "exp": 2},
                        base64.b64decode(PUBLIC), algorithm="HS256"), "not valid"),
    (lambda: "not.a.token", "not valid"),
    (lambda: "", "empty"),
], ids=["tampered", "other-key", "other-tenant", "alg-none", "hs256-with-the-public-key", "garbage", "empty"])
def test_a_token_the_control_plane_did_not_sign_for_us_is_refused(make: Any, problem: str) -> None:
    with pytest.raises(InvalidEntitlement) as caught:
        verify(make(), load_public_key(PUBLIC), tenant=TENANT)
    assert problem in caught.value.message


def test_limits_must_be_known_counts() -> None:
    bad = jwt.encode({"iss": "aat-control-plane", "sub": TENANT, "plan": "x", "iat": 1, "exp": 2,
                      "limits": {"contacts": -1}}, KEY, algorithm="EdDSA")
    with pytest.raises(InvalidEntitlement, match="limits"):
        verify(bad, load_public_key(PUBLIC))


# --- the API ------------------------------------------------------------------------------------

async def test_without_an_entitlement_nothing_is_limited(client: AsyncTestClient, workspace: Workspace) -> None:
    response = await client.get("/api/v1/entitlements", headers=make_token(workspace, "agent"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["plan"], body["limits"], body["source"], body["limit_reached"]) == ("unlimited", {}, "none", [])
    assert body["usage"] == {"contacts": 0, "ai_replies_per_month": 0, "seats": 0, "channels": 0}


async def test_a_pushed_token_is_in_force_and_survives_a_restart(
    client: AsyncTestClient, workspace: Workspace, settings: Settings
) -> None:
    pushed = await client.put("/entitlements", json={"token": token(limits={"contacts": 100, "seats": 5})})
    assert pushed.status_code == 200, pushed.text
    got = (await client.get("/api/v1/entitlements", headers=make_token(workspace, "agent"))).json()
    assert (got["plan"], got["limits"], got["source"], got["expired"]) == (
        "starter", {"contacts": 100, "seats": 5}, "control_plane", False)
    assert got["expires_at"].startswith((NOW + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S"))
    assert rows(workspace, "SELECT action FROM audit_log WHERE action = 'entitlements.update'") == [
        ("entitlements.update",)]
    from appliance.entitlements.service import load

    assert workspace.gateway.write_sync(load, settings)["limits"] == {"contacts": 100, "seats": 5}


@pytest.mark.parametrize("body", [
    {"token": _tampered(token(limits={"contacts": 5}))}, {"token": token(tenant="t_other")},
    {"token": "x"}, {"tok": "x"}, [],
], ids=["tampered", "other-tenant", "garbage", "wrong-field", "not-an-object"])
async def test_a_bad_push_is_refused_and_changes_nothing(
    client: AsyncTestClient, workspace: Workspace, body: Any
) -> None:
    before = rows(workspace, "SELECT key, value FROM workspace_settings ORDER BY key")
    response = await client.put("/entitlements", json=body)
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["code"] in ("invalid_entitlement", "invalid_request", "bad_request")
    assert rows(workspace, "SELECT key, value FROM workspace_settings ORDER BY key") == before


async def test_an_older_token_cannot_roll_the_limits_back(client: AsyncTestClient) -> None:
    assert (await client.put("/entitlements", json={"token": token(limits={"contacts": 10})})).status_code == 200
    older = token(limits={"contacts": 10**6}, issued=NOW - timedelta(hours=1))
    response = await client.put("/entitlements", json={"token": older})
    assert (response.status_code, response.json()["error"]["code"]) == (409, "stale_entitlement")


# --- limits enforced --------------------------------------------------------------------------

async def test_a_team_member_beyond_the_seats_is_refused(client: AsyncTestClient, workspace: Workspace) -> None:
    owner = make_token(workspace, "owner")
    await client.put("/entitlements", json={"token": token(limits={"seats": 1})})
    first = await client.post("/api/v1/users", headers=owner, json={"email": "a@example.com", "role": "agent"})
    assert first.status_code == 201, first.text
    second = await client.post("/api/v1/users", headers=owner, json={"email": "b@example.com", "role": "agent"})
    assert (second.status_code, second.json()["error"]["code"]) == (422, "limit_reached")
    assert "allows 1 team members" in second.json()["error"]["message"]
    assert rows(workspace, "SELECT email FROM users ORDER BY id") == [("a@example.com",)]


async def test_a_channel_beyond_the_limit_is_refused_but_reconnecting_is_free(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    admin = make_token(workspace, "admin")
    await client.put("/entitlements", json={"token": token(limits={"channels": 1})})
    page = {"type": "messenger", "external_id": "100200300", "access_token": "EAAG-one"}
    assert (await client.post("/api/v1/channels", headers=admin, json=page)).status_code == 201
    again = await client.post("/api/v1/channels", headers=admin, json={**page, "access_token": "EAAG-two"})
    assert again.status_code == 201, again.text
    other = await client.post("/api/v1/channels", headers=admin,
                              json={"type": "instagram", "external_id": "17841400", "access_token": "IGQ-x"})
    assert (other.status_code, other.json()["error"]["code"]) == (422, "limit_reached")
    assert rows(workspace, "SELECT external_id FROM channels") == [("100200300",)]


async def test_a_contact_beyond_the_limit_is_stored_but_not_automated(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    connect_channel(workspace, "messenger", ASSETS["messenger"])
    admin = make_token(workspace, "admin")
    await client.put("/entitlements", json={"token": token(limits={"contacts": 1})})
    await publish_flow(client, admin, document({"hi": {"type": "message", "text": "Hello!"}},
                                               triggers=[{"type": "default"}]))
    await say(client, "messenger", "hi", sender="2460000000000001")
    await sent(graph_api, 1)
    await say(client, "messenger", "hi", sender="2460000000000002")
    await say(client, "messenger", "again", sender="2460000000000001")
    await sent(graph_api, 2)
    await journal_settled(client)
    recipients = [r.json["recipient"]["id"] for r in graph_api.requests]
    assert recipients == ["2460000000000001", "2460000000000001"]
    assert rows(workspace, "SELECT COUNT(*) FROM messages WHERE direction = 'in'") == [(3,)]
    got = (await client.get("/api/v1/entitlements", headers=admin)).json()
    assert (got["usage"]["contacts"], got["limit_reached"], got["over_limit"]) == (2, ["contacts"], ["contacts"])
    reported = workspace.gateway.read_sync(report.counts, datetime.now(UTC))
    assert reported == {"contacts": 2, "automated_contacts": 1, "ai_replies": 0, "seats": 0, "channels": 1,
                        "messages": 5}


class _UsageReportSink(LoopbackStandIn):
    """The control plane's ``POST /usage/reports``: records ``(path, lower-cased headers, body)``
    in :attr:`received` and answers 200 ``{"status": "recorded"}``."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        super().__init__()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(StandInHandler):
            def do_POST(self) -> None:  # noqa: N802
                sink.received.append((self.path, self.lower_headers(), self.read_body()))
                self.send_json(200, {"status": "recorded"})

        return Handler


def test_a_usage_report_is_signed_with_a_key_derived_from_the_webhook_secret(settings: Settings,
                                                                           workspace: Workspace) -> None:
    """What the control plane receives from the queue's hourly task (its side:
    tests/control_plane/test_usage_reports.py)."""
    sink = _UsageReportSink().start()
    hosted = settings.model_copy(update={"control_plane_url": f"{sink.origin}/",
                                         "meta_app_secret": SecretStr("tenant-webhook-secret")})
    assert report.configured(hosted) and not report.configured(settings.model_copy(update={"control_plane_url": None}))
    huey, register_tasks = create_huey(settings.data_dir), FEATURE.register_tasks
    register_tasks(huey, SimpleNamespace(settings=hosted, workspace=workspace))
    [task] = huey.read_periodic(datetime(2026, 1, 1, 10, 7, tzinfo=UTC))  # hourly, at minute 7
    assert (task.name, huey.read_periodic(datetime(2026, 1, 1, 10, 8, tzinfo=UTC))) == ("entitlements.report_usage", [])
    assert task.execute() == {"status": 200, "answer": {"status": "recorded"}}
    sink.stop()
    [(path, headers, body)] = sink.received
    assert (path, headers["content-type"]) == ("/usage/reports", "application/json")
    numbers = {"contacts": 0, "automated_contacts": 0, "ai_replies": 0, "seats": 0, "channels": 0, "messages": 0}
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"aat-usage-report/v1").derive(
        b"tenant-webhook-secret")
    assert headers["x-aat-usage-signature"] == "v1=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    assert headers["x-aat-usage-signature"] != "v1=" + hmac.new(b"tenant-webhook-secret", body, hashlib.sha256).hexdigest()
    parsed = json.loads(body)
    assert (parsed["tenant"], parsed["period"], parsed["usage"], len(parsed["report_id"])) == (
        TENANT, datetime.now(UTC).strftime("%Y-%m"), numbers, 32)
    assert report.build(TENANT, numbers, NOW) != report.build(TENANT, numbers, NOW)  # a fresh id every time
    assert report_usage(SimpleNamespace(settings=settings, workspace=workspace)) == {"usage_report": "not configured"}


# --- the license file ----------------------------------------------------------------------------

async def test_a_license_file_governs_and_refuses_pushes(
    tmp_path: Path, settings: Settings, graph_api: GraphStandIn
) -> None:
    from appliance.app import create_app
    from appliance.store.workspace import open_workspace

    license_file = tmp_path / "aat.license"
    license_file.write_text(token(plan="enterprise", limits={"seats": 50}) + "\n")
    licensed = settings.model_copy(update={"license_file": license_file})
    ws = open_workspace(licensed)
    try:
        async with AsyncTestClient(app=create_app(licensed, workspace=ws, run_queue=False),
                                   base_url="https://testserver.local") as client:
            got = (await client.get("/api/v1/entitlements", headers=make_token(ws, "agent"))).json()
            assert (got["plan"], got["source"], got["limits"]) == ("enterprise", "license_file", {"seats": 50})
            pushed = await client.put("/entitlements", json={"token": token()})
            assert (pushed.status_code, pushed.json()["error"]["code"]) == (409, "license_file_in_force")
    finally:
        ws.close()


@pytest.mark.parametrize(("license_text", "key", "message"), [
    (token(key=Ed25519PrivateKey.generate()), PUBLIC, "signature does not verify"),
    (token(), None, "AAT_ENTITLEMENTS_PUBLIC_KEY is not"),
    (token(), "bm90LWEta2V5", "is 32 bytes, this one is 9"),
], ids=["forged-license", "no-public-key", "bad-public-key"])
def test_serve_refuses_an_unusable_license_in_one_plain_line(
    tmp_path: Path, license_text: str, key: str | None, message: str
) -> None:
    from tests.appliance.test_cli import run

    license_file = tmp_path / "aat.license"
    license_file.write_text(license_text)
    result = run(tmp_path / "data", "serve", "--port", "0",
                 env={"AAT_LICENSE_FILE": str(license_file), "AAT_ENTITLEMENTS_PUBLIC_KEY": key})
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]  # after the JSON log lines of the migrations
    assert last.startswith("error: AAT_") and message in last, last


async def test_every_page_shows_the_contacts_beyond_the_plan(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    from tests.appliance.web_helpers import sign_in

    connect_channel(workspace, "messenger", ASSETS["messenger"])
    await client.put("/entitlements", json={"token": token(plan="starter", limits={"contacts": 1})})
    await sign_in(client, workspace, "agent")
    assert 'id="plan-banner"' not in (await client.get("/inbox")).text
    for sender in ("2460000000000001", "2460000000000002", "2460000000000003"):
        await say(client, "messenger", "hi", sender=sender)
    await journal_settled(client)
    for path in ("/inbox", "/contacts"):
        html = (await client.get(path)).text
        assert 'id="plan-banner"' in html, path
        assert "Your starter plan covers 1 contacts; the 2 newest get no automation" in html
        assert "Ask the workspace owner about the plan." in html
