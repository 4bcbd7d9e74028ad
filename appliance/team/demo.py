"""The demo login of a development workspace (generated master key, no users yet).

So that `aat-appliance serve` on a fresh clone opens on a usable workspace: an owner with a
random password and an API token, both printed at every start. They are kept in the encrypted
workspace (``workspace_settings``), never in a plain file; a workspace with a real master key
never gets a demo login.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from sqlite_utils import Database

from appliance.store.rows import scalar
from appliance.team import store
from appliance.team.credentials import hash_password, hash_token, new_api_token

__all__ = ["DemoLogin", "ensure_demo_login", "DEMO_EMAIL"]

DEMO_EMAIL = "owner@demo.local"
_KEY = "demo_login"


@dataclass(frozen=True, slots=True)
class DemoLogin:
    email: str
    password: str
    api_token: str


def ensure_demo_login(db: Database, now: str) -> DemoLogin | None:
    """Create the demo owner on an empty workspace, or return the one created before.
    ``None`` when the workspace has users that are not the demo login's."""
    saved = scalar(db, "SELECT value FROM workspace_settings WHERE key = ?", [_KEY])
    if saved:
        return DemoLogin(**json.loads(saved))
    if store.user_count(db):
        return None
    password = secrets.token_urlsafe(12)
    token = new_api_token()
    store.create_user(db, email=DEMO_EMAIL, role="owner", name="Demo owner",
                      password_hash=hash_password(password), now=now)
    store.create_token(db, name="demo", token_hash=hash_token(token), prefix=token[:10],
                       role="owner", now=now)
    login = DemoLogin(DEMO_EMAIL, password, token)
    db.execute("INSERT INTO workspace_settings (key, value) VALUES (?, ?)",
               [_KEY, json.dumps({"email": login.email, "password": login.password,
                                  "api_token": login.api_token})])
    return login
