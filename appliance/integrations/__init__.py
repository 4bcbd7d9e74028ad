"""HTTP requests, Google Sheets and outbound webhooks.

- ``http_request`` flow step (:mod:`.http_step`), through the SSRF-safe client
  (:mod:`.ssrf` the address policy, :mod:`.safe_http` the client that enforces it);
- ``google_sheets`` flow step and the Google connection (:mod:`.sheets`);
- outbound webhooks (:mod:`.webhooks`): ``/api/v1/webhooks``, a dispatcher worker, a daily
  purge of the delivery log (finished deliveries are kept 30 days).

``AAT_HTTP_ALLOW_PRIVATE`` (tests) lets user-chosen URLs reach loopback and private
addresses, unless ``AAT_PUBLIC_URL`` is https: then it is refused with a warning at start.
"""

from __future__ import annotations

import logging
import weakref
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from huey import crontab

from appliance.features import Feature
from appliance.integrations import http_step
from appliance.integrations.http_step import private_allowed
from appliance.integrations.sheets import GoogleSheetsController, SheetsExecutor, connect_router, google_callback
from appliance.integrations.webhooks import Dispatcher, WebhookController
from appliance.integrations.webhooks import store as webhook_store
from appliance.timeutil import to_iso, utcnow

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from huey import SqliteHuey

    from appliance.runtime import Runtime

__all__ = ["FEATURE", "webhook_dispatcher", "WEBHOOK_LOG_DAYS"]

log = logging.getLogger("aat.integrations")

WEBHOOK_LOG_DAYS = 30
_dispatchers: weakref.WeakKeyDictionary[Runtime, Dispatcher] = weakref.WeakKeyDictionary()


def _install(runtime: Runtime) -> None:
    settings = runtime.settings
    if settings.http_allow_private and not private_allowed(settings):
        log.warning("AAT_HTTP_ALLOW_PRIVATE is ignored: AAT_PUBLIC_URL is https, so this is not a test; "
                    "private and loopback addresses stay blocked")
    runtime.executors["http_request"] = http_step.execute
    runtime.executors["google_sheets"] = SheetsExecutor()
    _dispatchers[runtime] = Dispatcher(db=runtime.db, fields=runtime.fields, allow_private=private_allowed(settings))


def webhook_dispatcher(runtime: Runtime) -> Dispatcher:
    """The running app's dispatcher (tests shorten its backoff and move its clock)."""
    return _dispatchers[runtime]


def _workers(runtime: Runtime) -> list[Coroutine[Any, Any, None]]:
    return [webhook_dispatcher(runtime).run()]


def purge_webhook_log(runtime: Runtime) -> dict[str, Any]:
    before = to_iso(utcnow() - timedelta(days=WEBHOOK_LOG_DAYS))
    return {"webhook_deliveries": runtime.db.write_sync(webhook_store.purge, before)}


def _register_tasks(huey: SqliteHuey, runtime: Runtime) -> None:
    @huey.periodic_task(crontab(minute="17", hour="3"), name="integrations.purge_webhook_log")
    def purge_webhook_log_task() -> dict[str, Any]:
        return purge_webhook_log(runtime)


FEATURE = Feature(
    name="integrations",
    routes=[GoogleSheetsController, WebhookController],
    public_routes=[connect_router, google_callback],
    install=_install,
    register_tasks=_register_tasks,
    workers=_workers,
)
