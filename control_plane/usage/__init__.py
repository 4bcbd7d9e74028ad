"""Usage: signed reports from tenants' appliances, and their overage billed through Stripe.

- :mod:`~control_plane.usage.reports`: ``POST /usage/reports`` verified (HMAC, freshness,
  replay) and recorded per tenant and month;
- :mod:`~control_plane.usage.meter`: overage beyond the plan's limits as Stripe meter events,
  idempotent by identifier;
- :mod:`~control_plane.usage.store`: SQL;
- :mod:`~control_plane.usage.routes`: the report endpoint and the admin API's view of them.
"""

__all__: list[str] = []
