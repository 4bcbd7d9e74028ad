"""Plan limits on AI replies, from the entitlement in force.

:func:`monthly_reply_limit` is the one place that asks for the limit: it reads
``runtime.entitlements`` (set by :mod:`appliance.entitlements` from the license file or the
control plane's last pushed token; shaped like ``GET /api/v1/entitlements``: ``{plan, limits:
{ai_replies_per_month, ...}}``) and returns ``None``, meaning no limit, when there is none.
The executor counts replies per UTC month (``ai_usage``) and refuses with ``limit_reached``
once the count reaches the limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from appliance.timeutil import utcnow

__all__ = ["monthly_reply_limit", "current_month"]


def monthly_reply_limit(runtime: Any) -> int | None:
    """AI replies allowed per month by the plan in force, or ``None`` for no limit."""
    entitlements = getattr(runtime, "entitlements", None)
    if not isinstance(entitlements, Mapping):
        return None
    limit = (entitlements.get("limits") or {}).get("ai_replies_per_month")
    return int(limit) if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0 else None


def current_month() -> str:
    return utcnow().strftime("%Y-%m")
