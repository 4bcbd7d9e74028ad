"""The control plane app: ``create_app(settings, platform) -> Litestar``, routes listed
explicitly, and the lifespan that owns the store, the HTTP client, the provisioner, the
forwarder's workers and the sweep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from litestar import Litestar, Response, get
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from control_plane import __version__
from control_plane.admin.routes import AdminController
from control_plane.accounts.routes import google_callback, google_start, logout, me, meta_callback, meta_start
from control_plane.billing.routes import checkout, portal, stripe_webhook
from control_plane.channels import store as channels_store
from control_plane.db import Store, open_store
from control_plane.lifecycle.tasks import run_sweeps
from control_plane.provisioning import make_provisioner
from control_plane.provisioning.base import Provisioner
from control_plane.routing.routes import data_deletion, data_deletion_status, webhooks_meta
from control_plane.routing.schedule import DEFAULT_POLICY, RetryPolicy
from control_plane.runtime import ControlPlane, http_client
from control_plane.settings import ControlPlaneSettings, PlatformApp
from control_plane.notices.routes import send_policy_change
from control_plane.usage.routes import tenant_usage, usage_report
from control_plane.web import CpDep, cp_dep, exception_handlers

__all__ = ["create_app"]

log = logging.getLogger("aat.cp.app")


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz")
async def readyz(cp: CpDep) -> Response[dict[str, str]]:
    if not cp.ready:
        return Response({"status": "unavailable", "reason": "starting"}, status_code=503)
    return Response({"status": "ready"}, status_code=200)


@get("/metrics", media_type="text/plain; version=0.0.4")
async def metrics(cp: CpDep) -> bytes:
    cp.metrics.pending.set(sum(cp.forwarder.depth(t) for t in list(cp.forwarder.targets)))
    return cp.metrics.render()


def create_app(
    settings: ControlPlaneSettings,
    platform: PlatformApp | None = None,
    *,
    store: Store | None = None,
    http: httpx.AsyncClient | None = None,
    provisioner: Provisioner | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
    run_sweeper: bool = True,
    on_start: Any = None,
) -> Litestar:
    """Build the control plane. Tests inject a provisioner (a local one with their options),
    a retry policy with short delays, or an HTTP client; ``on_start(cp)`` sees the runtime."""
    platform = platform or PlatformApp()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        cp_store = store or await asyncio.to_thread(open_store, settings)
        client = http or http_client(settings)
        cp = ControlPlane(settings=settings, platform=platform, store=cp_store, http=client,
                          provisioner=provisioner or make_provisioner(settings, client), policy=policy)
        app.state.cp = cp
        if on_start is not None:
            on_start(cp)
        cp.table.load(await cp_store.gateway.read(channels_store.all_routes))
        await cp.forwarder.start()
        await cp.lifecycle.start()
        sweeper = asyncio.create_task(run_sweeps(cp), name="sweep") if run_sweeper else None
        cp.ready = True
        log.info("control plane ready", extra={"version": __version__, "provisioner": cp.provisioner.name})
        try:
            yield
        finally:
            cp.ready = False
            if sweeper is not None:
                sweeper.cancel()
                await asyncio.gather(sweeper, return_exceptions=True)
            await cp.billing.close()
            await cp.entitlements.close()
            await cp.forwarder.close()
            await cp.lifecycle.close()
            if http is None:
                await client.aclose()
            if store is None:
                await asyncio.to_thread(cp_store.close)

    return Litestar(
        route_handlers=[healthz, readyz, metrics, webhooks_meta, data_deletion,
                        data_deletion_status, AdminController, checkout, portal, stripe_webhook,
                        google_start, google_callback, meta_start, meta_callback, logout, me, usage_report,
                        tenant_usage, send_policy_change],
        dependencies={"cp": Provide(cp_dep, sync_to_thread=False)},
        lifespan=[lifespan],
        exception_handlers=exception_handlers,
        openapi_config=OpenAPIConfig(title="AAT control plane", version=__version__, path="/schema"),
        logging_config=None,
        signature_namespace={"ControlPlane": ControlPlane},
    )
