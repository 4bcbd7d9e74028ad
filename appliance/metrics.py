"""Prometheus metrics of one appliance (``GET /metrics``). Labels carry no ids or PII."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics", "WEBHOOK_OBJECTS"]

WEBHOOK_OBJECTS = frozenset({"page", "instagram", "whatsapp_business_account"})


class Metrics:
    """A registry per app instance, so tests can run several apps in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.webhooks_received = Counter(
            "aat_webhooks_received", "Webhook deliveries acknowledged (journaled)", ["object"], registry=r
        )
        self.webhooks_rejected = Counter(
            "aat_webhooks_rejected", "Webhook deliveries refused", ["reason"], registry=r
        )
        self.webhook_events = Counter(
            "aat_webhook_events", "Events processed from the journal", ["outcome"], registry=r
        )
        self.webhook_duplicates = Counter(
            "aat_webhook_events_duplicated", "Events delivered again and stored once", registry=r
        )
        self.journal_pending = Gauge(
            "aat_journal_pending", "Journaled deliveries not processed yet", registry=r
        )
        self.journal_lag = Gauge(
            "aat_journal_lag_seconds", "Age of the oldest unprocessed delivery", registry=r
        )
        self.journal_failed = Gauge(
            "aat_journal_failed", "Deliveries with parts that could not be used", registry=r
        )
        self.sends = Counter("aat_sends", "Send attempts by outcome", ["channel", "outcome"], registry=r)
        self.send_seconds = Histogram(
            "aat_send_duration_seconds", "Graph API send latency", ["channel"], registry=r
        )
        self.outbox_depth = Gauge("aat_outbox_depth", "Messages waiting in the outbox", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
