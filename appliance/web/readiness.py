"""What ``GET /readyz`` answers, without a web framework: the full app's handler
(``appliance.web.health``) and the front door (``appliance.web.front``) both ask here."""

from __future__ import annotations

from appliance.store.gateway import Gateway
from appliance.store.migrate import pending_migrations
from appliance.store.workspace import MIGRATION_SET

__all__ = ["readiness"]


async def readiness(db: Gateway, *, started: bool) -> tuple[int, dict[str, str]]:
    """``(status, body)``: 200 ``ready`` when the database opens, answers and has every
    migration applied and the server has ``started``; otherwise 503 with the reason."""
    try:
        pending = await db.read(pending_migrations, MIGRATION_SET)
    except Exception:  # noqa: BLE001 - any failure means not ready
        return 503, {"status": "unavailable", "reason": "database"}
    if pending:
        return 503, {"status": "unavailable", "reason": "migrations"}
    if not started:
        return 503, {"status": "unavailable", "reason": "starting"}
    return 200, {"status": "ready"}
