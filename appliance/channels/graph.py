"""Shared Graph API plumbing for the three adapters: reading Meta's values, posting one body.

Parsing side (pure): :func:`parse_timestamp` turns any of Meta's time encodings into an aware
UTC datetime (or None), :func:`text_or_none`/:func:`id_or_none` read optional fields without
trusting their type, and :func:`digest` builds the stable part of a dedupe key for events that
carry no id of their own.

Answers: :func:`graph_error` and :func:`retry_after` read a failed answer, :func:`send_api_message_id`
and :func:`created_id` a successful one, for the message sends (:mod:`appliance.channels.wire`);
:func:`call_json` makes any other Graph call through the appliance's ``httpx.AsyncClient``. None of
them raises for HTTP, Graph or transport failures, or puts a token or a body into a message.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from appliance.channels.events import ParsedWebhook, ParseProblem
from appliance.channels.outbound import GraphError

__all__ = [
    "Malformed",
    "parse_timestamp",
    "event_time",
    "timestamp_ms",
    "text_or_none",
    "id_or_none",
    "int_or_none",
    "digest",
    "check_length",
    "delivery_entries",
    "send_api_message_id",
    "created_id",
    "graph_error",
    "retry_after",
]

class Malformed(Exception):
    """Raised inside a parser for a part it cannot read; the caller turns it into a
    ``ParseProblem`` at its path plus ``subpath``. ``reason`` never quotes content."""

    def __init__(self, reason: str, subpath: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.subpath = subpath


# Epoch values at or above this are milliseconds: 1e11 s is the year 5138, 1e11 ms is 1973.
# Meta mixes units in the same field (``entry.time`` is ms for messaging, s for ``changes``).
_MS_THRESHOLD = 100_000_000_000


def parse_timestamp(value: Any) -> datetime | None:
    """An aware UTC datetime from epoch seconds or milliseconds (int, float or digit string,
    told apart by magnitude) or an ISO 8601 string (naive means UTC); None when unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            number: float = float(text)
        except ValueError:
            return _parse_iso(text)
    elif isinstance(value, int | float):
        number = value
    else:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    seconds = number / 1000 if number >= _MS_THRESHOLD else number
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _parse_iso(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def event_time(raw: Any, fallback: Any) -> datetime | None:
    """When an event happened: its own timestamp ``raw`` when present (None if that is
    unreadable: a wrong timestamp is not silently replaced), else ``fallback`` (the entry's
    ``time``)."""
    return parse_timestamp(raw if raw is not None else fallback)


def timestamp_ms(moment: datetime) -> int:
    """Epoch milliseconds of ``moment``, for dedupe keys."""
    return int(round(moment.timestamp() * 1000))


def text_or_none(value: Any) -> str | None:
    """``value`` when it is a string, else None (Meta's optional text fields)."""
    return value if isinstance(value, str) else None


def id_or_none(value: Any) -> str | None:
    """A non-empty id as a string; Meta sends most ids as strings but some (``app_id``, old
    payloads) as numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def int_or_none(value: Any) -> int | None:
    """An int from an int or a digit string (error codes arrive as either)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def digest(*parts: Any) -> str:
    """A short stable hash of ``parts``: lets a dedupe key depend on content (postback payloads,
    referral refs) without storing that content in the key."""
    raw = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def check_length(value: str, limit: int, what: str, error: type[Exception]) -> str:
    """``value`` unchanged when it has at most ``limit`` characters, else ``error``: Meta
    rejects or truncates longer values, and we never truncate silently."""
    if len(value) > limit:
        raise error(f"{what} has {len(value)} characters; the limit is {limit}")
    return value


def delivery_entries(payload: Any, webhook_object: str, out: ParsedWebhook) -> list[Any] | None:
    """The ``entry`` list of a delivery of ``webhook_object`` (a delivery without ``object``
    counts as one), or None with the reason added to ``out.problems``: the body is not an
    object, it is another object's delivery, or it has no ``entry`` list."""
    if not isinstance(payload, dict):
        out.problems.append(ParseProblem("$", "the body is not a JSON object"))
        return None
    if payload.get("object", webhook_object) != webhook_object:
        out.problems.append(ParseProblem("object", f"not a {webhook_object} delivery"))
        return None
    entries = payload.get("entry")
    if not isinstance(entries, list):
        out.problems.append(ParseProblem("entry", "missing or not a list"))
        return None
    return entries


# --- sending ----------------------------------------------------------------------------------


def send_api_message_id(data: Mapping[str, Any]) -> str | None:
    """The sent message's id in a Messenger/Instagram Send API answer (``message_id``)."""
    return id_or_none(data.get("message_id"))


def created_id(data: Mapping[str, Any]) -> str | None:
    """The new object's id in a Graph answer to a create (``id``: a comment reply)."""
    return id_or_none(data.get("id"))


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def graph_error(http_status: int, data: Mapping[str, Any] | None) -> GraphError:
    """The :class:`GraphError` for a failed response whose decoded body is ``data``
    (``{"error": {message, type, code, error_subcode, fbtrace_id}}``, or anything else)."""
    error = data.get("error") if data is not None else None
    if not isinstance(error, dict):
        return GraphError(code=None, message=f"HTTP {http_status}", http_status=http_status)
    return GraphError(
        code=int_or_none(error.get("code")),
        message=text_or_none(error.get("message")) or f"HTTP {http_status}",
        subcode=int_or_none(error.get("error_subcode")),
        http_status=http_status,
        fbtrace_id=text_or_none(error.get("fbtrace_id")),
        error_type=text_or_none(error.get("type")),
    )


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait before the next call, as Meta says it, from a failed answer's headers
    (a case-insensitive mapping: ``httpx.Headers`` or aiohttp's).

    ``X-Business-Use-Case-Usage`` (``{"<biz_id>": [{"estimated_time_to_regain_access": <min>,
    ...}]}``) wins when it names a positive wait (BUC limits take precedence, §7); else a
    numeric ``Retry-After``; else None.
    """
    minutes = _buc_minutes(headers.get("x-business-use-case-usage"))
    if minutes:
        return minutes * 60.0
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP-date; Meta does not send those
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _buc_minutes(header: str | None) -> float | None:
    if not header:
        return None
    try:
        usage = json.loads(header)
    except ValueError:
        return None
    if not isinstance(usage, dict):
        return None
    best: float | None = None
    for entries in usage.values():
        for item in entries if isinstance(entries, list) else ():
            value = item.get("estimated_time_to_regain_access") if isinstance(item, dict) else None
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                best = value if best is None else max(best, value)
    return best


async def call_json(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    token: str,
    *,
    body: Mapping[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any] | None, GraphError | None]:
    """Any other Graph call (profile settings, lookups): ``(data, None)`` on success, else
    ``(None, error)``. Like the message sends, it never raises and never reveals the token."""
    try:
        response = await client.request(
            method, url, json=body, params=params, headers={"Authorization": f"Bearer {token}"}
        )
    except httpx.TimeoutException:
        return None, GraphError(code=None, message="timeout")
    except httpx.HTTPError:
        return None, GraphError(code=None, message="connection failed")
    data = _json_object(response)
    if response.is_success and not (data and isinstance(data.get("error"), dict)):
        return data or {}, None
    return None, graph_error(response.status_code, data)
