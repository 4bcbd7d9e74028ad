"""The entitlement in force, and the checks that enforce it.

Where it comes from, in order: the license file (``AAT_LICENSE_FILE``, self-hosted customers),
else the last token the control plane pushed (hosted tenants), else none: no limits (a
self-hosted appliance without a license, development). Tokens are verified with the control
plane's public key (``AAT_ENTITLEMENTS_PUBLIC_KEY``) and, when ``AAT_TENANT_ID`` is set, must
name this tenant.

An expired entitlement keeps its limits (expiry never widens what a workspace may use); the
API reports it as expired, and the control plane pushes a fresh token long before.

``runtime.entitlements`` holds the answer of ``GET /api/v1/entitlements`` without usage (the
AI executor reads its ``limits`` through :func:`appliance.ai.limits.monthly_reply_limit`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from appliance.entitlements import store
from appliance.entitlements.token import Entitlements, InvalidEntitlement, load_public_key, verify
from appliance.errors import AatError, Conflict, ServiceUnavailable, Unprocessable
from appliance.settings import Settings
from appliance.timeutil import to_iso, utcnow

__all__ = ["LicenseError", "load", "accept", "describe", "check_room", "check_channel_room", "NONE"]

log = logging.getLogger("aat.entitlements")

NONE: dict[str, Any] = {"plan": "unlimited", "limits": {}, "expires_at": None, "source": "none", "expired": False}


class LicenseError(AatError):
    """The license file or the public key is unusable: the appliance does not start."""

    default_code = "invalid_license"


def _key(settings: Settings) -> Any:
    text = settings.entitlements_public_key or ""
    if not text.strip():
        return None
    try:
        return load_public_key(text)
    except ValueError as exc:
        raise LicenseError(f"AAT_ENTITLEMENTS_PUBLIC_KEY: {exc}") from None


def _answer(found: Entitlements, source: str) -> dict[str, Any]:
    return {
        "plan": found.plan, "limits": dict(found.limits), "expires_at": to_iso(found.expires_at),
        "issued_at": to_iso(found.issued_at), "source": source, "expired": found.expired(utcnow()),
    }


def _from_license(settings: Settings, key: Any) -> dict[str, Any]:
    path: Path = settings.license_file  # type: ignore[assignment]
    if key is None:
        raise LicenseError("AAT_LICENSE_FILE is set but AAT_ENTITLEMENTS_PUBLIC_KEY is not: "
                           "the license cannot be verified")
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise LicenseError(f"AAT_LICENSE_FILE: cannot read {path}: {exc.__class__.__name__}") from None
    try:
        return _answer(verify(text, key, tenant=settings.tenant_id), "license_file")
    except InvalidEntitlement as exc:
        raise LicenseError(f"AAT_LICENSE_FILE: {exc.message}") from None


def load(db: Database, settings: Settings) -> dict[str, Any]:
    """The entitlement in force at start (a writer job: it records the contacts limit the flow
    runner reads). Raises :class:`LicenseError` for an unusable license file or key; a stored
    token that no longer verifies (the key was rotated) is dropped with a warning."""
    key = _key(settings)
    if settings.license_file is not None:
        answer = _from_license(settings, key)
    else:
        answer = NONE
        token = store.stored_token(db)
        if token is not None and key is not None:
            try:
                answer = _answer(verify(token, key, tenant=settings.tenant_id), "control_plane")
            except InvalidEntitlement as exc:
                log.warning("stored entitlement dropped", extra={"reason": exc.code})
    store.store_contacts_limit(db, answer["limits"].get("contacts"))
    return answer


def accept(db: Database, settings: Settings, token: str, current: dict[str, Any]) -> dict[str, Any]:
    """A token pushed by the control plane (a writer job). The signature is the credential:
    only the control plane's key makes one. Refuses a token older than the one in force (a
    replay cannot roll limits back) and any token while a license file governs."""
    if settings.license_file is not None:
        raise Conflict("this appliance runs on a license file (AAT_LICENSE_FILE); it takes no pushed entitlements",
                       code="license_file_in_force")
    key = _key(settings)
    if key is None:
        raise ServiceUnavailable("this appliance has no AAT_ENTITLEMENTS_PUBLIC_KEY to verify entitlements with",
                                 code="entitlements_not_configured")
    found = verify(token, key, tenant=settings.tenant_id)
    answer = _answer(found, "control_plane")
    if current.get("source") == "control_plane" and answer["issued_at"] < current["issued_at"]:
        raise Conflict("this entitlement is older than the one in force", code="stale_entitlement")
    store.store_token(db, token.strip())
    store.store_contacts_limit(db, found.limits.get("contacts"))
    return answer


def describe(current: dict[str, Any], usage: dict[str, int]) -> dict[str, Any]:
    """The API's answer: the entitlement, what is used, and which limits are reached."""
    limits = current["limits"]
    over = sorted(name for name, limit in limits.items() if usage.get(name, 0) > limit)
    reached = sorted(name for name, limit in limits.items() if usage.get(name, 0) >= limit)
    return {**current, "expired": bool(current["expires_at"]) and current["expires_at"] <= to_iso(utcnow()),
            "usage": usage, "limit_reached": reached, "over_limit": over}


def check_room(db: Database, current: dict[str, Any], name: str, what: str) -> None:
    """Refuse adding one more ``name`` (``seats``, ``channels``) when the plan's limit is reached."""
    limit = current["limits"].get(name)
    if limit is None:
        return
    used = store.usage(db, utcnow().strftime("%Y-%m"))[name]
    if used >= limit:
        raise Unprocessable(
            f"the {current['plan']} plan allows {limit} {what}; {used} are in use. Remove one or change the plan",
            code="limit_reached",
        )


def check_channel_room(db: Database, current: dict[str, Any], channel_type: str, external_id: str) -> None:
    """:func:`check_room` for connecting a channel; reconnecting one that is connected is free."""
    connected = db.execute(
        "SELECT 1 FROM channels WHERE type = ? AND external_id = ? AND status != 'disconnected'",
        [channel_type, external_id]).fetchone()
    if connected is None:
        check_room(db, current, "channels", "connected channels")
