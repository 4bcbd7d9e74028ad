"""AAT Systems control plane: sign-up, billing, webhook routing and the tenant fleet."""
