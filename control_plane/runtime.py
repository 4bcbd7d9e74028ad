"""Everything a running control plane holds, built and closed by the app's lifespan.

A plain class (not a dataclass): Litestar introspects dataclass annotations of injected
dependencies.
"""

from __future__ import annotations

import httpx

from control_plane import __version__
from control_plane.channels.onboarding import Onboarding
from control_plane.channels.service import Channels
from control_plane.accounts.google import GoogleSignIn
from control_plane.accounts.meta import MetaSignIn
from control_plane.accounts.sessions import Sessions
from control_plane.billing.service import Billing
from control_plane.db import Store
from control_plane.entitlements.push import EntitlementPusher
from control_plane.entitlements.usage import UsageCollector
from control_plane.lifecycle.service import Lifecycle
from control_plane.mail import MailSender
from control_plane.metrics import Metrics
from control_plane.notices.service import Notices
from control_plane.notify import Notifier
from control_plane.admin.support import SupportTokens
from control_plane.admin.transfer import Transfers
from control_plane.provisioning.base import Provisioner
from control_plane.routing.deletion import Deletions
from control_plane.routing.forwarder import Forwarder, forwarding_client
from control_plane.routing.schedule import DEFAULT_POLICY, RetryPolicy
from control_plane.routing.service import Router, RoutingTable
from control_plane.settings import ControlPlaneSettings, PlatformApp
from control_plane.usage.meter import Overage, parse_meters
from control_plane.usage.reports import UsageReports

__all__ = ["ControlPlane", "http_client", "PerOriginTransport"]


class PerOriginTransport(httpx.AsyncBaseTransport):
    """One small connection pool per origin (scheme, host, port), behind the one client.

    httpcore's pool scans every connection it holds for every request; with a hundred tenants
    in one pool that scan was a sixth of the router's CPU when forwards still went through httpx
    (bench/router.py; they now have their own client, ``routing.forwarder.forwarding_client``).
    The client still calls every tenant's admin API (channels, support tokens), so a pool per
    origin keeps a dead tenant's open connections out of the pool the others use."""

    def __init__(self, *, per_origin: int) -> None:
        self.limits = httpx.Limits(max_connections=per_origin + 2, max_keepalive_connections=per_origin + 2)
        self._ssl = httpx.create_ssl_context()  # one for all pools: building one costs milliseconds
        self._pools: dict[tuple[bytes, bytes, int | None], httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        key = (url.raw_scheme, url.raw_host, url.port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = httpx.AsyncHTTPTransport(verify=self._ssl, limits=self.limits)
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


def http_client(settings: ControlPlaneSettings) -> httpx.AsyncClient:
    """The one client for every outside call (tenants, the Graph API), with explicit timeouts."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.forward_timeout_seconds, connect=5.0),
        transport=PerOriginTransport(per_origin=settings.forward_concurrency),
        headers={"User-Agent": f"aat-control-plane/{__version__}"},
        follow_redirects=False,
    )


class ControlPlane:
    def __init__(self, *, settings: ControlPlaneSettings, platform: PlatformApp, store: Store,
                 http: httpx.AsyncClient, provisioner: Provisioner, policy: RetryPolicy = DEFAULT_POLICY,
                 notifier: Notifier | None = None) -> None:
        self.settings = settings
        self.platform = platform
        self.store = store
        self.http = http
        self.metrics = Metrics()
        self.provisioner = provisioner
        self.table = RoutingTable()
        forwarding = forwarding_client(user_agent=f"aat-control-plane/{__version__}")
        self.forwarder = Forwarder(store.gateway, forwarding, self.metrics, timeout=settings.forward_timeout_seconds,
                                   concurrency=settings.forward_concurrency, policy=policy)
        self.router = Router(store, self.forwarder, self.metrics, self.table)
        self.lifecycle = Lifecycle(settings, platform, store, provisioner, self.forwarder, self.table)
        self.entitlements = EntitlementPusher(settings, store, http)
        self.lifecycle.entitlements_public_key = self.entitlements.public_key
        self.lifecycle.on_active = self.entitlements.ensure
        provisioner.on_ready(self.entitlements.on_ready)
        self.google = GoogleSignIn(settings, store, http)
        self.meta_sign_in = MetaSignIn(settings, platform, store, http)
        self.channels = Channels(store, http, self.lifecycle, self.table, self.forwarder)
        self.notifier = notifier or Notifier(settings.email)
        self.mail = MailSender(settings, http) if settings.email in ("resend", "postmark") else None
        if self.mail is not None and self.notifier.deliver is None:
            self.notifier.deliver = self.mail.deliver
        self.sessions = Sessions(settings, store, self.notifier)
        self.notices = Notices(store.gateway, self.notifier)
        self.billing = Billing(settings, store, self.lifecycle, self.entitlements, self.notifier)
        self.usage = UsageCollector(store, http, self.lifecycle)
        self.usage_reports = UsageReports(store, Overage(parse_meters(settings.stripe_meters), store,
                                                         self.entitlements.plans, self.billing.client))
        self.onboarding = Onboarding(settings, platform, store, http, self.channels, self.notifier)
        self.deletions = Deletions(settings, platform, store, self.forwarder)
        self.support = SupportTokens(settings, store, self.lifecycle)
        self.transfers = Transfers(settings, store, self.lifecycle)
        self.ready = False
        self.last_token_check = 0.0
