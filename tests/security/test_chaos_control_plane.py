"""Chaos: the control plane is SIGKILLed while it routes a webhook storm (store-and-forward).

The control plane runs as its own process (``bench/_router_services.py cp``: the app that
``aat-control-plane serve`` runs, under uvicorn, with a provisioner that only knows where the
tenant listens) on a data directory seeded with one active tenant. The tenant is
:class:`TenantSink`, an HTTP server in this process that answers forwards with 200 and records
each event id it accepted; during the storm it holds every forward unanswered, so nothing the
control plane acknowledged has been delivered when it is killed. Four threads post single-event
deliveries, signed with the platform secret; after ``KILL_AFTER`` acknowledgements the process
gets SIGKILL, the sink drops the forwards it held (their sender is dead), and the control plane
is restarted on the same data directory. Contract: every delivery it answered 200 reaches the
tenant, exactly once; nothing reaches it that was never posted.

tests/control_plane/test_fleet_local.py covers the other side, a SIGKILLed *appliance*
(``test_a_killed_appliance_gets_its_events_after_it_is_back``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from appliance.channels.signature import sign
from bench._router_services import seed
from tests.e2e.conftest import free_port, wait_for
from tests.standins.loopback import LoopbackStandIn, StandInHandler

ROOT = Path(__file__).resolve().parents[2]
SECRET = "chaos-platform-secret-Tq81"
MASTER_KEY = base64.b64encode(bytes(range(64, 96))).decode()
TENANT, PAGE_ID = "tchaos0000001", "111000000000001"
EVENTS = 200
KILL_AFTER = 100
WORKERS = 4
MID = re.compile(rb'"mid":"(m_cp_[0-9]+)"')


class TenantSink(LoopbackStandIn):
    """The tenant's appliance, reduced to what routing needs (see the module docstring)."""

    def __init__(self) -> None:
        self.accepted: Counter[str] = Counter()
        self.generation = 0
        self.open = threading.Event()
        super().__init__()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(StandInHandler):
            def do_POST(self) -> None:
                generation = sink.generation
                body = self.read_body()
                sink.open.wait(timeout=60)
                if generation != sink.generation:  # held across the kill: its sender is gone
                    self.close_connection = True
                    return
                with sink._lock:
                    sink.accepted.update(m.decode() for m in MID.findall(body))
                self.send_body(200, b"EVENT_RECEIVED\n", content_type=None)

        return Handler

    @property
    def url(self) -> str:
        return self.origin

    def release_for_a_new_sender(self) -> None:
        """Drop what is held (unanswered), then answer everything from now on."""
        self.generation += 1
        self.open.set()

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.accepted)

    def stop(self) -> None:
        self.open.set()
        super().stop()


class ControlPlaneProcess:
    def __init__(self, root: Path, sink: TenantSink) -> None:
        self.data_dir = root / "cp"
        self.urls = root / "urls.json"
        self.urls.write_text(json.dumps({TENANT: sink.url}))
        seed(self.data_dir, MASTER_KEY, [(TENANT, PAGE_ID, sink.url)])
        self.port = free_port()
        self.log = root / "cp.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "_router_services.py"), "cp", str(self.data_dir), MASTER_KEY,
                 str(self.port), SECRET, str(self.urls)],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)})

        def ready() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout=60, interval=0.1, what="the control plane to be ready")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _delivery(i: int) -> bytes:
    now = int(time.time() * 1000)
    return json.dumps({"object": "page", "entry": [{"id": PAGE_ID, "time": now, "messaging": [{
        "sender": {"id": f"psid-{i % 7}"}, "recipient": {"id": PAGE_ID}, "timestamp": now,
        "message": {"mid": f"m_cp_{i}", "text": f"routed {i}"}}]}]}, separators=(",", ":")).encode()


@dataclass
class Outcome:
    acked: set[str]
    refused: int          # connection errors and non-200s around the kill (Meta retries those)
    accepted_at_kill: Counter[str]
    accepted: Counter[str]


def _storm(cp: ControlPlaneProcess) -> tuple[set[str], int]:
    acked: set[str] = set()
    refused = 0
    lock = threading.Lock()
    todo = iter(range(EVENTS))

    def worker() -> None:
        nonlocal refused
        with httpx.Client(base_url=f"http://127.0.0.1:{cp.port}", timeout=10) as client:
            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                body = _delivery(i)
                try:
                    status = client.post("/webhooks/meta", content=body, headers={
                        "X-Hub-Signature-256": sign(body, SECRET.encode()),
                        "Content-Type": "application/json"}).status_code
                except httpx.TransportError:
                    status = 0
                with lock:
                    if status == 200:
                        acked.add(f"m_cp_{i}")
                    else:
                        refused += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(acked) >= KILL_AFTER, timeout=30, what=f"{KILL_AFTER} acknowledgements")
    cp.kill()
    for thread in threads:
        thread.join(timeout=30)
    return acked, refused


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    sink = TenantSink().start()
    cp = ControlPlaneProcess(tmp_path_factory.mktemp("cp_chaos"), sink)
    try:
        cp.start()
        acked, refused = _storm(cp)
        at_kill = sink.snapshot()
        sink.release_for_a_new_sender()
        cp.start()
        wait_for(lambda: acked <= set(sink.snapshot()), timeout=60, interval=0.1,
                 what="every acknowledged delivery at the tenant")
        time.sleep(0.5)  # anything forwarded twice would arrive right behind
        yield Outcome(acked, refused, at_kill, sink.snapshot())
    finally:
        cp.cleanup()
        sink.stop()


def test_the_kill_landed_mid_storm(routed: Outcome) -> None:
    """The precondition: acknowledged deliveries were still undelivered at the kill."""
    assert KILL_AFTER <= len(routed.acked) < EVENTS
    assert len(routed.acked) + routed.refused == EVENTS  # every post was answered or cut off
    assert routed.accepted_at_kill == Counter()


def test_every_acknowledged_delivery_reaches_the_tenant_after_the_restart(routed: Outcome) -> None:
    assert routed.acked - set(routed.accepted) == set()


def test_no_delivery_reaches_the_tenant_twice(routed: Outcome) -> None:
    assert {mid: n for mid, n in routed.accepted.items() if n != 1} == {}


def test_nothing_reaches_the_tenant_that_was_not_posted(routed: Outcome) -> None:
    assert set(routed.accepted) <= {f"m_cp_{i}" for i in range(EVENTS)}
