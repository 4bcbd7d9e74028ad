"""Password resets from the command line (``aat-appliance users reset-password``).

Synchronous, inside the caller's transaction (``direct_database``: all or nothing). The same rules as the
web's reset links (:mod:`appliance.team.signin`): at least ``MIN_PASSWORD`` characters, argon2id,
every session of the user ends, the audit log records who did it. An unknown email is a
:class:`NotFound` naming no one; nothing is written then.
"""

from __future__ import annotations

from sqlite_utils import Database

from appliance.audit import Actor, record
from appliance.errors import NotFound, Unprocessable
from appliance.team import sessions, store
from appliance.team.credentials import hash_password
from appliance.team.signin import MIN_PASSWORD, RESET_VALID

__all__ = ["reset_password", "reset_link"]


def _user_id(db: Database, email: str) -> int:
    row = store.credentials_for(db, email.strip())
    if row is None:
        raise NotFound("no user has this email; `aat-appliance users create` makes one")
    return int(row["id"])


def reset_password(db: Database, email: str, password: str, *, actor: Actor) -> int:
    """Set the user's password now and end their sessions; returns the user id."""
    if len(password) < MIN_PASSWORD:
        raise Unprocessable(f"the password needs at least {MIN_PASSWORD} characters", code="weak_password")
    user_id = _user_id(db, email)
    password_hash = hash_password(password)
    store.set_password(db, user_id, password_hash)
    sessions.end_user_sessions(db, user_id)
    record(db, actor, "user.password_reset", target_kind="user", target_id=user_id)
    return user_id


def reset_link(db: Database, email: str, *, public_url: str, actor: Actor) -> str:
    """A one-time reset link for the user (earlier reset links end), valid ``RESET_VALID``."""
    user_id = _user_id(db, email)
    token = sessions.new_link(db, "reset", user_id, valid_for=RESET_VALID)
    record(db, actor, "user.reset_link", target_kind="user", target_id=user_id)
    return f"{public_url.rstrip('/')}/reset/{token}"
