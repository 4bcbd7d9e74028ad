"""The privacy feature's periodic job: retention rules and due deletion requests."""

from __future__ import annotations

from typing import Any

from huey import SqliteHuey, crontab

from appliance.runtime import Runtime
from appliance.timeutil import utcnow

__all__ = ["register"]


def register(huey: SqliteHuey, runtime: Runtime) -> None:
    # Every 15 minutes: the rules are cheap when there is nothing to remove, and a deletion
    # request due after its grace period completes within a quarter of an hour.
    @huey.periodic_task(crontab(minute="*/15"), name="privacy.retention")
    def retention_task() -> dict[str, Any]:
        from appliance.privacy import retention  # by the first run, not at every restart (~6 ms)

        return retention.run(runtime.db, runtime.settings, utcnow())
