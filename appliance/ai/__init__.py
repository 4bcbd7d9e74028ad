"""AI replies grounded in the workspace's knowledge base (filled in by the AI issue)."""

from appliance.features import Feature

FEATURE = Feature(name="ai")

__all__ = ["FEATURE"]
