"""Shared fixtures: settings on a temp data dir, an open workspace, the Graph API stand-in,
and an app client that runs the real lifespan (journal processor, sender, queue)."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.app import create_app
from appliance.channels.signature import sign
from appliance.settings import Settings
from appliance.store.workspace import Workspace, open_workspace
from tests.standins.graph_api import GraphStandIn

FIXTURES = Path(__file__).parent / "fixtures" / "meta"
APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
MASTER_KEY = base64.b64encode(b"k" * 32).decode()


# The fixtures were captured at CAPTURED_AT (Unix seconds; Messenger and Instagram add three digits
# of milliseconds). Loaded, they carry this run's start instead: the appliance counts a contact's
# 24-hour messaging window from the message's own timestamp, as Meta does, so a fixed capture time
# would close every window a day after the capture and no flow would answer.
CAPTURED_AT = 1795721862
RUN_STARTED_AT = int(time.time())


def fixture_bytes(name: str) -> bytes:
    """The fixture's body, with its capture time moved to ``RUN_STARTED_AT``."""
    body = (FIXTURES / f"{name}.json").read_bytes()
    return body.replace(str(CAPTURED_AT).encode(), str(RUN_STARTED_AT).encode())


def fixture_json(name: str) -> dict[str, Any]:
    return json.loads(fixture_bytes(name))


def signed_headers(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    return {"X-Hub-Signature-256": sign(body, secret.encode()), "Content-Type": "application/json"}


@pytest.fixture
def graph_api() -> Iterator[GraphStandIn]:
    standin = GraphStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture
def settings(tmp_path: Path, graph_api: GraphStandIn) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        master_key=MASTER_KEY,
        meta_app_secret=APP_SECRET,
        meta_verify_token=VERIFY_TOKEN,
        graph_api_base=graph_api.base_url,
        instagram_api_base=graph_api.base_url,
        send_backoff_base_seconds=0.05,
        send_in_doubt_grace_seconds=0,
        http_timeout_seconds=2,
    )


@pytest.fixture
def workspace(settings: Settings) -> Iterator[Workspace]:
    ws = open_workspace(settings)
    yield ws
    ws.close()


@pytest.fixture
async def client(settings: Settings, workspace: Workspace) -> AsyncIterator[AsyncTestClient]:
    """The app with its real lifespan (its own HTTP client, pointed at the stand-in by the
    settings); requests go through the ASGI stack. The app runs on the test client's portal
    thread and loop: tests watch it through HTTP and the thread-safe gateway."""
    app = create_app(settings, workspace=workspace, run_queue=False)
    async with AsyncTestClient(app=app, base_url="https://testserver.local") as test_client:
        yield test_client


@pytest.fixture
def runtime(client: AsyncTestClient) -> Any:
    return client.app.state.runtime


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("AAT_LOG_LEVEL", "info")
