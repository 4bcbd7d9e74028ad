"""Syncing the WhatsApp template catalogue from Meta.

``GET /{waba-id}/message_templates?fields=...&limit=100`` with a connected number's token,
page after page (``paging.cursors.after`` while ``paging.next`` is present; the ``next`` URL
itself is not followed, so the request never leaves the configured Graph host), then the
account's catalogue is replaced in one transaction, recorded in the audit log. An account that
cannot be read keeps its catalogue and is reported with Meta's error; the others still sync.
"""

from __future__ import annotations

import logging
from typing import Any

from appliance.audit import Actor, audited
from appliance.broadcasts import catalogue
from appliance.channels.graph import call_json
from appliance.connections.store import token_context
from appliance.errors import Unprocessable
from appliance.runtime import Runtime
from appliance.timeutil import iso_now

__all__ = ["sync", "fetch_templates", "FIELDS", "MAX_PAGES"]

log = logging.getLogger("aat.broadcasts")

FIELDS = "id,name,language,status,category,parameter_format,components"
PAGE_SIZE = 100
MAX_PAGES = 100  # 10,000 templates: far beyond Meta's per-account limit


def _template(item: Any) -> dict[str, Any] | None:
    """Meta's template object, or None when it lacks what a catalogue row needs."""
    if not isinstance(item, dict):
        return None
    name, language, status = item.get("name"), item.get("language"), item.get("status")
    if not all(isinstance(v, str) and v for v in (name, language, status)):
        return None
    components = item.get("components")
    category, parameter_format = item.get("category"), item.get("parameter_format")
    return {
        "id": str(item["id"]) if isinstance(item.get("id"), str | int) else None,
        "name": name, "language": language, "status": status.upper(),
        "category": category.upper() if isinstance(category, str) else None,
        "parameter_format": parameter_format.upper() if isinstance(parameter_format, str) else None,
        "components": components if isinstance(components, list) else [],
    }


async def fetch_templates(runtime: Runtime, waba_id: str, token: str) -> tuple[list[dict[str, Any]], Any]:
    """Every template of the account: ``(templates, None)``, or ``([], GraphError)``."""
    found: list[dict[str, Any]] = []
    after: str | None = None
    url = runtime.settings.graph_url(f"{waba_id}/message_templates")
    for _ in range(MAX_PAGES):
        params = {"fields": FIELDS, "limit": str(PAGE_SIZE)}
        if after:
            params["after"] = after
        data, error = await call_json(runtime.http, "GET", url, token, params=params)
        if error is not None:
            return [], error
        assert data is not None
        items = data.get("data") if isinstance(data.get("data"), list) else []
        found.extend(t for t in map(_template, items) if t is not None)
        paging = data.get("paging") if isinstance(data.get("paging"), dict) else {}
        cursors = paging.get("cursors") if isinstance(paging.get("cursors"), dict) else {}
        after = cursors.get("after") if isinstance(cursors.get("after"), str) else None
        if not paging.get("next") or not after or not items:
            return found, None
    log.warning("template catalogue truncated", extra={"waba_id": waba_id, "pages": MAX_PAGES})
    return found, None


async def sync(runtime: Runtime, actor: Actor, channel_id: int | None = None) -> dict[str, Any]:
    """Sync every connected WhatsApp Business Account (or the one of ``channel_id``):
    ``{"accounts": [{"waba_id", "templates": n} | {"waba_id", "error": {code, message}}]}``."""
    accounts = await runtime.db.read(catalogue.accounts, channel_id)
    if not accounts:
        raise Unprocessable(
            "no connected WhatsApp number with a waba_id to read templates from"
            + (f" (channel {channel_id})" if channel_id is not None else "")
            + "; connect one under /api/v1/channels with its waba_id",
            code="no_whatsapp_account",
        )
    results = []
    for account in accounts:
        token = runtime.fields.decrypt(
            account["access_token_enc"], token_context(account["channel_type"], account["external_id"])
        )
        templates, error = await fetch_templates(runtime, account["waba_id"], token)
        if error is not None:
            log.warning("template sync failed", extra={"waba_id": account["waba_id"], "code": error.code,
                                                       "fbtrace_id": error.fbtrace_id})
            results.append({"waba_id": account["waba_id"],
                            "error": {"code": error.code, "message": error.message}})
            continue
        count = await runtime.db.write(
            audited, actor, "templates.sync", "waba", catalogue.replace_account, account["waba_id"], templates,
            iso_now(), target_of=lambda _: account["waba_id"], details={"templates": len(templates)},
        )
        results.append({"waba_id": account["waba_id"], "templates": count})
    return {"accounts": results}
