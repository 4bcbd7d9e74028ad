"""The control plane's HTTP surface without running tenants: the Meta handshake, refusals, admin
auth, error bodies, and the CLI (admin tokens, tenant state changes) working against the running
server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.control_plane.harness import CP_MASTER_KEY, VERIFY_TOKEN, ControlPlaneServer, page_body, page_entry

CLI = Path(sys.prefix) / "bin" / "aat-control-plane"


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneServer]:
    server = ControlPlaneServer(tmp_path_factory.mktemp("http"), "http://127.0.0.1:9").start()
    yield server
    server.stop()


def test_the_handshake_echoes_the_challenge_only_for_the_verify_token(cp: ControlPlaneServer) -> None:
    good = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    response = httpx.get(cp.base_url + "/webhooks/meta", params=good)
    assert (response.status_code, response.text) == (200, "1158201444")
    bad = httpx.get(cp.base_url + "/webhooks/meta", params={**good, "hub.verify_token": "nope"})
    assert bad.status_code == 403 and bad.json()["error"]["code"] == "verification_failed"


def test_a_delivery_for_nobody_is_acknowledged_and_kept_unclaimed(cp: ControlPlaneServer) -> None:
    response = cp.post_webhook(page_body(page_entry("100000000000900", "psid", "m_1", "hello")))
    assert (response.status_code, response.text) == (200, "EVENT_RECEIVED")
    assert cp.deliveries() == []
    assert "aat_cp_unknown_asset_entries_total 1.0" in httpx.get(cp.base_url + "/metrics").text


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"not json", 400, "invalid_json"),
    (b'{"object":"page","entry":{}}', 400, "invalid_json"),
    (b"x" * (1024 * 1024 + 1), 413, "payload_too_large"),
])
def test_bad_deliveries_are_refused(cp: ControlPlaneServer, body: bytes, status: int, code: str) -> None:
    response = cp.post_webhook(body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_the_raw_webhook_route_refuses_like_the_rest(cp: ControlPlaneServer) -> None:
    """``/webhooks/meta`` is a raw ASGI route: a bad signature, a chunked body over 1 MiB and a
    foreign method still get the one JSON error shape, and nothing is journaled."""
    body = page_body(page_entry("100000000000901", "psid", "m_2", "hi"))
    forged = cp.post_webhook(body, secret="not-the-platform-secret")
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "invalid_signature"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        for _ in range(17):
            yield b"x" * 65536
    streamed = httpx.post(cp.base_url + "/webhooks/meta", content=chunks(), timeout=10.0)
    assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "payload_too_large"
    put = httpx.put(cp.base_url + "/webhooks/meta", content=body)
    assert put.status_code == 405 and put.json()["error"]["code"] == "method_not_allowed"
    options = httpx.options(cp.base_url + "/webhooks/meta")
    assert (options.status_code, options.headers["Allow"]) == (204, "GET, OPTIONS, POST")
    assert cp.deliveries() == []


def test_the_admin_api_wants_an_admin_token(cp: ControlPlaneServer) -> None:
    anonymous = httpx.get(cp.base_url + "/admin/api/tenants")
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert anonymous.json()["error"]["code"] == "unauthorized"
    wrong = httpx.get(cp.base_url + "/admin/api/tenants", headers={"Authorization": "Bearer aatcp_wrong"})
    assert wrong.status_code == 401


def test_a_token_made_by_the_cli_works_at_once(cp: ControlPlaneServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AAT_")}
    env.update(AAT_CP_DATA_DIR=str(cp.settings.data_dir), AAT_CP_MASTER_KEY=CP_MASTER_KEY)
    done = subprocess.run([str(CLI), "admin-token", "create", "--name", "ops"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    response = httpx.get(cp.base_url + "/admin/api/tenants", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.json() == {"items": [], "next_cursor": None}
    entries = cp.ok("GET", "/audit")["items"]
    assert entries[0]["action"] == "admin_token.create" and entries[0]["actor_kind"] == "cli"


def test_errors_have_one_shape(cp: ControlPlaneServer) -> None:
    missing = cp.admin("GET", "/tenants/t000000000000")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "tenant_not_found"
    malformed = cp.admin("GET", "/tenants/not-an-id")
    assert malformed.status_code == 422 and malformed.json()["error"]["code"] == "invalid_request"
    invalid = cp.admin("POST", "/tenants", json={"name": "", "extra": 1})
    assert invalid.status_code == 422
    assert {d["path"] for d in invalid.json()["error"]["details"]} >= {"name"}
    not_dead = cp.admin("POST", "/deliveries/999/replay")
    assert not_dead.status_code == 404


def test_cli_errors_are_one_line(cp: ControlPlaneServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AAT_")}
    env.update(AAT_CP_DATA_DIR=str(cp.settings.data_dir), AAT_CP_MASTER_KEY=CP_MASTER_KEY)
    done = subprocess.run([str(CLI), "tenants", "suspend", "t000000000000"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert done.stderr == "error: tenant t000000000000 does not exist\n"


def test_cli_tenant_lifecycle_is_written_and_audited_for_the_server(cp: ControlPlaneServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AAT_")}
    env.update(AAT_CP_DATA_DIR=str(cp.settings.data_dir), AAT_CP_MASTER_KEY=CP_MASTER_KEY)

    def cli(*args: str) -> str:
        done = subprocess.run([str(CLI), "tenants", *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    tenant_id = cli("create", "--name", "From the shell").strip().splitlines()[-1]
    assert cp.ok("GET", f"/tenants/{tenant_id}")["status"] == "provisioning"
    deleting = cli("delete", tenant_id)
    assert deleting.startswith(f"{tenant_id} deleting; torn down after ")
    row = cp.ok("GET", f"/tenants/{tenant_id}")
    assert row["status"] == "deleting" and row["delete_after"] > row["updated_at"]  # 30 days of retention
    assert cli("resume", tenant_id).strip() == f"{tenant_id} active"
    assert cp.ok("GET", f"/tenants/{tenant_id}")["delete_after"] is None
    listed = [line.split("\t") for line in cli("list").splitlines()]
    assert [tenant_id, "active", "From the shell", "-"] in listed
    entries = [(e["action"], e["actor_kind"]) for e in cp.ok("GET", "/audit")["items"] if e["target_id"] == tenant_id]
    assert entries == [("tenant.resume", "cli"), ("tenant.delete", "cli"), ("tenant.create", "cli")]
