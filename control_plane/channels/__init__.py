"""Channel onboarding: routing entries and tokens (``store``), connecting channels in tenants
(``service``), Facebook Login / Embedded Signup and token health (``onboarding``, ``graph``)."""

__all__: list[str] = []
