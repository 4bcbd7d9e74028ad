"""Outbound webhooks: subscriptions to domain events, signed deliveries retried for 24 hours,
a delivery log with replay. The body and signature format: :mod:`.payload`."""

from appliance.integrations.webhooks.dispatcher import Dispatcher, RetryPolicy, backoff_seconds
from appliance.integrations.webhooks.routes import WebhookController

__all__ = ["Dispatcher", "RetryPolicy", "backoff_seconds", "WebhookController"]
