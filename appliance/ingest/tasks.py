"""Periodic ingest jobs: purge processed raw bodies and old dedupe keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from huey import SqliteHuey, crontab

from appliance import events
from appliance.ingest import journal
from appliance.runtime import Runtime
from appliance.timeutil import to_iso, utcnow

__all__ = ["register", "purge_journal"]


# Domain events are read within seconds by live updates and webhooks; a week covers outages.
EVENT_DAYS = 7


def purge_journal(runtime: Runtime) -> dict[str, Any]:
    """Delete processed journal rows older than the retention, dedupe keys older than 8 days,
    and domain events older than a week."""
    now = utcnow()
    summary = runtime.db.write_sync(
        journal.purge,
        processed_before=to_iso(now - timedelta(days=runtime.settings.journal_retention_days)),
        keys_before=to_iso(now - timedelta(days=journal.SEEN_KEY_DAYS)),
    )
    summary["events"] = runtime.db.write_sync(events.purge, to_iso(now - timedelta(days=EVENT_DAYS)))
    return summary


def register(huey: SqliteHuey, runtime: Runtime) -> None:
    @huey.periodic_task(crontab(minute="*/10"), name="ingest.purge_journal")
    def purge_journal_task() -> dict[str, Any]:
        return purge_journal(runtime)
