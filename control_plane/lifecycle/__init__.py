"""Tenants' lifecycle: states (``store``), convergence through the provisioner (``service``),
the periodic sweep (``tasks``)."""

__all__: list[str] = []
