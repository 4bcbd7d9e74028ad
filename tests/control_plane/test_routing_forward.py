"""The forwarder's HTTP behaviour against raw local tenant servers (asyncio, scripted per test):
the exact signed request, keep-alive reuse, the short failure reasons it journals, its timeout,
and per-tenant isolation of requests in flight. Journal rows are real (an encrypted store)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from appliance import audit
from appliance.channels.signature import sign
from appliance.timeutil import iso_now
from control_plane.db import Store, open_store
from control_plane.lifecycle import store as tenants
from control_plane.lifecycle.service import new_tenant_row
from control_plane.metrics import Metrics
from control_plane.provisioning.local import free_port
from control_plane.routing import store
from control_plane.routing.forwarder import Forwarder, Target, forwarding_client
from control_plane.routing.schedule import RetryPolicy
from control_plane.settings import ControlPlaneSettings
from tests.control_plane.harness import CP_MASTER_KEY

ADMIN = audit.Actor("admin", id="1", label="tests")
SECRET = b"tenant-secret-Zk4"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\nEVENT_RECEIVED"
Answer = Callable[[int], bytes | None]  # request number -> raw answer; None: never answer


class Tenant:
    """One tenant appliance: records each request's bytes, answers as scripted."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self.connections = 0
        self.waiting = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def close(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                self.requests.append((head, await reader.readexactly(length)))
                raw = self.answer(len(self.requests))
                if raw is None:
                    self.waiting += 1
                    await asyncio.sleep(3600)
                writer.write(raw)  # type: ignore[arg-type]
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def cp(tmp_path: Path) -> AsyncIterator[Store]:
    cp_store = open_store(ControlPlaneSettings(data_dir=tmp_path, master_key=CP_MASTER_KEY, meta_app_id="42"))
    yield cp_store
    cp_store.close()


def new_tenant(cp_store: Store, url: str) -> Target:
    def make(db: Any) -> str:
        row = new_tenant_row(db, cp_store.fields, name="Acme", provisioner="none", owner_email="o@example.com",
                             plan=None, actor=ADMIN)
        tenants.set_endpoint(db, row["id"], url=url, port=None, now=iso_now())
        return str(row["id"])

    return Target(cp_store.gateway.write_sync(make), url, SECRET)


async def journal(cp_store: Store, forwarder: Forwarder, tenant_id: str, bodies: list[bytes]) -> list[int]:
    now = iso_now()
    ids = await cp_store.gateway.write(store.journal, [(tenant_id, "page", 1, b) for b in bodies], [], [], now, now)
    forwarder.enqueue(tenant_id, await cp_store.gateway.read(store.pending_for, tenant_id, 0, 100))
    return ids


async def rows(cp_store: Store, ids: list[int]) -> list[dict[str, Any]]:
    return [await cp_store.gateway.read(store.get_delivery, i) for i in ids]


async def until(check: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def page(mid: str) -> bytes:
    return json.dumps({"object": "page", "entry": [{"id": "1", "messaging": [{"message": {"mid": mid}}]}]},
                      separators=(",", ":")).encode()


async def test_a_delivery_is_one_signed_post_and_the_connection_is_kept(cp: Store) -> None:
    tenant = Tenant(lambda n: OK)
    url = await tenant.start()
    forwarder = Forwarder(cp.gateway, forwarding_client(user_agent="aat-control-plane/test"), Metrics())
    target = new_tenant(cp, url)
    forwarder.set_target(target)
    delivered: list[int] = []
    for mid in ("m1", "m2", "m3"):  # one after the other: each a request of its own
        ids = await journal(cp, forwarder, target.tenant_id, [page(mid)])
        await until(lambda ids=ids: _status_is(cp, ids, "delivered"), "delivery")  # type: ignore[misc]
        delivered += ids
    await forwarder.close()
    tenant.close()
    head, body = tenant.requests[0]
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    assert lines[0] == "POST /webhooks/meta HTTP/1.1" and body == page("m1")
    assert headers["content-type"] == "application/json" and headers["user-agent"] == "aat-control-plane/test"
    assert headers["x-hub-signature-256"] == sign(page("m1"), SECRET) and headers["content-length"] == str(len(body))
    assert [b for _, b in tenant.requests] == [page("m1"), page("m2"), page("m3")]
    assert tenant.connections == 1  # kept alive between the three
    assert [r["body"] for r in await rows(cp, delivered)] == [None, None, None]


async def _status_is(cp_store: Store, ids: list[int], status: str) -> bool:
    return all(r["status"] == status for r in await rows(cp_store, ids))


async def _failed_with(cp_store: Store, ids: list[int]) -> str | None:
    row = (await rows(cp_store, ids))[0]
    return row["last_error"] if row["attempts"] >= 1 else None


@pytest.mark.parametrize(("answer", "reason"), [
    (b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n4\r\noops\r\n0\r\n\r\n", "http 500"),
    (None, "timeout"),
    (b"SMTP ready\r\n\r\n", "BadStatusLine"),
])
async def test_failures_are_journaled_as_short_reasons_and_retried_later(cp: Store, answer: bytes | None,
                                                                         reason: str) -> None:
    tenant = Tenant(lambda n: answer)
    url = await tenant.start()
    forwarder = Forwarder(cp.gateway, forwarding_client(user_agent="t"), Metrics(), timeout=0.5,
                          policy=RetryPolicy(delays=(60.0,)))
    target = new_tenant(cp, url)
    forwarder.set_target(target)
    ids = await journal(cp, forwarder, target.tenant_id, [page("m1")])
    started = time.monotonic()
    await until(lambda: _failed_with(cp, ids), "the failure")
    elapsed = time.monotonic() - started
    row = (await rows(cp, ids))[0]
    await forwarder.close()
    tenant.close()
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 1, reason)
    assert row["next_attempt_at"] > iso_now()  # rescheduled, not dropped
    if answer is None:
        assert 0.4 < elapsed < 3.0  # the forward timeout, not a socket default


async def test_a_refused_connection_is_named(cp: Store) -> None:
    forwarder = Forwarder(cp.gateway, forwarding_client(user_agent="t"), Metrics(),
                          policy=RetryPolicy(delays=(60.0,)))
    target = new_tenant(cp, f"http://127.0.0.1:{free_port()}")
    forwarder.set_target(target)
    ids = await journal(cp, forwarder, target.tenant_id, [page("m1")])
    await until(lambda: _failed_with(cp, ids), "the failure")
    await forwarder.close()
    assert (await rows(cp, ids))[0]["last_error"] == "ConnectionRefusedError"


async def test_a_hung_tenant_holds_only_its_own_requests_in_flight(cp: Store) -> None:
    hung, healthy = Tenant(lambda n: None), Tenant(lambda n: OK)
    hung_url, healthy_url = await hung.start(), await healthy.start()
    forwarder = Forwarder(cp.gateway, forwarding_client(user_agent="t"), Metrics(), timeout=30.0, concurrency=2)
    stuck, fine = new_tenant(cp, hung_url), new_tenant(cp, healthy_url)
    forwarder.set_target(stuck)
    forwarder.set_target(fine)
    for n in range(4):  # four requests' worth: data deletions are never batched together
        await cp.gateway.write(store.journal, [(stuck.tenant_id, "aat.data_deletion", 1, f"n={n}".encode())],
                               [], [], iso_now(), iso_now())
    forwarder.enqueue(stuck.tenant_id, await cp.gateway.read(store.pending_for, stuck.tenant_id, 0, 100))
    await until(lambda: _true(hung.waiting == 2), "two requests in flight to the hung tenant")
    ids = await journal(cp, forwarder, fine.tenant_id, [page("m1")])
    await until(lambda: _status_is(cp, ids, "delivered"), "the healthy tenant's delivery")
    await asyncio.sleep(0.3)
    assert hung.waiting == 2 and hung.connections == 2  # the limit held; nothing else was tried
    assert [h.split(b"\r\n")[0] for h, _ in hung.requests] == [b"POST /data-deletion HTTP/1.1"] * 2
    await forwarder.close()
    hung.close()
    healthy.close()


async def _true(value: bool) -> bool:
    return value


async def test_the_client_follows_no_redirect_keeps_no_cookie_and_ignores_proxy_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{free_port()}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    moved = b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nSet-Cookie: s=1; Path=/\r\nContent-Length: 0\r\n\r\n"
    tenant = Tenant(lambda n: moved if n == 1 else OK)
    url = (await tenant.start()).replace("127.0.0.1", "localhost")  # a host name: cookie jars refuse IPs
    client = forwarding_client(user_agent="t")  # built outside any request; its session comes on first use
    statuses = [await client.post(url + "/webhooks/meta", body, {"Content-Type": "application/json"}, 5.0)
                for body in (b"{}", b"[]")]
    await client.aclose()
    tenant.close()
    assert statuses == [302, 200]
    assert [h.split(b"\r\n")[0] for h, _ in tenant.requests] == [b"POST /webhooks/meta HTTP/1.1"] * 2
    assert [b for _, b in tenant.requests] == [b"{}", b"[]"]
    assert b"cookie:" not in tenant.requests[1][0].lower()
    assert tenant.connections == 1


async def test_a_failing_tenant_is_tried_once_per_retry_not_once_per_delivery(cp: Store) -> None:
    """The circuit: after a failure, deliveries arriving meanwhile wait for the one probe."""
    tenant = Tenant(lambda n: b"HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n" if n == 1 else OK)
    url = await tenant.start()
    forwarder = Forwarder(cp.gateway, forwarding_client(user_agent="t"), Metrics(), policy=RetryPolicy(delays=(0.6,)))
    target = new_tenant(cp, url)
    forwarder.set_target(target)
    ids = await journal(cp, forwarder, target.tenant_id, [page("m1")])
    await until(lambda: _failed_with(cp, ids), "the failure")
    for mid in ("m2", "m3", "m4"):
        now = iso_now()
        (new,) = await cp.gateway.write(store.journal, [(target.tenant_id, "page", 1, page(mid))], [], [], now, now)
        forwarder.enqueue(target.tenant_id, [await cp.gateway.read(store.get_delivery, new)])
        ids.append(new)
    await asyncio.sleep(0.2)
    assert len(tenant.requests) == 1  # open: the new deliveries were not tried one by one
    await until(lambda: _status_is(cp, ids, "delivered"), "the probe")
    await forwarder.close()
    tenant.close()
    assert len(tenant.requests) == 2
    entries = json.loads(tenant.requests[1][1])["entry"]
    assert [e["messaging"][0]["message"]["mid"] for e in entries] == ["m1", "m2", "m3", "m4"]
