"""The webhook router: split by asset (``split``), journal per tenant (``service``, ``store``),
forward re-signed with per-tenant queues (``forwarder``, ``schedule``), data-deletion fan-out."""

__all__: list[str] = []
