"""Stripe billing: checkout, the customer portal, and Stripe's webhooks.

- :mod:`~control_plane.billing.stripe_api`: the official ``stripe`` SDK client
  (``AAT_CP_STRIPE_API_BASE``, ``AAT_CP_STRIPE_SECRET_KEY``) and the few fields read from its objects;
- :mod:`~control_plane.billing.store`: sign-ups, subscriptions, handled events, billing history (SQL);
- :mod:`~control_plane.billing.service`: :class:`~control_plane.billing.service.Billing`, what
  each event does to a tenant;
- :mod:`~control_plane.billing.routes`: ``POST /billing/checkout``, ``POST /billing/portal``,
  ``POST /webhooks/stripe``.
"""

__all__: list[str] = []
