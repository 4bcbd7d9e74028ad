"""Signed usage reports from a hosted appliance to its control plane.

What is reported (:func:`counts`, one UTC month, ``period`` = ``YYYY-MM``): ``contacts``,
``automated_contacts`` (those the contacts limit automates: the first ``limit`` by arrival),
``ai_replies`` (this month), ``seats`` (team members who can sign in), ``channels``
(connected) and ``messages`` (in and out, created this month).

Wire format (:func:`build`, :func:`signature`): a JSON body ``{tenant, report_id, issued_at,
period, usage}`` and ``X-AAT-Usage-Signature: v1=<hex HMAC-SHA256(key, body bytes)>``. The key
is HKDF-SHA256 of the tenant's own webhook secret (``AAT_META_APP_SECRET``, which the control
plane issued at provisioning and keeps sealed) with its own ``info``, so it is a different key
from the one that signs forwarded webhooks. ``report_id`` is random and ``issued_at`` is now:
the control plane refuses a reused id, a time more than 300 s away, or one not newer than the
last report it accepted from the tenant.

Sent only when ``AAT_CONTROL_PLANE_URL``, ``AAT_TENANT_ID`` and ``AAT_META_APP_SECRET`` are all
set (a hosted tenant): hourly by the queue, and on demand by ``aat-appliance usage report``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlite_utils import Database

from appliance.entitlements.store import usage
from appliance.settings import Settings
from appliance.store.rows import scalar
from appliance.timeutil import to_iso

__all__ = ["HEADER", "PATH", "FIELDS", "report_key", "signature", "counts", "build", "configured", "send",
           "report_now"]

HEADER = "X-AAT-Usage-Signature"
PATH = "/usage/reports"
FIELDS = ("contacts", "automated_contacts", "ai_replies", "seats", "channels", "messages")
_INFO = b"aat-usage-report/v1"


def report_key(secret: str) -> bytes:
    """The HMAC key of usage reports, derived from the tenant's webhook secret."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode())


def signature(body: bytes, secret: str) -> str:
    """The ``X-AAT-Usage-Signature`` value of these exact bytes."""
    return "v1=" + hmac.new(report_key(secret), body, hashlib.sha256).hexdigest()


def counts(db: Database, now: datetime) -> dict[str, int]:
    """The month's numbers (see the module docstring), read in one transaction."""
    month = now.strftime("%Y-%m")
    measured = usage(db, month)
    limit = scalar(db, "SELECT value FROM workspace_settings WHERE key = 'entitlement_contacts'")
    contacts = measured["contacts"]
    start = f"{month}-01T00:00:00"
    return {
        "contacts": contacts,
        "automated_contacts": contacts if limit is None else min(contacts, int(limit)),
        "ai_replies": measured["ai_replies_per_month"],
        "seats": measured["seats"],
        "channels": measured["channels"],
        "messages": int(scalar(db, "SELECT COUNT(*) FROM messages WHERE created_at >= ?", [start])),
    }


def build(tenant: str, numbers: dict[str, int], now: datetime) -> bytes:
    """The report body: a fresh ``report_id``, ``issued_at`` = ``now``."""
    return json.dumps({"tenant": tenant, "report_id": secrets.token_hex(16), "issued_at": to_iso(now),
                       "period": now.strftime("%Y-%m"), "usage": numbers}, separators=(",", ":")).encode()


def configured(settings: Settings) -> bool:
    return bool(settings.control_plane_url and settings.tenant_id and settings.meta_app_secret
                and settings.meta_app_secret.get_secret_value())


def send(settings: Settings, body: bytes, *, timeout: float = 10.0) -> dict[str, Any]:
    """POST a built report; returns ``{"status", "answer"}`` (the control plane's JSON, or the
    error's name when it could not be reached). Never raises for a refusal: the next report
    carries the same (newer) numbers."""
    assert settings.control_plane_url and settings.meta_app_secret
    url = settings.control_plane_url.rstrip("/") + PATH
    headers = {"Content-Type": "application/json",
               HEADER: signature(body, settings.meta_app_secret.get_secret_value())}
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        return {"status": None, "answer": type(exc).__name__}
    try:
        answer: Any = response.json()
    except ValueError:
        answer = response.text[:200]
    return {"status": response.status_code, "answer": answer}


def report_now(settings: Settings) -> dict[str, Any]:
    """``aat-appliance usage report``: read the numbers on a connection of its own (beside a
    running server or not), send them; ``{"status", "answer", "usage"}``."""
    from appliance.errors import AatError
    from appliance.store import connection
    from appliance.store.gateway import wrap_database
    from appliance.store.workspace import load_keys
    from appliance.timeutil import utcnow

    if not configured(settings):
        raise AatError("usage reports need AAT_CONTROL_PLANE_URL, AAT_TENANT_ID and AAT_META_APP_SECRET "
                       "(a hosted tenant: the control plane sets them)", code="not_configured")
    if not settings.database_path.exists():
        raise AatError(f"there is no workspace in {settings.data_dir}", code="no_workspace")
    _, data_key = load_keys(settings, allow_generate=False)
    conn = connection.connect(settings.database_path, data_key, readonly=True)
    try:
        now = utcnow()
        numbers = counts(wrap_database(conn), now)
    finally:
        conn.close()
    assert settings.tenant_id
    return {**send(settings, build(settings.tenant_id, numbers, now)), "usage": numbers}
