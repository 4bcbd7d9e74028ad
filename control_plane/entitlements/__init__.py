"""Entitlements on the control plane's side: plans, the signing key, issuing tokens.

- :mod:`~control_plane.entitlements.plans`: the plans of ``AAT_CP_PLANS`` (id, Stripe price,
  limits);
- :mod:`~control_plane.entitlements.signing`: the Ed25519 signing key (``AAT_CP_ENTITLEMENTS_KEY``;
  development: generated in the data directory with a warning), its public half for the
  appliances' ``AAT_ENTITLEMENTS_PUBLIC_KEY``, and :func:`issue` (the token format is the
  appliance's, :mod:`appliance.entitlements.token`: one definition for both sides);
- :mod:`~control_plane.entitlements.cli`: ``aat-control-plane entitlements public-key`` and
  ``license issue`` for self-hosted customers.
"""
