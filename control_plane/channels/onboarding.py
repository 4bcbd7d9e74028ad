"""Channel onboarding flows and token health (docs/spec/meta-platform.md §9).

- **Facebook Login for Business**: code -> user token -> long-lived user token -> the Pages
  with their tokens (a Page token derived from a long-lived user token does not expire) ->
  per Page: ``subscribed_apps``, then the Messenger channel, then the Instagram account behind
  the Page (if any) as an Instagram channel through that Page.
- **WhatsApp Embedded Signup**: the code is exchanged first (it lives 30 s), then the WABA is
  subscribed, the number registered (not for coexistence numbers: no PIN), and the channel
  connected with the business token.

Each flow ends in :meth:`Channels.connect` (routing entry + channel in the tenant).

**Token health**: once a day every stored token is checked with ``debug_token``. A token that
is invalid, or expires (or loses data access) within 7 days, marks its channel
``needs_reauth`` and emails the tenant's owner once, before it breaks.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import httpx

from appliance import audit
from appliance.timeutil import iso_in, iso_now, to_iso
from control_plane.channels import store
from control_plane.channels.graph import Graph
from control_plane.channels.models import ConnectChannel, FacebookLogin, WhatsAppSignup
from control_plane.channels.service import Channels, token_context
from control_plane.db import Store
from control_plane.notify import Email, Notifier
from control_plane.settings import ControlPlaneSettings, PlatformApp

__all__ = ["Onboarding", "WARN_DAYS"]

log = logging.getLogger("aat.cp.onboarding")
WARN_DAYS = 7


class Onboarding:
    def __init__(self, settings: ControlPlaneSettings, platform: PlatformApp, cp_store: Store,
                 http: httpx.AsyncClient, channels: Channels, notifier: Notifier) -> None:
        self.graph = Graph(settings, platform, http)
        self.store = cp_store
        self.channels = channels
        self.notifier = notifier

    async def facebook_login(self, tenant_id: str, data: FacebookLogin, actor: audit.Actor) -> list[dict[str, Any]]:
        token = await self.graph.exchange_code(data.code, data.redirect_uri)
        user_token = await self.graph.long_lived(token)
        connected = []
        for page in await self.graph.pages(user_token):
            page_id, page_token = str(page["id"]), str(page["access_token"])
            await self.graph.subscribe_page(page_id, page_token)
            connected.append(await self.channels.connect(tenant_id, ConnectChannel(
                type="messenger", external_id=page_id, access_token=page_token, name=page.get("name")), actor))
            account = await self.graph.instagram_account(page_id, page_token)
            if account is not None:
                connected.append(await self.channels.connect(tenant_id, ConnectChannel(
                    type="instagram", external_id=str(account["id"]), access_token=page_token,
                    name=account.get("username"), page_id=page_id), actor))
        return connected

    async def whatsapp_signup(self, tenant_id: str, data: WhatsAppSignup, actor: audit.Actor) -> dict[str, Any]:
        token = await self.graph.exchange_code(data.code)  # first: the code expires 30 s after FINISH
        await self.graph.subscribe_waba(data.waba_id, token)
        if data.pin is not None:
            await self.graph.register_number(data.phone_number_id, token, data.pin)
        return await self.channels.connect(tenant_id, ConnectChannel(
            type="whatsapp", external_id=data.phone_number_id, access_token=token, waba_id=data.waba_id,
            name=data.name), actor)

    async def check_tokens(self, *, now: datetime | None = None) -> dict[str, int]:
        """The daily ``debug_token`` pass over every stored token."""
        now = now or datetime.now(UTC)
        # Checked less than 20 h ago: skipped, so a daily sweep that runs a little early still runs.
        rows = await self.store.gateway.read(store.due_for_check, iso_in(-20 * 3600, start=now))
        summary = {"checked": 0, "needs_reauth": 0, "notified": 0}
        for row in rows:
            try:
                token = self.store.fields.decrypt(row["token_enc"], token_context(row["type"], row["external_id"]))
                data = await self.graph.debug_token(token)
            except Exception as exc:  # noqa: BLE001 - one bad check must not stop the others
                log.warning("token check failed", extra={"channel": row["id"], "error": type(exc).__name__})
                continue
            status, reason, expires = _health(data, now)
            updated = await self.store.gateway.write(store.record_check, row["id"], status=status, reason=reason,
                                                     expires_at=expires, now=iso_now())
            summary["checked"] += 1
            if status == "needs_reauth":
                summary["needs_reauth"] += 1
                if row["owner_email"] and updated["owner_notified_at"] is None:
                    self.notifier.send(_warning(row, reason or "the token needs renewing"))
                    await self.store.gateway.write(store.mark_notified, row["id"], iso_now())
                    summary["notified"] += 1
        return summary


def _health(data: dict[str, Any], now: datetime) -> tuple[str, str | None, str | None]:
    """``(status, reason, expires_at)`` from a ``debug_token`` answer; 0 means never expires."""
    if not data.get("is_valid"):
        return "needs_reauth", "the token is no longer valid", None
    horizon = now.timestamp() + WARN_DAYS * 86400
    expires = data.get("expires_at") or 0
    access = data.get("data_access_expires_at") or 0
    expires_iso = to_iso(datetime.fromtimestamp(expires, UTC)) if expires else None
    if expires and expires < horizon:
        return "needs_reauth", "the token expires within 7 days", expires_iso
    if access and access < horizon:
        return "needs_reauth", "data access expires within 7 days", expires_iso
    return "active", None, expires_iso


def _warning(row: dict[str, Any], reason: str) -> Email:
    return Email(
        to=row["owner_email"],
        subject=f"Reconnect your {row['type']} channel in {row['tenant_name']}",
        text=(f"The connection of your {row['type']} channel {row['name'] or row['external_id']} needs renewing: "
              f"{reason}. Sign in and connect it again before it stops receiving and sending messages."),
    )
