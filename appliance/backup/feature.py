"""The backup feature as the app plugs it in (``appliance.features``): the scheduled backup."""

from appliance.backup import tasks
from appliance.features import Feature

FEATURE = Feature(name="backup", register_tasks=tasks.register)

__all__ = ["FEATURE"]
