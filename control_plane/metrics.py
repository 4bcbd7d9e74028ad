"""Prometheus metrics of the control plane (``GET /metrics``). Labels carry no ids or PII."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]


class Metrics:
    """A registry per app instance, so tests can run several control planes in one process."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.webhooks_received = Counter("aat_cp_webhooks_received", "Meta deliveries acknowledged", registry=r)
        self.webhooks_rejected = Counter("aat_cp_webhooks_rejected", "Meta deliveries refused", ["reason"], registry=r)
        self.events_routed = Counter("aat_cp_events_routed", "Events journaled for a tenant", registry=r)
        self.unknown_assets = Counter(
            "aat_cp_unknown_asset_entries", "Entries for assets no tenant connected (kept 24 h)", registry=r)
        self.forwarded = Counter("aat_cp_deliveries_forwarded", "Deliveries a tenant acknowledged", registry=r)
        self.forward_failures = Counter("aat_cp_forward_failures", "Forward requests that failed", registry=r)
        self.dead_letters = Counter("aat_cp_dead_letters", "Deliveries given up after the retry horizon", registry=r)
        self.forward_seconds = Histogram("aat_cp_forward_duration_seconds", "One forward request", registry=r)
        self.delivery_seconds = Histogram(
            "aat_cp_delivery_latency_seconds", "From Meta's delivery to the tenant's acknowledgement",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 120, 600, 3600), registry=r)
        self.tenants = Gauge("aat_cp_tenants", "Tenants by status", ["status"], registry=r)
        self.pending = Gauge("aat_cp_deliveries_pending", "Deliveries waiting to be forwarded", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
