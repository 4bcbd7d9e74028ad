"""The front door ``serve`` listens with (appliance/web/front.py): webhooks and ``/readyz``
answered before the full app is built, every other request held for the app, the same wire
behaviour before and after, and a failed start that stops the server and closes the workspace.

Each test serves a real :class:`FrontDoor` with uvicorn on loopback, in a thread, as ``serve``
does; the full app is the real ``create_app``, and a gate decides when its build may finish.
(``tests/appliance/test_startup_imports.py`` runs the ``serve`` command itself with the door, and
the SIGKILL tests in tests/e2e restart real ``aat-appliance serve`` processes.)"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from appliance.app import create_app
from appliance.ingest import journal
from appliance.ingest.receiver import WebhookReceiver
from appliance.metrics import Metrics
from appliance.settings import Settings
from appliance.store.workspace import Workspace
from appliance.web.front import FrontDoor
from tests.conftest import VERIFY_TOKEN, fixture_bytes, signed_headers
from tests.e2e.conftest import free_port, wait_for

GATE_TIMEOUT = 30.0


class Served:
    """A door on uvicorn in a thread; ``open_gate()`` lets the full app's build finish."""

    def __init__(
        self, settings: Settings, workspace: Workspace, *, fail: Exception | None = None, keep_webhooks: bool = True,
    ) -> None:
        self.gate = threading.Event()
        self.failures: list[str] = []
        self.workspace = workspace
        metrics = Metrics()

        def build() -> Any:
            assert self.gate.wait(GATE_TIMEOUT), "the test never opened the gate"
            if fail is not None:
                raise fail
            return create_app(settings, workspace=workspace, run_queue=False, close_workspace=True, metrics=metrics)

        self.door = FrontDoor(
            workspace=workspace,
            webhooks=WebhookReceiver(settings=settings, db=workspace.gateway, metrics=metrics),
            build=build,
            on_open=lambda app: app.state.runtime.wake_processor(),
            # As serve does: the door keeps answering webhooks, with the app's receiver.
            open_webhooks=(lambda app: app.state.runtime.webhooks) if keep_webhooks else None,
        )
        port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(self.door, host="127.0.0.1", port=port, lifespan="on",
                                                    log_config=None, access_log=False))

        def stop_on_failure() -> None:
            self.failures.append(self.door.failure or "")
            self.server.should_exit = True

        self.door.on_failure = stop_on_failure
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="front-door")
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=GATE_TIMEOUT)

    def start(self) -> Served:
        self.thread.start()
        wait_for(lambda: self.server.started, what="the door to listen")
        return self

    def open_gate(self) -> None:
        self.gate.set()
        wait_for(lambda: self.door.app is not None or self.door.failure is not None, timeout=GATE_TIMEOUT,
                 what="the full app to open")

    def stop(self) -> None:
        self.gate.set()
        self.server.should_exit = True
        self.thread.join(timeout=60)
        self.http.close()


@pytest.fixture
def served(settings: Settings, workspace: Workspace) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def serve(**options: Any) -> Served:
        started.append(Served(settings, workspace, **options).start())
        return started[-1]

    yield serve
    for one in started:
        one.stop()


def _pending(workspace: Workspace) -> int:
    return int(workspace.gateway.read_sync(journal.lag)["pending"])


def _messages(workspace: Workspace) -> list[str]:
    return [row["text"] for row in workspace.gateway.read_sync(
        lambda db: list(db.query("SELECT text FROM messages ORDER BY id")))]


def test_before_the_app_opens_webhooks_are_journaled_readyz_is_ready_and_other_requests_wait(
    served: Callable[..., Served], workspace: Workspace,
) -> None:
    door = served()
    body = fixture_bytes("messenger_text")

    delivered = door.http.post("/webhooks/meta", content=body, headers=signed_headers(body))
    assert (delivered.status_code, delivered.text) == (200, "EVENT_RECEIVED")
    assert _pending(workspace) == 1  # durable before the 200, waiting for the journal processor
    forged = door.http.post("/webhooks/meta", content=body, headers=signed_headers(body, "not-the-secret"))
    assert forged.status_code == 403 and _pending(workspace) == 1
    ready = door.http.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert door.http.get("/healthz").json() == {"status": "ok"}
    assert door.door.app is None and _messages(workspace) == []

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        metrics = pool.submit(door.http.get, "/metrics")  # only the app answers it
        time.sleep(0.3)
        assert not metrics.done()
        door.open_gate()
        answer = metrics.result(timeout=GATE_TIMEOUT)

    assert answer.status_code == 200
    # One set of counters: what the door counted is in the app's /metrics.
    assert 'aat_webhooks_received_total{object="page"} 1.0' in answer.text
    assert 'aat_webhooks_rejected_total{reason="signature"} 1.0' in answer.text
    # The app's journal processor applies what the door journaled.
    wait_for(lambda: _pending(workspace) == 0, what="the journal processor")
    assert len(_messages(workspace)) == 1


