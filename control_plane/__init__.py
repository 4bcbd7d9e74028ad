"""AAT Systems control plane: sign-up, billing, webhook routing and the tenant fleet."""

__version__ = "0.1.0"
