"""Broadcasts at Meta's limits (filled in by the broadcasts issue)."""

from appliance.features import Feature

FEATURE = Feature(name="broadcasts")

__all__ = ["FEATURE"]
