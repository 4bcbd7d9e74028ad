"""HTTP requests, Google Sheets and outbound webhooks (filled in by the integrations issue)."""

from appliance.features import Feature

FEATURE = Feature(name="integrations")

__all__ = ["FEATURE"]
