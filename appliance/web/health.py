"""Liveness, readiness and metrics."""

from datetime import UTC, datetime

from litestar import Response, get

from appliance.web.api import RuntimeDep
from appliance.ingest import journal
from appliance.outbox import store as outbox
from appliance.store.migrate import pending_migrations
from appliance.store.workspace import MIGRATION_SET

__all__ = ["healthz", "readyz", "metrics"]


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@get("/readyz")
async def readyz(runtime: RuntimeDep) -> Response[dict[str, object]]:
    """The database opens, answers, and has every migration applied."""
    try:
        pending = await runtime.db.read(pending_migrations, MIGRATION_SET)
    except Exception:  # noqa: BLE001 - any failure means not ready
        return Response({"status": "unavailable", "reason": "database"}, status_code=503)
    if pending or not runtime.ready:
        return Response({"status": "unavailable", "reason": "starting" if not pending else "migrations"},
                        status_code=503)
    return Response({"status": "ready"}, status_code=200)


def _stats(db: object) -> dict[str, object]:
    return {"journal": journal.lag(db), "outbox": outbox.depth(db)}  # type: ignore[arg-type]


@get("/metrics", media_type="text/plain; version=0.0.4")
async def metrics(runtime: RuntimeDep) -> bytes:
    """Prometheus text: webhooks received/rejected/duplicated, journal lag, sends, outbox depth."""
    stats = await runtime.db.read(_stats)
    lag = stats["journal"]
    m = runtime.metrics
    m.journal_pending.set(lag["pending"])
    m.journal_failed.set(lag["failed"])
    oldest = lag["oldest"]
    m.journal_lag.set(
        (datetime.now(UTC) - datetime.fromisoformat(oldest.replace("Z", "+00:00"))).total_seconds()
        if oldest else 0
    )
    m.outbox_depth.set(stats["outbox"])
    return m.render()
