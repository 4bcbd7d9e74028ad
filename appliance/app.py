"""The app factory: ``create_app(settings) -> Litestar``, routes listed explicitly, and the
lifespan that owns the workspace, the HTTP client, the journal processor, the sender and the
task queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING


import httpx
from litestar import Litestar, Router
from litestar.datastructures import ResponseHeader
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from appliance import __version__, ai, backup, broadcasts, entitlements, integrations, privacy
from appliance.audit.routes import list_audit
from appliance.channels.transport import pooled_transport, preload
from appliance.connections.routes import ChannelController
from appliance.events.routes import live_events
from appliance.contacts.csv_routes import ContactCsvController
from appliance.contacts.routes import ContactController
from appliance.inbox.action_routes import CannedReplyController, ConversationActions
from appliance.inbox.routes import ConversationController
from appliance.flows import tasks as flow_tasks
from appliance.flows.routes import FlowController, flow_schema
from appliance.growth.routes import GrowthController, all_links
from appliance.ingest import tasks as ingest_tasks
from appliance.ingest.apply import ApplySummary
from appliance.ingest.processor import JournalProcessor
from appliance.ingest.routes import webhooks_meta
from appliance.metrics import Metrics
from appliance.outbox.sender import Sender
from appliance.queue import InProcessConsumer, create_huey
from appliance.runtime import Runtime
from appliance.settings import Settings
from appliance.store.workspace import Workspace, open_workspace
from appliance.team.auth import BearerAuthMiddleware
from appliance.team.routes import UserController, me
from appliance.web.access_log import AccessLogMiddleware
from appliance.web.api import runtime_dep
from appliance.web.errors import exception_handlers
from appliance.web import health
from appliance.web.pages import SECURITY_HEADERS, WEB_PAGES, Denied, denied_response
from appliance.web.pages.session import SESSION_PAGES
from appliance.web.pages.templating import PagesTemplateEngine
from appliance.workspace.routes import get_workspace_settings, put_workspace_settings

if TYPE_CHECKING:
    from litestar.plugins import PluginProtocol

__all__ = ["create_app"]

log = logging.getLogger("aat.app")

SHUTDOWN_GRACE_SECONDS = 10.0
WEB_DIR = Path(__file__).parent / "web"

# Feature packages plugged into the app (appliance/features.py says what each may bring).
FEATURES = [entitlements.FEATURE, ai.FEATURE, integrations.FEATURE, broadcasts.FEATURE, privacy.FEATURE, backup.FEATURE]


class _MountedOnce(Router):
    """A router that ``create_app`` builds for one app and registers once. Litestar deep-copies
    every ``Router`` it registers, so that one router may be mounted in several places; these two
    are new per app, so the copy (20-40 ms of a restart, BENCHMARKS.md "Footprint") is skipped
    and the router itself is mounted. Their function handlers are then what Litestar makes of a
    handler registered on the app itself (``healthz``): a shallow copy per app of the module-level
    handler, sharing its memo of response handlers, which depends only on the layers' settings,
    the same in every app ``create_app`` builds. Controllers are copied per app either way. A
    module-level router (shared by every app a process builds, as tests do) stays a ``Router``."""

    def __deepcopy__(self, memo: dict[int, object]) -> _MountedOnce:
        return self


class _Appliance(Litestar):
    """Litestar with its default plugins except the attrs schema plugin: no handler or model here
    is an attrs class, and that plugin's import of ``attrs`` cost ~16 ms of every restart
    (BENCHMARKS.md, "Footprint"; aiohttp still loads attrs after ready, off the loop). The rest is
    what ``Litestar`` adds when given no plugins (tests/appliance/test_startup_imports.py compares
    the two lists, so a new default in a Litestar release fails there)."""

    @staticmethod
    def _get_default_plugins(plugins: list[PluginProtocol]) -> list[PluginProtocol]:
        from litestar.plugins.core import MsgspecDIPlugin
        from litestar.plugins.pydantic import PydanticDIPlugin, PydanticPlugin

        return [*plugins, MsgspecDIPlugin(), PydanticPlugin(), PydanticDIPlugin()]  # create_app passes none


USER_AGENT = f"aat-appliance/{__version__}"


def _http_client(settings: Settings) -> httpx.AsyncClient:
    # The sender keeps up to 64 requests in flight; its connections stay open between bursts.
    # The transport is aiohttp's pool behind httpx's API (see appliance.channels.transport).
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=15.0)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.http_timeout_seconds, connect=5.0),
        transport=pooled_transport(limits),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
    )


def create_app(
    settings: Settings,
    *,
    workspace: Workspace | None = None,
    http_client: httpx.AsyncClient | None = None,
    run_queue: bool = True,
    close_workspace: bool = False,
    metrics: Metrics | None = None,
) -> Litestar:
    """Build the appliance. ``workspace``/``http_client`` let tests inject their own (a
    workspace opened on a temp dir, a client whose base URLs point at local stand-ins);
    ``metrics``, the counters the front door (``appliance.web.front``) counted into before.

    The lifespan closes what it opened, after a failed start as well; a given workspace only
    with ``close_workspace`` (the CLI passes its own and asks for that: uvicorn re-raises
    SIGTERM after shutdown, so code after the server's run never runs, and the WAL must still be
    checkpointed)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        ws = workspace or await asyncio.to_thread(open_workspace, settings)
        client = http_client or _http_client(settings)
        runtime = Runtime(settings=settings, workspace=ws, http=client, metrics=metrics)
        runtime.processor = JournalProcessor(gateway=ws.gateway, metrics=runtime.metrics)
        runtime.sender = Sender(
            gateway=ws.gateway, settings=settings, user_agent=USER_AGENT, fields=ws.fields,
            metrics=runtime.metrics,
        )
        app.state.runtime = runtime

        async def after_apply(summary: ApplySummary) -> None:
            runtime.followups.dispatch(summary.followups)
            # An echo or status can settle an in-doubt send and make the messages behind it due.
            if summary.changed_messages:
                runtime.wake_sender()

        runtime.followups.loop = asyncio.get_running_loop()
        ws.gateway.on_commit.append(runtime.hub.wake)
        for feature in FEATURES:
            feature.install(runtime)
        runtime.processor.executors = runtime.call_kinds()
        runtime.processor.listeners.append(after_apply)
        runtime.processor.sender = runtime.sender  # replies are claimed in the job that queued them
        await runtime.sender.recover()
        workers = [
            asyncio.create_task(runtime.processor.run(), name="journal-processor"),
            asyncio.create_task(runtime.sender.run(), name="sender"),
            asyncio.create_task(runtime.hub.run(), name="live-events"),
            *(asyncio.create_task(work) for feature in FEATURES for work in feature.workers(runtime)),
        ]
        consumer = None
        try:  # from here a failed start stops the workers again, as a shutdown does
            if run_queue:
                huey = create_huey(settings.data_dir)
                ingest_tasks.register(huey, runtime)
                flow_tasks.register(huey, runtime)
                for feature in FEATURES:
                    feature.register_tasks(huey, runtime)
                consumer = InProcessConsumer(huey, workers=1, periodic=True, check_worker_health=False)
                consumer.start()
            runtime.ready = True
            preload()  # aiohttp for the sends, in a thread now that a restart no longer waits (transport.py)
            log.info("appliance ready", extra={"version": __version__})
            yield
        finally:
            runtime.ready = False
            ws.gateway.on_commit.remove(runtime.hub.wake)
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.sender.drain(), SHUTDOWN_GRACE_SECONDS)
            if consumer is not None:
                await asyncio.to_thread(consumer.stop, True)
            if http_client is None:
                await client.aclose()
            if workspace is None or close_workspace:
                await asyncio.to_thread(ws.close)

    api = _MountedOnce(
        path="/api/v1",
        route_handlers=[
            ChannelController, ContactController, ConversationController, FlowController, flow_schema,
            GrowthController, all_links, UserController, me, get_workspace_settings, put_workspace_settings,
            list_audit, live_events, ConversationActions, CannedReplyController, ContactCsvController,
            *(route for feature in FEATURES for route in feature.routes),
        ],
        middleware=[DefineMiddleware(BearerAuthMiddleware)],
        # JSON holds user content: never let a browser sniff it into HTML
        response_headers=[ResponseHeader(name="X-Content-Type-Options", value="nosniff")],
    )
    # The HTML pages: session pages and the app's screens, with the security headers (CSP ...).
    pages = _MountedOnce(path="/", route_handlers=[*SESSION_PAGES, *WEB_PAGES], response_headers=SECURITY_HEADERS,
                   exception_handlers={Denied: denied_response}, include_in_schema=False)
    return _Appliance(
        route_handlers=[
            health.healthz, health.readyz, health.metrics, webhooks_meta, api, pages,
            create_static_files_router(path="/static", directories=[WEB_DIR / "static"], name="static",
                                       include_in_schema=False),
            *(route for feature in FEATURES for route in feature.public_routes),
        ],
        dependencies={"runtime": Provide(runtime_dep, sync_to_thread=False)},
        exception_handlers=exception_handlers,
        middleware=[AccessLogMiddleware],
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(title="AAT appliance", version=__version__, path="/schema"),
        template_config=TemplateConfig(directory=WEB_DIR / "templates", engine=PagesTemplateEngine),
        request_max_body_size=2 * 1024 * 1024,
        debug=False,
        logging_config=None,
    )


