"""When a ``delay`` step wakes: after its seconds, moved into its time-of-day window.

The window is read in the step's time zone, else the contact's, else the workspace default.
Overnight windows (``22:00``-``06:00``) work. An unknown zone falls back to the default; this
never raises.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.flows.models import Window

__all__ = ["wake_time", "zone", "known_zone"]


def zone(*names: str | None) -> ZoneInfo:
    for name in names:
        if not name:
            continue
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            # OSError: a name that is a directory of the tz database ("Europe") or too long.
            continue
    return ZoneInfo("UTC")


def known_zone(name: str) -> bool:
    """Is ``name`` a time zone of the IANA database (for validating documents)?"""
    return zone(name).key == name or name == "UTC"


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _inside(moment: time, start: time, end: time) -> bool:
    if start == end:
        return True
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end  # overnight


def wake_time(
    now: datetime, seconds: int, window: Window | None, *, contact_tz: str | None, default_tz: str
) -> datetime:
    due = now + timedelta(seconds=seconds)
    if window is None:
        return due
    tz = zone(window.timezone, contact_tz, default_tz)
    local = due.astimezone(tz)
    start, end = _clock(window.from_), _clock(window.to)
    if _inside(local.timetz().replace(tzinfo=None), start, end):
        return due
    candidate = local.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
    if candidate <= local:
        candidate = (local + timedelta(days=1)).replace(
            hour=start.hour, minute=start.minute, second=0, microsecond=0
        )
    # Re-localise through the zone so a DST change on the way lands on the wall-clock time.
    candidate = datetime(candidate.year, candidate.month, candidate.day, start.hour, start.minute, tzinfo=tz)
    return candidate.astimezone(due.tzinfo)