# Every kind of request /webhooks/meta gets, and what is compared of the answer.
def _requests(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    handshake = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    return [
        ("POST", {"content": body, "headers": signed_headers(body)}),
        ("POST", {"content": body, "headers": signed_headers(body, "forged")}),
        ("POST", {"content": body}),
        ("POST", {"content": b"[1, 2]", "headers": signed_headers(b"[1, 2]")}),
        ("POST", {"content": b"x" * (1024 * 1024 + 1)}),
        ("GET", {"params": handshake}),
        ("GET", {"params": {**handshake, "hub.verify_token": "wrong"}}),
        ("GET", {}),
        ("OPTIONS", {}),
        ("PUT", {"content": body}),
        ("DELETE", {}),
    ]


def _answers(door: Served, body: bytes) -> list[tuple[Any, ...]]:
    answers = []
    for method, options in _requests(body):
        response = door.http.request(method, "/webhooks/meta", **options)
        answers.append((method, response.status_code, response.headers.get("content-type"),
                        response.headers.get("allow"), response.headers.get("content-length"), response.text))
    return answers


@pytest.mark.parametrize("keep_webhooks", [False, True], ids=["then-the-app", "then-the-door-with-the-apps-receiver"])
def test_the_door_answers_webhooks_exactly_as_the_app_does(
    served: Callable[..., Served], workspace: Workspace, caplog: pytest.LogCaptureFixture, keep_webhooks: bool,
) -> None:
    """Before the app opens the door answers; after, the app's Litestar route does, or (as in
    ``serve``) the door again with the app's receiver: the same answers and log lines all three ways."""
    caplog.set_level(logging.INFO, logger="aat.access")
    door = served(keep_webhooks=keep_webhooks)
    body = fixture_bytes("whatsapp_text")
    before = _answers(door, body)
    door.open_gate()
    after = _answers(door, body)

    assert before == after
    assert [answer[1] for answer in before] == [200, 403, 403, 400, 413, 200, 403, 403, 204, 405, 405]
    assert before[5][-1] == "1158201444"
    assert before[9][3] == "GET, OPTIONS, POST" and before[8][3] == "GET, OPTIONS"
    assert '"code":"invalid_signature"' in before[1][-1] and '"code":"method_not_allowed"' in before[9][-1]
    # The door's access log lines are the app's: the route, the status; never the query (the token).
    # (A line is written after its response is sent: wait for the last ones.)
    def lines() -> list[tuple[str, str, int]]:
        return [(r.method, r.path, r.status) for r in caplog.records if r.name == "aat.access"]  # type: ignore[attr-defined]

    wait_for(lambda: len(lines()) >= 2 * len(before), what="every request's access log line")
    assert lines() == 2 * [(answer[0], "/webhooks/meta", answer[1]) for answer in before]
    # (Only our access log: the test's own httpx client logs the URLs it requested, the token
    # included, whenever an earlier test has left the root logger at INFO.)
    assert not [r for r in caplog.records if r.name == "aat.access" and VERIFY_TOKEN in str(vars(r))]
    wait_for(lambda: _pending(workspace) == 0, what="the journal processor")
    assert len(_messages(workspace)) == 1  # delivered twice (before and after), stored once


def test_a_failed_start_stops_the_server_answers_waiting_requests_503_and_closes_the_workspace(
    served: Callable[..., Served], workspace: Workspace,
) -> None:
    door = served(fail=RuntimeError("the queue file cannot be opened"))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(door.http.get, "/api/v1/me")
        time.sleep(0.2)
        door.open_gate()
        answer = waiting.result(timeout=GATE_TIMEOUT)

    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "unavailable" and answer.headers["retry-after"] == "30"
    assert door.failures == ["RuntimeError: the queue file cannot be opened"]
    door.thread.join(timeout=30)
    assert not door.thread.is_alive()  # the server stopped by itself
    with pytest.raises(Exception, match="the database is closed"):
        workspace.gateway.read_sync(journal.lag)


def test_serve_exits_with_the_reason_when_the_app_cannot_start_after_the_door_opened(tmp_path) -> None:
    # The real command: the task queue's file cannot be opened (a directory is in its place), so
    # the full app's lifespan fails after the door listened. One line says why, exit status 1.
    import subprocess

    from tests.e2e.conftest import BIN, base_env

    data = tmp_path / "data"
    (data / "queue.db").mkdir(parents=True)
    proc = subprocess.run([str(BIN), "serve", "--port", str(free_port()), "--data-dir", str(data)],
                          env=base_env(), capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: the appliance failed to start: OperationalError: unable to open database file"]
    assert "Traceback" not in proc.stderr
    assert not list(data.glob("workspace.db-wal"))  # closed and checkpointed by the door


def test_a_stop_before_the_app_opened_keeps_what_the_door_journaled_and_closes_the_workspace(
    served: Callable[..., Served], settings: Settings, workspace: Workspace,
) -> None:
    from appliance.store.workspace import open_workspace

    door = served()
    body = fixture_bytes("instagram_text")
    assert door.http.post("/webhooks/meta", content=body, headers=signed_headers(body)).status_code == 200
    door.server.should_exit = True  # SIGTERM while the app is still being built
    time.sleep(0.2)
    door.gate.set()  # the build finishes; the app is not started any more
    door.thread.join(timeout=30)
    assert not door.thread.is_alive()
    assert door.door.app is None and door.door.failure is None
    with pytest.raises(Exception, match="the database is closed"):
        workspace.gateway.read_sync(journal.lag)
    reopened = open_workspace(settings)
    try:
        assert reopened.gateway.read_sync(journal.lag)["pending"] == 1  # applied by the next start
    finally:
        reopened.close()
