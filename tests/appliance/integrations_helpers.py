"""Helpers for the integrations tests: a clock tests move by hand, secrets searched for in
every file of the data directory and in the logs as production formats them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.logs import JsonFormatter

__all__ = ["Clock", "files_containing", "logged", "quiet_http_loggers"]


class Clock:
    """``clock()`` returns the time it was set to; ``advance`` moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def set(self, moment: datetime) -> None:
        self.now = moment


def files_containing(data_dir: Path, *needles: str) -> list[str]:
    """Every file under ``data_dir`` (database, WAL, keys, queue) whose bytes contain one of
    ``needles``, as UTF-8 or UTF-16 (SQLite stores text either way)."""
    found = []
    for path in data_dir.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for needle in needles:
            if needle.encode() in data or needle.encode("utf-16-le") in data:
                found.append(f"{path.name}: {needle}")
    return found


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Everything captured, formatted as the appliance writes it (JSON lines with extras)."""
    formatter = JsonFormatter()
    return "\n".join(formatter.format(record) for record in caplog.records)


def quiet_http_loggers(caplog: pytest.LogCaptureFixture) -> None:
    """Capture everything at DEBUG, with httpx/httpcore at WARNING as ``configure_logging``
    sets them in production (httpx writes full URLs at INFO)."""
    caplog.set_level(logging.WARNING, logger="httpx")
    caplog.set_level(logging.WARNING, logger="httpcore")
    caplog.set_level(logging.DEBUG)  # last: set_level also sets the capturing handler's level
