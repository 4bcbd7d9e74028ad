"""Real processes: ``aat-appliance serve`` started as a subprocess on a free port, talking to
a Graph API stand-in that runs in the test process.

- :class:`Appliance` starts, SIGKILLs, stops and restarts one server on one data directory and
  port, appending its stdout and stderr to files next to the data directory.
- ``appliances`` (function scope) and ``module_appliances`` (module scope) create them and
  SIGKILL whatever is still running when the test or module ends, passed or failed.
- Every data directory is a copy of one template made once per session with the real CLI
  (``aat-appliance migrate``, then ``aat-appliance tokens create``, whose last stdout line is
  the API token), so each test skips the ~1.5 s those two commands cost.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.channels.signature import sign
from tests.standins.graph_api import GraphStandIn

# Distinctive values, so a test can grep for them in files and logs.
MASTER_KEY_RAW = bytes(range(32))
MASTER_KEY = base64.b64encode(MASTER_KEY_RAW).decode()
APP_SECRET = "e2e-app-secret-Qz7Kp2Lm9"
VERIFY_TOKEN = "e2e-verify-token-Wd4Rt8Ys1"

BIN = Path(sys.prefix) / "bin" / "aat-appliance"
READY_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.02,
             what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    return {"X-Hub-Signature-256": sign(body, secret.encode()), "Content-Type": "application/json"}


def base_env(**overrides: str) -> dict[str, str]:
    """The environment of every CLI call: no AAT_ variable of the caller leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AAT_")}
    env.update(
        PYTHONUNBUFFERED="1",
        AAT_MASTER_KEY=MASTER_KEY,
        AAT_META_APP_SECRET=APP_SECRET,
        AAT_META_VERIFY_TOKEN=VERIFY_TOKEN,
    )
    env.update(overrides)
    return env


