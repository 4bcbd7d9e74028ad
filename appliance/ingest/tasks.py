"""Periodic ingest jobs: purge processed raw bodies and old dedupe keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from huey import SqliteHuey, crontab

from appliance.ingest import journal
from appliance.runtime import Runtime
from appliance.timeutil import to_iso, utcnow

__all__ = ["register", "purge_journal"]


def purge_journal(runtime: Runtime) -> dict[str, Any]:
    """Delete processed journal rows older than the retention and dedupe keys older than 8 days."""
    now = utcnow()
    return runtime.db.write_sync(
        journal.purge,
        processed_before=to_iso(now - timedelta(days=runtime.settings.journal_retention_days)),
        keys_before=to_iso(now - timedelta(days=journal.SEEN_KEY_DAYS)),
    )


def register(huey: SqliteHuey, runtime: Runtime) -> None:
    @huey.periodic_task(crontab(minute="*/10"), name="ingest.purge_journal")
    def purge_journal_task() -> dict[str, Any]:
        return purge_journal(runtime)
