"""The official ``stripe`` SDK, configured once, and the fields we read from its objects.

Every Stripe call goes through :func:`make_client`'s ``StripeClient`` (async methods over the
SDK's own httpx client: the SDK owns its transport, retries and ``Stripe-Version`` pinning, so
it does not use the control plane's shared client). ``AAT_CP_STRIPE_API_BASE`` replaces the
API's base address (a local stand-in in tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe

from appliance.errors import ServiceUnavailable
from control_plane.settings import ControlPlaneSettings

__all__ = ["make_client", "SubscriptionState", "subscription_state", "BillingNotConfigured"]


class BillingNotConfigured(ServiceUnavailable):
    default_code = "billing_not_configured"


def make_client(settings: ControlPlaneSettings) -> stripe.StripeClient | None:
    """``None`` without ``AAT_CP_STRIPE_SECRET_KEY`` (billing routes then answer 503)."""
    if settings.stripe_secret_key is None:
        return None
    return stripe.StripeClient(
        settings.stripe_secret_key.get_secret_value(),
        base_addresses={"api": settings.stripe_api_base.rstrip("/")},
        http_client=stripe.HTTPXClient(timeout=20.0),
        max_network_retries=2,
    )


@dataclass(frozen=True)
class SubscriptionState:
    """A subscription as Stripe holds it *now* (retrieved, never taken from an event body)."""

    id: str
    customer: str
    status: str  # incomplete, incomplete_expired, trialing, active, past_due, canceled, unpaid, paused
    price_id: str | None


def _id(value: Any) -> str:
    return value if isinstance(value, str) else value["id"]


def subscription_state(found: Any) -> SubscriptionState:
    """From a retrieved ``Subscription`` (a ``StripeObject``: plain dict access via ``to_dict``)."""
    subscription = found.to_dict() if hasattr(found, "to_dict") else found
    items = subscription["items"]["data"] if subscription.get("items") else []
    price = items[0]["price"]["id"] if items else None
    return SubscriptionState(id=subscription["id"], customer=_id(subscription["customer"]),
                             status=subscription["status"], price_id=price)
