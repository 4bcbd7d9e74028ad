"""Helpers for the ``/api/v1`` tests: webhook bodies built from the Meta fixtures, database
peeks through the thread-safe gateway, the error-body check, and cursor walking.

Contacts and conversations are made the way production makes them: by ingesting signed
webhooks (``tests.helpers.ingest``). Only what no API or webhook can set (a window's age, a
closed or assigned conversation) is written through the gateway.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

from appliance.app import create_app
from appliance.settings import Settings
from appliance.store.rows import many, scalar
from appliance.store.workspace import Workspace, open_workspace
from appliance.timeutil import to_iso, utcnow
from tests.conftest import APP_SECRET, MASTER_KEY, VERIFY_TOKEN, fixture_json
from tests.standins.graph_api import GraphStandIn

PAGE_ID = "112233445566778"  # the Page of the messenger fixtures
IG_ACCOUNT_ID = "17841455566677788"  # the Instagram account of the instagram fixtures
WA_PHONE_NUMBER_ID = "109876543210987"  # the WhatsApp number of the whatsapp fixtures


def now_ms(minutes_ago: float = 0) -> int:
    """A Meta timestamp (milliseconds) relative to now: the 24-hour window is measured from
    the contact's messages, so tests never rely on the fixtures' fixed dates."""
    return int((utcnow() - timedelta(minutes=minutes_ago)).timestamp() * 1000)


def _messaging_text(fixture: str, asset: str, sender: str, mid: str, text: str, at_ms: int | None) -> bytes:
    body = fixture_json(fixture)
    entry = body["entry"][0]
    at = now_ms() if at_ms is None else at_ms
    entry["id"] = asset
    entry["time"] = at
    event = entry["messaging"][0]
    event["sender"]["id"] = sender
    event["recipient"]["id"] = asset
    event["timestamp"] = at
    event["message"] = {"mid": mid, "text": text}
    return json.dumps(body).encode()


def messenger_text(sender: str, mid: str, *, text: str = "hello", at_ms: int | None = None,
                   page: str = PAGE_ID) -> bytes:
    """A Messenger text delivery from PSID ``sender`` to ``page``, sent ``at_ms`` (default now)."""
    return _messaging_text("messenger_text", page, sender, mid, text, at_ms)


def instagram_text(sender: str, mid: str, *, text: str = "hello", at_ms: int | None = None,
                   account: str = IG_ACCOUNT_ID) -> bytes:
    """An Instagram text delivery from IGSID ``sender``, sent ``at_ms`` (default now)."""
    return _messaging_text("instagram_text", account, sender, mid, text, at_ms)


def whatsapp_text(wa_id: str, wamid: str, *, name: str = "Giorgi", text: str = "hello",
                  at_ms: int | None = None) -> bytes:
    """A WhatsApp text delivery from ``wa_id`` (no BSUID) with profile name ``name``."""
    body = fixture_json("whatsapp_text")
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id}]
    at_s = (now_ms() if at_ms is None else at_ms) // 1000
    value["messages"] = [{"id": wamid, "timestamp": str(at_s), "from": wa_id, "type": "text",
                          "text": {"body": text}}]
    return json.dumps(body).encode()


# --- the database, through the gateway -----------------------------------------------------

def rows(workspace: Workspace, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    return workspace.gateway.read_sync(lambda db: many(db, sql, params))


def value(workspace: Workspace, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> Any:
    return workspace.gateway.read_sync(lambda db: scalar(db, sql, params))


def count(workspace: Workspace, table: str) -> int:
    return int(value(workspace, f"SELECT count(*) FROM {table}"))


def snapshot(workspace: Workspace, *tables: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of ``tables``: compare before and after to prove nothing was written."""
    return {t: sorted(rows(workspace, f"SELECT * FROM {t}"), key=repr) for t in tables}


def execute(workspace: Workspace, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> None:
    workspace.gateway.write_sync(lambda db: db.execute(sql, params))


def age_window(workspace: Workspace, contact_id: int | str, *, hours: float) -> None:
    """Make the contact's last window-opening message ``hours`` old."""
    execute(workspace, "UPDATE contacts SET last_inbound_at = ? WHERE id = ?",
            [to_iso(utcnow() - timedelta(hours=hours)), int(contact_id)])


# --- responses --------------------------------------------------------------------------------

def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert ``response`` is an error of ``status`` in the api.md shape; return its ``error``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message"} <= set(error) <= {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text
    return error


def detail_paths(response: httpx.Response) -> list[str]:
    return [d["path"] for d in error_of(response, 422).get("details", [])]


async def walk(client: AsyncTestClient, url: str, headers: dict[str, str], **params: Any) -> list[list[dict[str, Any]]]:
    """Follow ``next_cursor`` from the first page to the last; returns the pages."""
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(url, headers=headers, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "the cursor never ends"


# --- an app per module -----------------------------------------------------------------------

@dataclass(frozen=True)
class Shared:
    client: AsyncTestClient
    workspace: Workspace
    graph: GraphStandIn


# Tests that use the ``shared`` fixture run on the module's event loop, the one its app runs on.
on_shared_app = pytest.mark.asyncio(loop_scope="module")


@contextlib.asynccontextmanager
async def running_app(data_dir: Path) -> AsyncIterator[Shared]:
    """An app with its own Graph stand-in and workspace in ``data_dir``, for module-scoped
    fixtures (conftest's fixtures are per test)."""
    graph = GraphStandIn().start()
    settings = Settings(
        data_dir=data_dir, master_key=MASTER_KEY, meta_app_secret=APP_SECRET,
        meta_verify_token=VERIFY_TOKEN, graph_api_base=graph.base_url,
        instagram_api_base=graph.base_url, send_backoff_base_seconds=0.05,
        send_in_doubt_grace_seconds=0, http_timeout_seconds=2,
    )
    workspace = open_workspace(settings)
    try:
        async with AsyncTestClient(app=create_app(settings, workspace=workspace, run_queue=False)) as client:
            yield Shared(client, workspace, graph)
    finally:
        workspace.close()
        graph.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Shared]:
    """One running app for a module's worth of tests that each build their own rows (app
    start-up is the slow part of an API test). Import it into the test module; tests using
    it are marked ``on_shared_app``."""
    async with running_app(tmp_path_factory.mktemp("shared") / "data") as app:
        yield app
