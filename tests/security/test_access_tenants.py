"""Tenant isolation at the control plane (issue 12, part 4). A compromised tenant holds what its
appliance holds: its master key, its webhook secret (``AAT_META_APP_SECRET``, with which the
control plane signs what it forwards to it) and its own appliance's API tokens. None of them
opens the control plane's admin API, signs a delivery the router accepts, or verifies (so
could be used to forge) another tenant's forwarded deliveries; the router forwards each tenant
only its own entries, signed with its own secret.

One real control plane (uvicorn in a thread, tests/control_plane/harness.py) with two tenants
whose "appliances" are recording HTTP stand-ins: no appliance process is started. The real
fleet (three appliances) is covered by tests/control_plane/test_fleet_local.py."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from appliance import audit
from appliance.channels.signature import sign, verify
from appliance.team.credentials import new_api_token
from appliance.timeutil import iso_now
from control_plane.channels import store as channels
from control_plane.lifecycle import store as tenants
from control_plane.lifecycle.service import new_tenant_row, unseal
from control_plane.routing.forwarder import Target
from tests.control_plane.harness import ControlPlaneServer, page_body, page_entry, wait_for
from tests.standins.http_target import HttpTarget

ADMIN = audit.Actor("admin", id="1", label="tests")
PAGES = {"a": "700000000000001", "b": "700000000000002"}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    server = ControlPlaneServer(tmp_path_factory.mktemp("cp-isolation"), "http://127.0.0.1:9").start()
    targets = {name: HttpTarget().start() for name in PAGES}
    made: dict[str, Any] = {"cp": server, "targets": targets}
    assert server.cp is not None
    cp = server.cp

    def make(db: Any, name: str) -> dict[str, Any]:
        row = new_tenant_row(db, cp.store.fields, name=f"Tenant {name}", provisioner="none",
                             owner_email=f"{name}@example.com", plan=None, actor=ADMIN)
        tenants.set_endpoint(db, row["id"], url=targets[name].base_url, port=None, now=iso_now())
        tenants.set_status(db, row["id"], "active", iso_now())
        channels.add_channel(db, tenant_id=row["id"], channel_type="messenger", external_id=PAGES[name], name=None,
                             waba_id=None, page_id=PAGES[name], token_enc=None, appliance_channel_id=None, now=iso_now())
        return tenants.get_tenant(db, row["id"])

    async def setup(name: str) -> dict[str, Any]:
        row = await cp.store.gateway.write(make, name)
        secret = unseal(cp.store.fields, "webhook_secret", row["id"], row["webhook_secret_enc"])
        master = unseal(cp.store.fields, "master_key", row["id"], row["master_key_enc"])
        cp.table.add("messenger", PAGES[name], row["id"])
        cp.forwarder.set_target(Target(row["id"], row["url"], secret.encode(), active=True))
        return {"id": row["id"], "secret": secret, "master_key": master, "api_token": new_api_token()}

    for name in PAGES:
        made[name] = server.run(setup(name))
    yield made
    for target in targets.values():
        target.stop()
    server.stop()


def _credentials(tenant: dict[str, Any]) -> dict[str, str]:
    return {"webhook secret": tenant["secret"], "master key": tenant["master_key"], "api token": tenant["api_token"]}


@pytest.mark.parametrize("credential", ["webhook secret", "master key", "api token"])
def test_no_tenant_credential_opens_the_admin_api(fleet: dict[str, Any], credential: str) -> None:
    server: ControlPlaneServer = fleet["cp"]
    a, b = fleet["a"], fleet["b"]
    token = _credentials(a)[credential]
    for method, path in (("GET", "/tenants"), ("GET", f"/tenants/{b['id']}"), ("GET", f"/tenants/{b['id']}/channels"),
                         ("GET", f"/deliveries?tenant={b['id']}"), ("GET", "/audit"),
                         ("POST", f"/tenants/{b['id']}/support-token"), ("POST", f"/tenants/{b['id']}/suspend")):
        response = httpx.request(method, server.base_url + "/admin/api" + path, timeout=10.0,
                                 headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (method, path, response.text)
        assert b["id"] not in response.text and PAGES["b"] not in response.text
    assert server.ok("GET", f"/tenants/{b['id']}")["status"] == "active"  # nothing was suspended


def test_a_delivery_signed_with_a_tenants_secret_is_refused_and_journals_nothing(fleet: dict[str, Any]) -> None:
    server: ControlPlaneServer = fleet["cp"]
    before = len(server.deliveries())
    body = page_body(page_entry(PAGES["b"], "2460000000000999", "m_forged_1", "forged for b"))
    response = server.post_webhook(body, secret=fleet["a"]["secret"])
    assert response.status_code == 403
    assert len(server.deliveries()) == before
    time.sleep(0.3)
    assert not any(b"forged for b" in r.body for t in fleet["targets"].values() for r in t.requests)


def test_each_tenant_gets_only_its_own_entries_signed_with_its_own_secret(fleet: dict[str, Any]) -> None:
    server: ControlPlaneServer = fleet["cp"]
    targets: dict[str, HttpTarget] = fleet["targets"]
    body = page_body(page_entry(PAGES["a"], "2460000000000001", "m_iso_a", "for tenant a only"),
                     page_entry(PAGES["b"], "2460000000000002", "m_iso_b", "for tenant b only"))
    assert server.post_webhook(body).status_code == 200
    got = {name: wait_for(lambda t=target: [r for r in t.requests if b"m_iso_" in r.body], what=f"tenant {name}'s part")
           for name, target in targets.items()}
    for name, other in (("a", "b"), ("b", "a")):
        [request] = got[name]
        entries = json.loads(request.body)["entry"]
        assert [e["id"] for e in entries] == [PAGES[name]]
        assert f"for tenant {other} only".encode() not in request.body
        signature = request.headers.get("x-hub-signature-256") or request.headers.get("X-Hub-Signature-256")
        assert signature == sign(request.body, fleet[name]["secret"].encode())
        assert verify(request.body, signature, [fleet[name]["secret"].encode()])
        assert not verify(request.body, signature, [fleet[other]["secret"].encode()])  # b's secret cannot forge a's


def test_tenants_have_distinct_secrets_sealed_per_tenant(fleet: dict[str, Any]) -> None:
    """Every tenant has its own random webhook secret and master key; the control plane keeps
    them sealed with a context naming the tenant, so one tenant's ciphertext cannot be opened as
    another's."""
    server: ControlPlaneServer = fleet["cp"]
    a, b = fleet["a"], fleet["b"]
    assert a["secret"] != b["secret"] and a["master_key"] != b["master_key"]
    assert len(a["secret"]) == 64
    assert server.cp is not None
    rows = {t: server.run(server.cp.store.gateway.read(tenants.get_tenant, fleet[t]["id"])) for t in ("a", "b")}
    from appliance.store.keys import KeyMaterialError

    with pytest.raises(KeyMaterialError):
        unseal(server.cp.store.fields, "webhook_secret", b["id"], rows["a"]["webhook_secret_enc"])
    public = server.ok("GET", f"/tenants/{a['id']}")
    assert a["secret"] not in json.dumps(public) and "webhook_secret" not in json.dumps(public)


def test_admin_tokens_are_stored_only_as_hashes(fleet: dict[str, Any]) -> None:
    server: ControlPlaneServer = fleet["cp"]
    assert server.cp is not None
    stored = server.run(server.cp.store.gateway.read(
        lambda db: [list(r) for r in db.conn.execute("SELECT * FROM admin_tokens").fetchall()]))
    assert stored and all(server.admin_token not in json.dumps(row, default=str) for row in stored)
    assert any(hashlib.sha256(server.admin_token.encode()).hexdigest() in row for row in stored)
