"""Liveness, readiness and metrics."""

from datetime import UTC, datetime

from litestar import Response, get

from appliance.web.api import RuntimeDep
from appliance.ingest import journal
from appliance.outbox import store as outbox
from appliance.web.readiness import readiness

__all__ = ["healthz", "readyz", "metrics"]


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@get("/readyz")
async def readyz(runtime: RuntimeDep) -> Response[dict[str, object]]:
    """The database opens, answers, and has every migration applied (``readiness``)."""
    status, body = await readiness(runtime.db, started=runtime.ready)
    return Response(body, status_code=status)


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
