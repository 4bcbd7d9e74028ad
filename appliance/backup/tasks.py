"""The scheduled backup: every 15 minutes the queue asks whether one is due.

Due means: ``AAT_BACKUP_DIR`` is set and its newest backup is older than
``AAT_BACKUP_INTERVAL_HOURS`` (or there is none). Deciding from the files rather than from a
timer keeps the schedule across restarts and never takes two backups for one interval.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from huey import SqliteHuey, crontab

from appliance.backup.service import run_backup
from appliance.backup.snapshot import backup_time, list_backups
from appliance.runtime import Runtime
from appliance.settings import Settings
from appliance.timeutil import utcnow

__all__ = ["register", "due"]


def due(settings: Settings, now: datetime) -> bool:
    if settings.backup_dir is None:
        return False
    backups = list_backups(settings.backup_dir)
    if not backups:
        return True
    taken = backup_time(backups[-1])
    assert taken is not None
    return (now - taken).total_seconds() >= settings.backup_interval_hours * 3600


def register(huey: SqliteHuey, runtime: Runtime) -> None:
    @huey.periodic_task(crontab(minute="*/15"), name="backup.scheduled")
    def scheduled_backup() -> dict[str, Any]:
        settings = runtime.settings
        if not due(settings, utcnow()):
            return {"backup": "not due"}
        assert settings.backup_dir is not None
        return run_backup(settings, settings.backup_dir, keep=settings.backup_keep).summary()
