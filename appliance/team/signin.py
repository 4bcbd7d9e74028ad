"""Signing in and out, invitations and password resets: the rules, in one place.

- Sign-in checks the password with argon2id (off the event loop). A wrong email and a wrong
  password get the same answer, after the same work (a dummy hash is verified for unknown
  emails), so neither timing nor wording says which accounts exist.
- Throttling: 5 failures for one email, or 30 from one address, within 15 minutes lock that
  email or address for 15 minutes (429 with the time left). Success clears the email's count.
- Every sign-in creates a new session (the old cookie, if any, is ended: no fixation) and is
  audited; so are sign-outs, invitations and resets.
- One-time links: invitations last 7 days, resets 2 hours; using one ends every other session
  of that user.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from datetime import timedelta

from sqlite_utils import Database

from appliance.audit import Actor, record
from appliance.errors import TooManyRequests, Unauthorized, Unprocessable
from appliance.runtime import Runtime
from appliance.team import sessions, store
from appliance.team.credentials import hash_password, verify_password
from appliance.timeutil import from_iso, utcnow

__all__ = ["SignedIn", "sign_in", "sign_out", "use_link", "INVITE_VALID", "RESET_VALID", "MIN_PASSWORD"]

EMAIL_LIMIT, ADDRESS_LIMIT = 5, 30
WINDOW = LOCK = timedelta(minutes=15)
INVITE_VALID = timedelta(days=7)
RESET_VALID = timedelta(hours=2)
MIN_PASSWORD = 12


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the email is unknown, so a miss costs what a hit costs.
    Made on first use: hashing at import added ~0.2 s to every start."""
    return hash_password("a password nobody has")


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str
    csrf_token: str
    user_id: int
    max_age: timedelta


def _keys(email: str, ip: str | None) -> list[str]:
    return [f"email:{email.strip().lower()}", f"ip:{ip or 'unknown'}"]


async def sign_in(
    runtime: Runtime, email: str, password: str, *, ip: str | None, user_agent: str | None,
    previous_token: str | None = None,
) -> SignedIn:
    keys = _keys(email, ip)
    locked = await runtime.db.read(sessions.throttle_state, keys)
    if locked:
        minutes = max(1, round((from_iso(locked) - utcnow()).total_seconds() / 60))
        raise TooManyRequests(f"too many failed sign-ins; try again in {minutes} minute{'s' if minutes > 1 else ''}")
    user = await runtime.db.read(store.credentials_for, email.strip())
    candidate = user["password_hash"] if user and user["password_hash"] else _dummy_hash()
    ok = await asyncio.to_thread(verify_password, candidate, password)
    if not ok or user is None or not user["password_hash"] or user["disabled_at"] is not None:
        def fail(db: Database) -> None:
            sessions.record_failure(db, keys[0], limit=EMAIL_LIMIT, window=WINDOW, lock=LOCK)
            sessions.record_failure(db, keys[1], limit=ADDRESS_LIMIT, window=WINDOW, lock=LOCK)
        await runtime.db.write(fail)
        raise Unauthorized("wrong email or password", code="signin_failed")
    max_age = timedelta(days=runtime.settings.session_max_days)

    def start(db: Database) -> tuple[str, str]:
        if previous_token:
            sessions.end_session(db, previous_token)
        sessions.clear_failures(db, keys[0])
        created = sessions.new_session(db, user["id"], max_age=max_age, ip=ip, user_agent=user_agent)
        record(db, Actor("user", str(user["id"]), user["email"], ip), "user.signin", target_kind="user",
               target_id=user["id"])
        return created

    token, csrf = await runtime.db.write(start)
    return SignedIn(token=token, csrf_token=csrf, user_id=user["id"], max_age=max_age)


async def sign_out(runtime: Runtime, token: str, *, ip: str | None) -> None:
    idle = timedelta(hours=runtime.settings.session_idle_hours)
    session = await runtime.db.read(sessions.session_for, token, idle=idle)

    def end(db: Database) -> None:
        sessions.end_session(db, token)
        if session is not None:
            record(db, Actor("user", str(session["user_id"]), session["email"], ip), "user.signout",
                   target_kind="user", target_id=session["user_id"])

    await runtime.db.write(end)


async def use_link(runtime: Runtime, token: str, purpose: str, password: str, *, ip: str | None) -> int:
    """Set the password through an invitation or reset link; returns the user id."""
    if len(password) < MIN_PASSWORD:
        raise Unprocessable(f"the password needs at least {MIN_PASSWORD} characters", code="weak_password")
    password_hash = await asyncio.to_thread(hash_password, password)

    def apply(db: Database) -> int:
        link = sessions.take_link(db, token, purpose)
        if link is None:
            raise Unprocessable("this link is unknown, used or expired; ask an admin for a new one",
                                code="link_invalid")
        store.set_password(db, link["user_id"], password_hash)
        sessions.end_user_sessions(db, link["user_id"])
        record(db, Actor("user", str(link["user_id"]), link["email"], ip),
               "user.invite_accepted" if purpose == "invite" else "user.password_reset",
               target_kind="user", target_id=link["user_id"])
        return int(link["user_id"])

    return await runtime.db.write(apply)
