"""The shared Graph plumbing: timestamps, value readers, error parsing, retry hints (the sends
themselves: test_channels_wire.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from appliance.channels.graph import (
    check_length,
    digest,
    event_time,
    graph_error,
    id_or_none,
    int_or_none,
    parse_timestamp,
    retry_after,
)
from appliance.channels.outbound import GraphError, RenderError

T = datetime(2026, 11, 26, 19, 37, 42, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1795721862367, T + timedelta(milliseconds=367)),  # Messenger/IG ms
        (1795721862, T),  # feed created_time, IG comment entry.time (seconds)
        ("1795721862", T),  # WhatsApp: a string of seconds
        ("1795721862367", T + timedelta(milliseconds=367)),
        (1795721862.5, T + timedelta(milliseconds=500)),
        ("2026-11-26T19:37:42+0000", T),
        ("2026-11-26T19:37:42Z", T),
        ("2026-11-26T21:37:42+02:00", T),
        ("2026-11-26T19:37:42", T),  # naive ISO is read as UTC
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_reads_every_meta_encoding(value, expected):
    parsed = parse_timestamp(value)
    assert parsed == expected
    assert parsed.tzinfo is not None
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value", [None, True, False, "", "soon", "2026-13-45", -5, float("nan"), 10**30, {}, [1]]
)
def test_parse_timestamp_returns_none_for_unreadable_values(value):
    assert parse_timestamp(value) is None


def test_event_time_prefers_the_event_and_falls_back_to_the_entry():
    assert event_time(1795721862, 1) == T
    assert event_time(None, 1795721862000) == T
    assert event_time("garbage", 1795721862000) is None  # a wrong timestamp is not replaced
    assert event_time(None, None) is None


def test_id_and_int_readers():
    assert id_or_none(123456789) == "123456789"
    assert id_or_none("m_1") == "m_1"
    assert [id_or_none(v) for v in (None, "", "  ", True, 1.5, {})] == [None] * 6
    assert int_or_none("131047") == 131047
    assert int_or_none(190) == 190
    assert [int_or_none(v) for v in (None, "x", True, 1.5)] == [None] * 4


def test_digest_is_stable_and_short():
    assert digest("a", {"b": 1}) == digest("a", {"b": 1})
    assert digest("a") != digest("b")
    assert len(digest("a")) == 16


def test_check_length_passes_at_the_limit_and_fails_one_over():
    assert check_length("x" * 20, 20, "title", RenderError) == "x" * 20
    with pytest.raises(RenderError, match="title has 21 characters; the limit is 20"):
        check_length("x" * 21, 20, "title", RenderError)


# --- errors and retry hints -------------------------------------------------------------------


def test_graph_error_reads_every_field():
    data = {"error": {"message": "Error validating access token", "type": "OAuthException",
                      "code": 190, "error_subcode": 463, "fbtrace_id": "AbC123"}}
    assert graph_error(401, data) == GraphError(
        code=190, message="Error validating access token", subcode=463, http_status=401,
        fbtrace_id="AbC123", error_type="OAuthException",
    )


def test_graph_error_accepts_codes_as_strings():
    assert graph_error(400, {"error": {"code": "100", "error_subcode": "33"}}) == GraphError(
        code=100, message="HTTP 400", subcode=33, http_status=400
    )


@pytest.mark.parametrize("data", [None, {}, {"error": "nope"}, {"message": "x"}])
def test_graph_error_without_an_error_object_names_the_status(data):
    assert graph_error(502, data) == GraphError(code=None, message="HTTP 502", http_status=502)


def _buc(*minutes):
    return json.dumps({
        "1111": [{"type": "messenger", "call_count": 100,
                  "estimated_time_to_regain_access": minutes[0]}],
        "2222": [{"type": "pages", "estimated_time_to_regain_access": m} for m in minutes[1:]],
    })


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Business-Use-Case-Usage": _buc(3, 12, 5)}, 720.0),
        ({"X-Business-Use-Case-Usage": _buc(2), "Retry-After": "30"}, 120.0),  # BUC wins
        ({"X-Business-Use-Case-Usage": _buc(0, 0), "Retry-After": "30"}, 30.0),
        ({"X-Business-Use-Case-Usage": "not json", "Retry-After": "7.5"}, 7.5),
        ({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, None),
        ({"Retry-After": "-1"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers, expected):
    assert retry_after(httpx.Headers(headers)) == expected


def test_timezone_aware_values_are_converted_to_utc():
    tz = timezone(timedelta(hours=4))
    assert parse_timestamp(datetime(2026, 11, 26, 23, 37, 42, tzinfo=tz).isoformat()) == T
