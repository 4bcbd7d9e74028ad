"""Data-subject rights, Meta's data-deletion callback, retention, export (the privacy issue)."""

from appliance.features import Feature

FEATURE = Feature(name="privacy")

__all__ = ["FEATURE"]
