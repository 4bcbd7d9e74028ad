"""Time as the store keeps it: ISO-8601 UTC text with milliseconds, comparable as strings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["utcnow", "to_iso", "from_iso", "iso_now", "iso_in"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_iso(moment: datetime) -> str:
    """``2026-11-26T19:18:07.123Z``; naive datetimes are taken as UTC."""
    if moment.tzinfo is not None and moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # isoformat pads the year to four digits (glibc's strftime %Y does not, and the text must
    # sort) and truncates to milliseconds; it is also the cheapest way (this runs on the writer
    # for every inbound message). Its first 23 characters hold no offset, naive or UTC.
    return moment.isoformat(timespec="milliseconds")[:23] + "Z"


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso_now() -> str:
    return to_iso(utcnow())


def iso_in(seconds: float, *, start: datetime | None = None) -> str:
    return to_iso((start or utcnow()) + timedelta(seconds=seconds))
