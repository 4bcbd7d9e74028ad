"""Helpers for the page tests: users signed in through the real form, conversations made by
webhook, and messages of every kind stored the way the ingest and the outbox store them."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from litestar.testing import AsyncTestClient

from appliance.inbox import actions
from appliance.inbox import store as inbox
from appliance.store.workspace import Workspace
from appliance.team import store as team
from appliance.team.credentials import hash_password
from appliance.timeutil import iso_now
from tests.appliance.api_helpers import PAGE_ID, Shared, messenger_text, rows
from tests.helpers import connect_channel, ingest

PASSWORD = "correct horse battery staple"
ORIGIN = {"Origin": "https://testserver.local"}
_ids = itertools.count(1)
_HASH: dict[str, str] = {}


def make_user(workspace: Workspace, role: str, email: str | None = None, name: str = "") -> dict[str, Any]:
    email = email or f"{role}.{next(_ids)}@example.com"
    if PASSWORD not in _HASH:  # argon2 is slow on purpose: hash once per run
        _HASH[PASSWORD] = hash_password(PASSWORD)
    return workspace.gateway.write_sync(lambda db: team.create_user(
        db, email=email, role=role, name=name, password_hash=_HASH[PASSWORD], now=iso_now()))


async def sign_in(client: AsyncTestClient, workspace: Workspace, role: str = "agent", **user: Any) -> dict[str, Any]:
    """A user of ``role`` signed in through ``POST /signin``; the client keeps the cookie."""
    row = make_user(workspace, role, **user)
    client.cookies.clear()
    response = await client.post("/signin", data={"email": row["email"], "password": PASSWORD, "next": "/inbox"},
                                 headers=ORIGIN, follow_redirects=False)
    assert response.status_code == 303, response.text
    # The cookie is Secure: set it again without the flag, so that a client on http:// (the
    # module-shared app) sends it too.
    token = response.cookies.get("aat-session")
    client.cookies.clear()
    client.cookies.set("aat-session", token)
    return row


def csrf_of(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


async def conversation(client: AsyncTestClient, workspace: Workspace, *, text: str = "hello",
                       page: str = PAGE_ID) -> dict[str, Any]:
    """A Messenger conversation started by a webhook; returns its ids."""
    n = next(_ids)
    psid = f"77{n:010d}"
    if not rows(workspace, "SELECT id FROM channels WHERE external_id = ?", [page]):
        connect_channel(workspace, "messenger", page, name="Casa Lima")
    await ingest(client, messenger_text(psid, f"m_web_{n}", text=text, page=page))
    found = rows(workspace, """SELECT cv.id AS conversation, c.id AS contact, c.channel_id AS channel
                               FROM contacts c JOIN conversations cv ON cv.contact_id = c.id
                               WHERE c.external_id = ?""", [psid])[0]
    return {**found, "psid": psid}


def add_message(workspace: Workspace, ids: dict[str, Any], **values: Any) -> int:
    """A message row as ingest or the outbox would store it (``kind``, ``text``, ``payload`` ...)."""
    row = {
        "conversation_id": ids["conversation"], "contact_id": ids["contact"], "channel_id": ids["channel"],
        "direction": "in", "kind": "text", "text": None, "payload": {}, "attachments": [],
        "status": "received", "sent_by": "contact", "occurred_at": iso_now(), "created_at": iso_now(),
        **values,
    }
    return int(workspace.gateway.write_sync(lambda db: inbox.insert_message(db, row)))


def add_note(workspace: Workspace, ids: dict[str, Any], text: str, user_id: int | None = None) -> dict[str, Any]:
    return workspace.gateway.write_sync(
        lambda db: actions.add_note(db, ids["conversation"], user_id, text, iso_now()))


@dataclass
class Web:
    """The module's app with one signed-in session per role, made once (argon2 is slow on
    purpose) and put back on the client by :meth:`login`."""

    client: AsyncTestClient
    workspace: Workspace
    sessions: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    async def login(self, role: str) -> dict[str, Any]:
        if role not in self.sessions:
            user = await sign_in(self.client, self.workspace, role)
            self.sessions[role] = (self.client.cookies.get("aat-session"), user)
        cookie, user = self.sessions[role]
        self.client.cookies.clear()
        self.client.cookies.set("aat-session", cookie)
        return user

    def anonymous(self) -> AsyncTestClient:
        self.client.cookies.clear()
        return self.client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def web(shared: Shared) -> AsyncIterator[Web]:
    """The module's shared app as :class:`Web` (the module imports ``shared`` and ``web``)."""
    yield Web(shared.client, shared.workspace)
