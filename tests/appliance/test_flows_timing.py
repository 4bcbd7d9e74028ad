"""When a delay wakes (appliance/flows/timing.py): seconds, windows, time zones, DST."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from appliance.flows.models import Window
from appliance.flows.timing import known_zone, wake_time, zone

UTC = timezone.utc


def window(start: str, end: str, tz: str | None = None) -> Window:
    return Window.model_validate({"from": start, "to": end, "timezone": tz})


def wake(now: datetime, seconds: int, win: Window | None, contact_tz: str | None = None,
         default_tz: str = "UTC") -> datetime:
    return wake_time(now, seconds, win, contact_tz=contact_tz, default_tz=default_tz)


def test_without_window() -> None:
    now = datetime(2024, 6, 3, 10, 0, tzinfo=UTC)
    assert wake(now, 3600, None) == now + timedelta(hours=1)


@pytest.mark.parametrize("due_hour, expected", [
    (10, datetime(2024, 6, 3, 10, 0, tzinfo=UTC)),   # inside: unchanged
    (7, datetime(2024, 6, 3, 9, 0, tzinfo=UTC)),     # before: later that day
    (18, datetime(2024, 6, 4, 9, 0, tzinfo=UTC)),    # at the end (exclusive): next day
    (20, datetime(2024, 6, 4, 9, 0, tzinfo=UTC)),    # after: next day
], ids=["inside", "before", "at-end", "after"])
def test_day_window(due_hour: int, expected: datetime) -> None:
    now = datetime(2024, 6, 3, 0, 0, tzinfo=UTC)
    assert wake(now, due_hour * 3600, window("09:00", "18:00")) == expected


@pytest.mark.parametrize("due_hour, expected", [
    (23, datetime(2024, 6, 3, 23, 0, tzinfo=UTC)),
    (3, datetime(2024, 6, 3, 3, 0, tzinfo=UTC)),
    (12, datetime(2024, 6, 3, 22, 0, tzinfo=UTC)),
    (6, datetime(2024, 6, 3, 22, 0, tzinfo=UTC)),
], ids=["late-evening", "small-hours", "midday", "at-end"])
def test_overnight_window(due_hour: int, expected: datetime) -> None:
    now = datetime(2024, 6, 3, 0, 0, tzinfo=UTC)
    assert wake(now, due_hour * 3600, window("22:00", "06:00")) == expected


def test_equal_bounds_mean_any_time() -> None:
    now = datetime(2024, 6, 3, 3, 0, tzinfo=UTC)
    assert wake(now, 60, window("09:00", "09:00")) == now + timedelta(seconds=60)


def test_contact_time_zone() -> None:
    now = datetime(2024, 6, 3, 10, 0, tzinfo=UTC)  # 19:00 in Tokyo
    assert wake(now, 60, window("09:00", "18:00"), contact_tz="Asia/Tokyo") == datetime(2024, 6, 4, 0, 0, tzinfo=UTC)


def test_window_time_zone_beats_contact() -> None:
    now = datetime(2024, 6, 3, 10, 0, tzinfo=UTC)  # 06:00 in New York
    win = window("09:00", "18:00", "America/New_York")
    assert wake(now, 60, win, contact_tz="Asia/Tokyo") == datetime(2024, 6, 3, 13, 0, tzinfo=UTC)


def test_default_time_zone_without_others() -> None:
    now = datetime(2024, 6, 3, 10, 0, tzinfo=UTC)  # 12:00 in Paris
    assert wake(now, 60, window("14:00", "18:00"), default_tz="Europe/Paris") == datetime(2024, 6, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["Mars/Base", "Europe", "x" * 300, "../etc", ""])
def test_unknown_contact_zone_falls_back_to_default(bad: str) -> None:
    now = datetime(2024, 6, 3, 10, 0, tzinfo=UTC)
    assert wake(now, 60, window("14:00", "18:00"), contact_tz=bad, default_tz="Europe/Paris") == datetime(
        2024, 6, 3, 12, 0, tzinfo=UTC)


def test_zone_falls_back_to_utc() -> None:
    assert zone("Nowhere/City", None, "Europe").key == "UTC"


@pytest.mark.parametrize("name, expected", [("Europe/Paris", True), ("UTC", True), ("Europe", False),
                                            ("europe/paris", False), ("Mars/Base", False)])
def test_known_zone(name: str, expected: bool) -> None:
    assert known_zone(name) is expected


def test_spring_forward_lands_on_wall_clock() -> None:
    # Saturday 30 March 2024, 20:00 in Paris (CET); the clocks go forward that night.
    now = datetime(2024, 3, 30, 19, 0, tzinfo=UTC)
    woke = wake(now, 60, window("09:00", "18:00", "Europe/Paris"))
    assert woke == datetime(2024, 3, 31, 7, 0, tzinfo=UTC)  # 09:00 CEST


def test_fall_back_lands_on_wall_clock() -> None:
    # Saturday 26 October 2024, 20:00 in Paris (CEST); the clocks go back that night.
    now = datetime(2024, 10, 26, 18, 0, tzinfo=UTC)
    woke = wake(now, 60, window("09:00", "18:00", "Europe/Paris"))
    assert woke == datetime(2024, 10, 27, 8, 0, tzinfo=UTC)  # 09:00 CET


def test_window_start_in_the_dst_gap() -> None:
    # 02:30 does not exist in Paris on 31 March 2024: the wake is the instant after the gap.
    now = datetime(2024, 3, 30, 23, 0, tzinfo=UTC)  # 00:00 CET
    woke = wake(now, 60, window("02:30", "05:00", "Europe/Paris"))
    assert woke == datetime(2024, 3, 31, 1, 30, tzinfo=UTC)  # 03:30 CEST


def test_result_keeps_the_callers_time_zone() -> None:
    now = datetime(2024, 6, 3, 10, 0, tzinfo=UTC)
    assert wake(now, 60, window("14:00", "18:00", "Europe/Paris")).tzinfo is UTC