def run_cli(*args: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run([str(BIN), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"aat-appliance {' '.join(args)} failed: {done.stderr}"
    return done.stdout


@dataclass(frozen=True)
class Template:
    data_dir: Path
    api_token: str


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    root = tmp_path_factory.mktemp("template")
    data_dir = root / "data"
    env = base_env()
    run_cli("migrate", "--data-dir", str(data_dir), cwd=root, env=env)
    out = run_cli("tokens", "create", "--name", "e2e", "--data-dir", str(data_dir), cwd=root, env=env)
    token = out.strip().splitlines()[-1]
    assert token and " " not in token
    return Template(data_dir, token)


class Appliance:
    """One ``aat-appliance serve`` on one data directory and port, restartable."""

    def __init__(self, root: Path, template: Template, graph: GraphStandIn, **env: str) -> None:
        self.root = root
        self.data_dir = root / "data"
        shutil.copytree(template.data_dir, self.data_dir)
        self.api_token = template.api_token
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = root / "stdout.log"
        self.stderr_path = root / "stderr.log"
        settings = {
            "AAT_GRAPH_API_BASE": graph.base_url,
            "AAT_INSTAGRAM_API_BASE": graph.base_url,
            "AAT_SEND_IN_DOUBT_GRACE_SECONDS": "1",
            "AAT_SEND_BACKOFF_BASE_SECONDS": "0.05",
            "AAT_HTTP_TIMEOUT_SECONDS": "10",
        }
        self.env = base_env(**{**settings, **env})
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._run_offset = 0
        self.api = self._api_client()

    def _api_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10.0,
                            headers={"Authorization": f"Bearer {self.api_token}"})

    # --- process control ------------------------------------------------------------------
    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Appliance:
        assert not self.running, "already running"
        self._run_offset = len(self.stderr_bytes())
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [str(BIN), "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
                cwd=self.root, env=self.env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1
        self.api.close()  # pooled connections to a previous run are dead
        self.api = self._api_client()
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        with httpx.Client(timeout=2.0) as probe:
            while time.monotonic() < deadline:
                if not self.running:
                    raise AssertionError(f"the appliance exited while starting:\n{self.stderr_tail()}")
                try:
                    if probe.get(f"{self.base_url}/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
        raise AssertionError(f"the appliance was not ready in {READY_TIMEOUT} s:\n{self.stderr_tail()}")

    def wait_open(self) -> None:
        """Until the full app answers, not only the front door (``/readyz`` and the webhooks are
        answered before the app is built; appliance/web/front.py holds other requests till then)."""
        with httpx.Client(timeout=READY_TIMEOUT) as probe:
            assert probe.get(f"{self.base_url}/metrics").status_code == 200, self.stderr_tail()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a crash or ``kill -9``."""
        assert self.proc is not None and self.running
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, the clean shutdown, and check that it was one.

        uvicorn re-raises the signal it caught once the app has shut down, so a clean stop
        ends with "killed by SIGTERM" (-15), after the lifespan logged its completion."""
        assert self.proc is not None and self.running
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the appliance did not stop within 30 s of SIGTERM") from None
        assert code in (0, -signal.SIGTERM), f"exit code {code}:\n{self.stderr_tail()}"
        assert b"Application shutdown complete." in self.stderr_bytes()[self._run_offset:], self.stderr_tail()

    def restart(self) -> Appliance:
        return self.start()

    def cleanup(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.api.close()

    # --- output ------------------------------------------------------------------------------
    def stderr_bytes(self) -> bytes:
        return self.stderr_path.read_bytes() if self.stderr_path.exists() else b""

    def stdout_bytes(self) -> bytes:
        return self.stdout_path.read_bytes() if self.stdout_path.exists() else b""

    def stderr_tail(self, lines: int = 40) -> str:
        return "\n".join(self.stderr_bytes().decode(errors="replace").splitlines()[-lines:])

    # --- HTTP --------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return self.base_url + path

    def post_webhook(self, body: bytes, *, secret: str = APP_SECRET,
                     client: httpx.Client | None = None) -> httpx.Response:
        return (client or self.api).post("/webhooks/meta", content=body, headers=signed(body, secret))

    def connect_channel(self, **fields: Any) -> dict[str, Any]:
        response = self.api.post("/api/v1/channels", json=fields)
        assert response.status_code == 201, response.text
        return response.json()

    def reply(self, conversation_id: str, text: str) -> dict[str, Any]:
        response = self.api.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": text})
        assert response.status_code == 202, response.text
        return response.json()

    def message(self, conversation_id: str, message_id: str) -> dict[str, Any]:
        for item in self.messages(conversation_id):
            if item["id"] == message_id:
                return item
        raise AssertionError(f"message {message_id} is not in conversation {conversation_id}")

    def _pages(self, path: str) -> Iterator[dict[str, Any]]:
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            response = self.api.get(path, params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            yield from body["items"]
            cursor = body["next_cursor"]
            if not cursor:
                return

    def conversations(self) -> list[dict[str, Any]]:
        return list(self._pages("/api/v1/conversations"))

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        return list(self._pages(f"/api/v1/conversations/{conversation_id}/messages"))

    def all_messages(self) -> list[dict[str, Any]]:
        return [m for c in self.conversations() for m in self.messages(c["id"])]

    def conversation_of(self, contact_external_id: str) -> str:
        def find() -> str | None:
            for c in self.conversations():
                if c["contact"]["external_id"] == contact_external_id:
                    return str(c["id"])
            return None

        return wait_for(find, what=f"the conversation of {contact_external_id}")

    def gauge(self, name: str) -> float:
        response = httpx.get(self.url("/metrics"), timeout=5.0)
        assert response.status_code == 200, response.text
        for line in response.text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} is not in /metrics")

    def wait_journal_settled(self, timeout: float = 20.0, *, failed: int = 0) -> None:
        """Every acknowledged delivery has been processed: none pending, ``failed`` failed."""
        wait_for(lambda: self.gauge("aat_journal_pending") == 0, timeout=timeout, what="an empty journal")
        assert self.gauge("aat_journal_failed") == failed, self.stderr_tail()

    def wait_outbox_empty(self, timeout: float = 20.0) -> None:
        wait_for(lambda: self.gauge("aat_outbox_depth") == 0, timeout=timeout, what="an empty outbox")


class Appliances:
    """Creates appliances under one directory and kills every one of them at the end."""

    def __init__(self, root: Path, template: Template) -> None:
        self.root = root
        self.template = template
        self.created: list[Appliance] = []

    def __call__(self, graph: GraphStandIn, *, start: bool = True, **env: str) -> Appliance:
        root = self.root / f"appliance{len(self.created)}"
        root.mkdir(parents=True)
        app = Appliance(root, self.template, graph, **env)
        self.created.append(app)
        return app.start() if start else app

    def cleanup(self) -> None:
        for app in self.created:
            app.cleanup()


@pytest.fixture
def appliances(tmp_path: Path, template: Template) -> Iterator[Appliances]:
    factory = Appliances(tmp_path, template)
    yield factory
    factory.cleanup()


@pytest.fixture(scope="module")
def module_appliances(tmp_path_factory: pytest.TempPathFactory, template: Template) -> Iterator[Appliances]:
    factory = Appliances(tmp_path_factory.mktemp("appliances"), template)
    yield factory
    factory.cleanup()


@pytest.fixture(scope="module")
def module_graph_api() -> Iterator[GraphStandIn]:
    standin = GraphStandIn().start()
    yield standin
    standin.stop()


def json_dumps(payload: Any, *, ascii_only: bool = True) -> bytes:
    """Meta escapes non-ASCII characters (``\\uXXXX``) in the bodies it signs."""
    return json.dumps(payload, ensure_ascii=ascii_only, separators=(",", ":")).encode()
