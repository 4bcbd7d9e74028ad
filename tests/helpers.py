"""Small helpers for tests: credentials, webhook posting, waiting for the workers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from litestar.testing import AsyncTestClient

from appliance.connections import store as channels
from appliance.ingest import journal
from appliance.outbox import store as outbox
from appliance.store.workspace import Workspace
from appliance.team import store as team
from appliance.team.credentials import hash_token, new_api_token
from appliance.timeutil import iso_now
from tests.conftest import signed_headers


def make_token(workspace: Workspace, role: str = "admin") -> dict[str, str]:
    """An API token of ``role``; returns the Authorization header."""
    token = new_api_token()
    workspace.gateway.write_sync(
        lambda db: team.create_token(db, name=f"test-{role}", token_hash=hash_token(token),
                                     prefix=token[:10], role=role, now=iso_now())
    )
    return {"Authorization": f"Bearer {token}"}


def connect_channel(workspace: Workspace, channel_type: str, external_id: str,
                    token: str = "EAAG-test-token", **extra: Any) -> int:
    enc = workspace.fields.encrypt(token, channels.token_context(channel_type, external_id))
    row = workspace.gateway.write_sync(
        lambda db: channels.connect_channel(
            db, channel_type=channel_type, external_id=external_id, token_enc=enc,
            name=extra.get("name"), waba_id=extra.get("waba_id"), page_id=extra.get("page_id"),
            rate_limit=extra.get("rate_limit"), now=iso_now(),
        )
    )
    return int(row["id"])


async def post_webhook(client: AsyncTestClient, body: bytes, **kwargs: Any) -> Any:
    return await client.post("/webhooks/meta", content=body, headers=signed_headers(body, **kwargs))


async def journal_settled(client: AsyncTestClient) -> None:
    """Wait until the app's own journal processor has no pending rows.

    The app runs in the test client's portal (another thread and event loop), so tests watch
    the database through the thread-safe gateway instead of touching the app's tasks.
    """
    runtime = client.app.state.runtime

    async def settled() -> bool:
        return await runtime.db.read(lambda db: journal.lag(db)["pending"]) == 0

    await wait_until(settled)


async def ingest(client: AsyncTestClient, body: bytes) -> None:
    """Post a signed delivery and wait until the journal has processed it."""
    response = await post_webhook(client, body)
    assert response.status_code == 200, response.text
    await journal_settled(client)


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def outbox_empty(client: AsyncTestClient) -> None:
    runtime = client.app.state.runtime

    async def empty() -> bool:
        return await runtime.db.read(outbox.depth) == 0

    await wait_until(empty)
