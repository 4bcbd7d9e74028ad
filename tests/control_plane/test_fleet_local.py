"""The fleet with the local provisioner and real appliance processes: three tenants, routing of
batched deliveries, a killed appliance catching up, unknown assets claimed late, data-deletion
fan-out, support tokens, export/import as a new tenant, teardown, and the audit chain.

One control plane and its tenants serve the whole module (starting appliances costs seconds);
the tests run in file order and build on each other's tenants."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.privacy.signed_request import sign as sign_request
from tests.control_plane.harness import (
    CP_MASTER_KEY, PLATFORM_SECRET, ControlPlaneServer, page_body, page_entry, wait_for, whatsapp_body,
)
from tests.standins.graph_api import GraphStandIn

pytestmark = pytest.mark.timeout(300)

CLI = Path(sys.prefix) / "bin" / "aat-control-plane"
PAGES = {"a": "100000000000001", "b": "100000000000002", "c": "100000000000003"}
WABA_A, NUMBER_A = "300000000000001", "310000000000001"


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphStandIn]:
    standin = GraphStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory, graph: GraphStandIn) -> Iterator[ControlPlaneServer]:
    server = ControlPlaneServer(tmp_path_factory.mktemp("fleet"), graph.base_url, retention_days=0,
                                support_token_minutes=0.02).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fleet(cp: ControlPlaneServer) -> dict[str, str]:
    """Three active tenants, each with its own Page; tenant a also has a WhatsApp number."""
    ids = {key: cp.create_tenant(f"Tenant {key.upper()}", owner_email=f"{key}@example.com")["id"] for key in PAGES}
    for key, tenant_id in ids.items():
        cp.wait_status(tenant_id, "active")
        cp.ok("POST", f"/tenants/{tenant_id}/channels", 201,
              json={"type": "messenger", "external_id": PAGES[key], "access_token": f"page-token-{key}"})
    cp.ok("POST", f"/tenants/{ids['a']}/channels", 201,
          json={"type": "whatsapp", "external_id": NUMBER_A, "access_token": "wa-token", "waba_id": WABA_A})
    return ids


def contacts(api: httpx.Client) -> set[str]:
    body = api.get("/api/v1/contacts", params={"limit": 500}).json()
    return {c["external_id"] for c in body["items"]}


def texts(api: httpx.Client) -> set[str]:
    found = set()
    for conversation in api.get("/api/v1/conversations", params={"limit": 500}).json()["items"]:
        messages = api.get(f"/api/v1/conversations/{conversation['id']}/messages", params={"limit": 500}).json()
        found |= {m["text"] for m in messages["items"] if m["text"]}
    return found


def test_three_tenants_run_as_separate_appliances(cp: ControlPlaneServer, fleet: dict[str, str]) -> None:
    tenants = {t["id"]: t for t in cp.ok("GET", "/tenants")["items"]}
    urls = {tenants[tid]["url"] for tid in fleet.values()}
    assert len(urls) == 3 and all(u.startswith("http://127.0.0.1:") for u in urls)
    pids = {cp.cp.provisioner.pid(tid) for tid in fleet.values()}
    assert None not in pids and len(pids) == 3
    for tid in fleet.values():
        data_dir = cp.settings.tenants_dir() / tid / "data"
        assert (data_dir / "keys.json").is_file() and (data_dir / "workspace.db").is_file()
    # Each appliance got its own master key: no two tenants' key files unwrap alike.
    wrapped = {(cp.settings.tenants_dir() / tid / "data" / "keys.json").read_text() for tid in fleet.values()}
    assert len(wrapped) == 3


def test_a_batched_delivery_reaches_each_tenant_with_its_own_entries_only(
        cp: ControlPlaneServer, fleet: dict[str, str]) -> None:
    body = page_body(*(page_entry(PAGES[k], f"psid-{k}-1", f"m_{k}_1", f"hello {k}") for k in PAGES),
                     page_entry("100000000000099", "psid-x", "m_x_1", "nobody's"))
    started = time.monotonic()
    response = cp.post_webhook(body)
    assert response.status_code == 200 and response.text == "EVENT_RECEIVED"
    assert time.monotonic() - started < 1.0
    apis = {k: cp.tenant_api(fleet[k]) for k in PAGES}
    for key, api in apis.items():
        wait_for(lambda api=api, key=key: f"hello {key}" in texts(api), what=f"tenant {key}'s message")
    for key, api in apis.items():
        assert contacts(api) == {f"psid-{key}-1"}, f"tenant {key} got another tenant's entries"
        assert texts(api) == {f"hello {key}"}
    delivered = cp.deliveries(status="delivered")
    assert {d["tenant_id"] for d in delivered} >= set(fleet.values())
    assert all(d["entries"] == 1 for d in delivered)


def test_whatsapp_changes_route_by_phone_number_id(cp: ControlPlaneServer, fleet: dict[str, str]) -> None:
    body = whatsapp_body(WABA_A, [(NUMBER_A, "15550001111", "wamid.A1", "hi from whatsapp"),
                                  ("319999999999999", "15550002222", "wamid.X1", "unknown number")])
    assert cp.post_webhook(body).status_code == 200
    api = cp.tenant_api(fleet["a"])
    wait_for(lambda: "hi from whatsapp" in texts(api), what="the WhatsApp message")
    assert "unknown number" not in texts(api)
    assert "15550002222" not in contacts(api)


def test_bad_signature_is_refused_and_leaves_nothing(cp: ControlPlaneServer, fleet: dict[str, str]) -> None:
    before = len(cp.deliveries())
    body = page_body(page_entry(PAGES["a"], "psid-forged", "m_forged", "forged"))
    assert cp.post_webhook(body, secret="not-the-secret").status_code == 403
    assert len(cp.deliveries()) == before


def test_a_killed_appliance_gets_its_events_after_it_is_back(cp: ControlPlaneServer, fleet: dict[str, str]) -> None:
    tenant = fleet["b"]
    pid = cp.cp.provisioner.pid(tenant)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: cp.cp.provisioner.pid(tenant) != pid, what="the supervisor to notice")
    others = page_body(page_entry(PAGES["c"], "psid-c-2", "m_c_2", "c while b is down"))
    started = time.monotonic()
    for n in range(3):
        body = page_body(page_entry(PAGES["b"], f"psid-b-{n + 2}", f"m_b_down_{n}", f"b down {n}"))
        assert cp.post_webhook(body).status_code == 200
    assert cp.post_webhook(others).status_code == 200
    assert time.monotonic() - started < 2.0  # four acknowledgements, none waiting for tenant b
    # Acknowledged and queued: pending with a failed attempt while the appliance is down.
    pending = wait_for(lambda: [d for d in cp.deliveries(tenant=tenant, status="pending") if d["attempts"] >= 1],
                       timeout=10, what="a failed attempt")
    assert pending and all(d["last_error"] for d in pending)
    # The healthy tenant did not wait for the dead one.
    api_c = cp.tenant_api(fleet["c"])
    wait_for(lambda: "c while b is down" in texts(api_c), timeout=5, what="tenant c's message")
    assert cp.deliveries(tenant=tenant, status="pending"), "b came back before the test could see its queue"
    # Back up (the supervisor restarts it): everything queued arrives, once.
    cp.wait_status(tenant, "active")
    wait_for(lambda: not cp.deliveries(tenant=tenant, status="pending"), timeout=30, what="b's queue to drain")
    api_b = cp.tenant_api(tenant)
    # Delivered is journaled: a restarted appliance takes deliveries before its app applies them.
    wait_for(lambda: {f"b down {n}" for n in range(3)} <= texts(api_b), what="b's queued messages applied")
    assert contacts(api_b) == {"psid-b-1", "psid-b-2", "psid-b-3", "psid-b-4"}


def test_entries_for_an_unknown_asset_are_kept_and_claimed_by_a_late_onboarding(
        cp: ControlPlaneServer, fleet: dict[str, str]) -> None:
    late_page = "100000000000077"
    assert cp.post_webhook(page_body(page_entry(late_page, "psid-late", "m_late", "before onboarding"))).status_code == 200
    metrics = httpx.get(cp.base_url + "/metrics").text
    assert "aat_cp_unknown_asset_entries_total" in metrics
    cp.ok("POST", f"/tenants/{fleet['c']}/channels", 201,
          json={"type": "messenger", "external_id": late_page, "access_token": "late-token"})
    api = cp.tenant_api(fleet["c"])
    wait_for(lambda: "before onboarding" in texts(api), what="the claimed entry")


def test_an_asset_connected_to_one_tenant_cannot_be_taken_by_another(cp: ControlPlaneServer, fleet: dict[str, str]) -> None:
    response = cp.admin("POST", f"/tenants/{fleet['b']}/channels",
                        json={"type": "messenger", "external_id": PAGES["a"], "access_token": "x"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "asset_taken"


def test_data_deletion_fans_out_to_the_tenants_that_know_the_user(cp: ControlPlaneServer, fleet: dict[str, str]) -> None:
    request = sign_request({"algorithm": "HMAC-SHA256", "issued_at": int(time.time()), "user_id": "psid-a-1"},
                           PLATFORM_SECRET.encode())
    response = httpx.post(cp.base_url + "/data-deletion", data={"signed_request": request}, timeout=10)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"url", "confirmation_code"} and answer["url"].startswith(cp.base_url)
    fanned = [d for d in cp.deliveries() if d["object"] == "aat.data_deletion"]
    assert [d["tenant_id"] for d in fanned] == [fleet["a"]]
    api = cp.tenant_api(fleet["a"])
    wait_for(lambda: "psid-a-1" not in contacts(api), what="the contact's erasure in tenant a")
    assert "psid-b-1" in contacts(cp.tenant_api(fleet["b"]))
    page = httpx.get(answer["url"], timeout=10)
    assert page.status_code == 200 and answer["confirmation_code"] in page.text
    again = httpx.post(cp.base_url + "/data-deletion", data={"signed_request": request}, timeout=10).json()
    assert again["confirmation_code"] == answer["confirmation_code"]


def test_disconnect_removes_the_route_the_channel_and_the_token(cp: ControlPlaneServer, fleet: dict[str, str]) -> None:
    tenant = fleet["a"]
    (channel,) = [c for c in cp.ok("GET", f"/tenants/{tenant}/channels")["items"] if c["type"] == "whatsapp"]
    removed = cp.ok("DELETE", f"/tenants/{tenant}/channels/{channel['id']}")
    assert (removed["type"], removed["external_id"]) == ("whatsapp", NUMBER_A)
    assert [c["type"] for c in cp.ok("GET", f"/tenants/{tenant}/channels")["items"]] == ["messenger"]
    api = cp.tenant_api(tenant)
    (inside,) = [c for c in api.get("/api/v1/channels").json()["items"] if c["external_id"] == NUMBER_A]
    assert inside["status"] == "disconnected"
    from control_plane.db import direct_database

    with direct_database(cp.settings) as (db, _):
        left = db.conn.execute("SELECT count(*) FROM channels WHERE external_id = ?", [NUMBER_A]).fetchone()[0]
    assert left == 0  # the control plane's copy of the token went with the row
    # Its number and its WABA route nowhere now: acknowledged, kept unclaimed, not delivered to a.
    before = len(cp.deliveries(tenant=tenant))
    body = whatsapp_body(WABA_A, [(NUMBER_A, "15550003333", "wamid.A9", "after disconnect")])
    assert cp.post_webhook(body).status_code == 200
    assert len(cp.deliveries(tenant=tenant)) == before
    assert cp.cp.table.lookup("whatsapp", NUMBER_A) is None and cp.cp.table.lookup("whatsapp_waba", WABA_A) is None
    actions = [e["action"] for e in cp.ok("GET", "/audit", params={"limit": 500})["items"]]
    assert "channel.disconnect" in actions


def test_support_tokens_expire(cp: ControlPlaneServer, fleet: dict[str, str]) -> None:
    issued = cp.ok("POST", f"/tenants/{fleet['c']}/support-token", 201)
    assert set(issued) >= {"token", "url", "expires_at"}
    headers = {"Authorization": f"Bearer {issued['token']}"}
    assert httpx.get(issued["url"] + "/api/v1/channels", headers=headers).status_code == 200
    # support_token_minutes = 0.02: the sweep revokes it once its 1.2 s are over.
    wait_for(lambda: cp.ok("POST", "/sweep")["support_tokens_revoked"] >= 1, timeout=20, interval=0.5,
             what="the sweep to revoke the expired token")
    assert httpx.get(issued["url"] + "/api/v1/channels", headers=headers).status_code == 401
    actions = [e["action"] for e in cp.ok("GET", "/audit", params={"limit": 500})["items"]]
    assert "tenant.support_token" in actions and "tenant.support_token_revoked" in actions


def test_suspend_holds_deliveries_and_resume_delivers_them(cp: ControlPlaneServer, fleet: dict[str, str]) -> None:
    tenant = fleet["c"]
    assert cp.ok("POST", f"/tenants/{tenant}/suspend")["status"] == "suspended"
    wait_for(lambda: cp.cp.provisioner.pid(tenant) is None, what="c's process to stop")
    assert cp.post_webhook(page_body(page_entry(PAGES["c"], "psid-c-9", "m_c_9", "while suspended"))).status_code == 200
    time.sleep(0.5)
    held = cp.deliveries(tenant=tenant, status="pending")
    assert held and all(d["attempts"] == 0 for d in held)
    cp.ok("POST", f"/tenants/{tenant}/resume")
    wait_for(lambda: not cp.deliveries(tenant=tenant, status="pending"), what="c's held deliveries")
    api = cp.tenant_api(tenant)
    wait_for(lambda: "while suspended" in texts(api), what="the held message applied")  # journaled, then applied


def test_export_and_import_as_a_new_tenant_with_the_same_data(cp: ControlPlaneServer, fleet: dict[str, str],
                                                              tmp_path: Path) -> None:
    source = fleet["b"]
    response = cp.admin("POST", f"/tenants/{source}/export", json={"passphrase": "correct horse battery"})
    assert response.status_code == 200, response.text
    assert response.content[:16] != b"SQLite format 3\x00"  # encrypted, not a plain database
    imported = cp.ok("POST", "/tenants/import", 201, files={"file": ("b.aatx", response.content)},
                     data={"name": "Copy of B", "passphrase": "correct horse battery"})
    assert imported["id"] != source
    cp.wait_status(imported["id"], "active")
    original, copy = cp.tenant_api(source), cp.tenant_api(imported["id"])
    assert contacts(copy) == contacts(original)
    assert texts(copy) == texts(original)
    # The copy has its own keys.
    root = cp.settings.tenants_dir()
    assert (root / imported["id"] / "data" / "keys.json").read_text() != (root / source / "data" / "keys.json").read_text()


def test_cli_export_and_import(cp: ControlPlaneServer, fleet: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AAT_")}
    env.update(AAT_CP_DATA_DIR=str(cp.settings.data_dir), AAT_CP_MASTER_KEY=CP_MASTER_KEY)
    out = tmp_path / "a.aatx"
    done = subprocess.run([str(CLI), "tenants", "export", fleet["a"], "--out", str(out), "--passphrase-stdin"],
                          input="a long passphrase", env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0
    done = subprocess.run([str(CLI), "tenants", "import", str(out), "--name", "A again", "--passphrase-stdin"],
                          input="a long passphrase", env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    new_id = done.stdout.strip().splitlines()[-1]
    cp.ok("POST", "/sweep")  # the server converges what the CLI wrote
    cp.wait_status(new_id, "active")
    assert texts(cp.tenant_api(new_id)) == texts(cp.tenant_api(fleet["a"]))


def test_teardown_after_zero_day_retention_leaves_nothing(cp: ControlPlaneServer, fleet: dict[str, str]) -> None:
    tenant = fleet["c"]
    pid = cp.cp.provisioner.pid(tenant)
    deleting = cp.ok("DELETE", f"/tenants/{tenant}")
    assert deleting["status"] == "deleting" and deleting["delete_after"]
    summary = cp.ok("POST", "/sweep")
    assert summary is not None
    row = cp.wait_status(tenant, "deleted")
    assert row["url"] is None and row["deleted_at"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (cp.settings.tenants_dir() / tenant).exists()
    assert cp.ok("GET", f"/tenants/{tenant}/channels")["items"] == []
    assert not [k for k, t in cp.cp.table.assets.items() if t == tenant]
    from control_plane.db import direct_database

    with direct_database(cp.settings) as (db, _):
        keys = db.conn.execute("SELECT master_key_enc, webhook_secret_enc, api_token_enc FROM tenants WHERE id = ?",
                               [tenant]).fetchone()
        left = db.conn.execute("SELECT count(*) FROM deliveries WHERE tenant_id = ?", [tenant]).fetchone()[0]
    assert tuple(keys) == (None, None, None) and left == 0
    # Its page is unknown now: acknowledged, kept as unclaimed, delivered to nobody.
    assert cp.post_webhook(page_body(page_entry(PAGES["c"], "psid-c-x", "m_c_x", "after teardown"))).status_code == 200
    actions = [e["action"] for e in cp.ok("GET", "/audit", params={"limit": 500})["items"]]
    assert "tenant.teardown" in actions


def test_audit_chain_verifies_and_detects_a_tampered_row(cp: ControlPlaneServer, fleet: dict[str, str]) -> None:
    assert cp.ok("GET", "/audit/verify")["intact"] is True
    env = {k: v for k, v in os.environ.items() if not k.startswith("AAT_")}
    env.update(AAT_CP_DATA_DIR=str(cp.settings.data_dir), AAT_CP_MASTER_KEY=CP_MASTER_KEY)
    done = subprocess.run([str(CLI), "audit", "verify"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "intact" in done.stdout
    from control_plane.db import direct_database

    with direct_database(cp.settings) as (db, _):
        victim = db.conn.execute("SELECT id FROM audit_log WHERE action = 'tenant.delete'").fetchone()[0]
        db.conn.execute("UPDATE audit_log SET actor_label = 'someone else' WHERE id = ?", [victim])
    done = subprocess.run([str(CLI), "audit", "verify"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: the audit log is broken at entry {victim}: it was changed, or an entry " \
                                  f"before it was removed ({victim - 1} entries verified before it)"
    verdict: dict[str, Any] = cp.ok("GET", "/audit/verify")
    assert verdict == {"intact": False, "checked": victim - 1, "broken_at": str(victim)}


def test_stopping_the_control_plane_stops_every_appliance(cp: ControlPlaneServer, fleet: dict[str, str]) -> None:
    pids = [cp.cp.provisioner.pid(t) for t in cp.cp.provisioner.running()]
    assert pids
    cp.stop()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
