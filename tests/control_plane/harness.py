"""A real control plane for tests: uvicorn on a loopback port in a thread of the test process
(its own event loop), with the ``local`` provisioner starting real ``aat-appliance serve``
processes. Tests talk to it over HTTP (``admin``, ``post_webhook``) and read its runtime
(``cp``) for what only the inside knows (a tenant's pid, its API token)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from appliance.channels.signature import sign
from control_plane.app import create_app
from control_plane.provisioning.local import LocalProvisioner, free_port
from control_plane.routing.schedule import RetryPolicy
from control_plane.runtime import ControlPlane, http_client
from control_plane.settings import ControlPlaneSettings, PlatformApp

__all__ = ["ControlPlaneServer", "PLATFORM_SECRET", "VERIFY_TOKEN", "CP_MASTER_KEY", "wait_for", "page_body",
           "page_entry", "whatsapp_body"]

PLATFORM_SECRET = "cp-platform-secret-Hx83"
VERIFY_TOKEN = "cp-verify-token-Lq27"
CP_MASTER_KEY = base64.b64encode(bytes(range(100, 132))).decode()


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.2, what: str = "it") -> Any:
    """Poll ``predicate`` until it returns something true. Every poll is HTTP into a server on the
    same two cores as the appliances the test waits for, so it polls at 5 Hz, not faster."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def page_entry(page_id: str, psid: str, mid: str, text: str) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {"id": page_id, "time": now, "messaging": [{"sender": {"id": psid}, "recipient": {"id": page_id},
                                                        "timestamp": now, "message": {"mid": mid, "text": text}}]}


def page_body(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"object": "page", "entry": list(entries)}, separators=(",", ":")).encode()


def whatsapp_body(waba_id: str, changes: list[tuple[str, str, str, str]]) -> bytes:
    """``changes``: ``(phone_number_id, wa_id, wamid, text)``, all in one entry."""
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": waba_id, "changes": [
        {"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": number},
            "contacts": [{"profile": {"name": "Test Person"}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": wamid, "timestamp": str(int(time.time())), "type": "text",
                          "text": {"body": text}}]}}
        for number, wa_id, wamid, text in changes]}]}, separators=(",", ":")).encode()


class ControlPlaneServer:
    def __init__(self, root: Path, graph_base: str, *, policy: RetryPolicy | None = None,
                 backoff: tuple[float, ...] = (3.0,), **settings: Any) -> None:
        self.root = root
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        values = {"data_dir": root / "cp-data", "master_key": CP_MASTER_KEY, "port": self.port,
                  "public_url": self.base_url, "sweep_seconds": 3600, "forward_timeout_seconds": 5,
                  "meta_app_id": "555000111", **settings}
        self.settings = ControlPlaneSettings(**values)
        self.platform = PlatformApp(meta_app_secret=PLATFORM_SECRET, meta_verify_token=VERIFY_TOKEN,
                                    graph_api_base=graph_base)
        self.policy = policy or RetryPolicy()
        self.backoff = backoff
        self.cp: ControlPlane | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None
        self.admin_token = ""
        self.http = httpx.Client(base_url=self.base_url, timeout=60.0)

    # --- process --------------------------------------------------------------------------------
    def start(self) -> ControlPlaneServer:
        from control_plane.admin import tokens
        from control_plane.db import direct_database
        from appliance.timeutil import iso_now

        if not self.admin_token:
            self.admin_token = tokens.new_token()
            with direct_database(self.settings) as (db, _):
                tokens.create(db, name="tests", token=self.admin_token, now=iso_now())
        client = http_client(self.settings)
        provisioner = LocalProvisioner(self.settings, client, backoff=self.backoff)

        def keep(cp: ControlPlane) -> None:
            self.cp = cp
            self.loop = asyncio.get_running_loop()

        app = create_app(self.settings, self.platform, http=client, provisioner=provisioner, policy=self.policy,
                         run_sweeper=False, on_start=keep)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False,
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="control-plane")
        self.thread.start()
        wait_for(lambda: self.server is not None and self.server.started, what="the control plane to start")
        self.http.headers["Authorization"] = f"Bearer {self.admin_token}"
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None and self.thread.is_alive():
            self.server.should_exit = True
            self.thread.join(timeout=60)
        self.server = None

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 60.0) -> Any:
        """Run a coroutine on the control plane's loop (internal steps tests need)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # --- HTTP -----------------------------------------------------------------------------------
    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, "/admin/api" + path, **kwargs)

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.admin(method, path, **kwargs)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def post_webhook(self, body: bytes, secret: str = PLATFORM_SECRET) -> httpx.Response:
        return httpx.post(self.base_url + "/webhooks/meta", content=body, timeout=10.0,
                          headers={"X-Hub-Signature-256": sign(body, secret.encode()),
                                   "Content-Type": "application/json"})

    def create_tenant(self, name: str, **extra: Any) -> dict[str, Any]:
        return self.ok("POST", "/tenants", 201, json={"name": name, **extra})

    def wait_status(self, tenant_id: str, status: str, timeout: float = 60.0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            row = self.ok("GET", f"/tenants/{tenant_id}")
            return row if row["status"] == status else None

        return wait_for(check, timeout=timeout, what=f"tenant {tenant_id} to be {status}")

    def tenant_api(self, tenant_id: str) -> httpx.Client:
        """An API client for the tenant's appliance with the control plane's own token in it
        (read from the inside: minting a support token costs a process start)."""
        assert self.cp is not None
        row = self.ok("GET", f"/tenants/{tenant_id}")
        from control_plane.lifecycle import store

        token = self.cp.lifecycle.api_token(self.run(self.cp.store.gateway.read(store.get_tenant, tenant_id)))
        return httpx.Client(base_url=row["url"], timeout=15.0, headers={"Authorization": f"Bearer {token}"})

    def account(self, email: str) -> dict[str, str]:
        """Headers of a signed-in account (``aat-session`` cookie and ``X-CSRF-Token``) for
        ``email``, made by the sessions service's own sign-in (the OIDC dance has its own tests
        in test_accounts_google); the account id is under ``"id"`` (not a header: pop it)."""
        assert self.cp is not None
        token = self.run(self.cp.sessions.sign_in("google", {"sub": "sub-" + email, "email": email, "name": email},
                                                  age_confirmed=True))
        mine = httpx.get(self.base_url + "/api/me", headers={"Cookie": f"aat-session={token}"}, timeout=10).json()
        return {"Cookie": f"aat-session={token}", "X-CSRF-Token": mine["csrf_token"], "id": mine["account"]["id"]}

    def deliveries(self, **params: Any) -> list[dict[str, Any]]:
        return self.ok("GET", "/deliveries", params={"limit": 500, **params})["items"]
