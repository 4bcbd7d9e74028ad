"""A segment of contacts as SQL. Pure: no database, no clock (``now`` is passed in).

A segment (``Audience`` in :mod:`appliance.broadcasts.models`) is a conjunction; every part
left out matches everyone::

    tags              {"any": [...], "all": [...], "none": [...]}
    fields            [{"field": "plan", "op": "eq", "value": "pro"}, ...]
    channels          ["whatsapp", ...]        channel types
    channel_ids       ["3", ...]               connected channels
    subscribed        true | false             contacts.subscribed
    last_interaction  {"after": T, "before": T}  contacts.last_inbound_at; T is an ISO-8601
                      time with an offset, or a span before ``now``: "7d", "12h", "30m", "2w"
                      (a contact who never wrote matches no ``after`` and every ``before``)

Field operators: ``eq``/``ne`` (case-insensitive text comparison; a number compares by its
text, so 42 equals "42"), ``contains``, ``starts_with``, ``gt``/``gte``/``lt``/``lte``
(numbers, and text that is a plain decimal number; anything else never matches),
``is_set``/``is_not_set`` (present and not empty). ``ne`` matches contacts without the field.

:func:`compile_where` returns a WHERE clause over ``contacts c JOIN channels ch`` and its
parameters; values are always parameters, field names become JSON paths that are quoted, so no
input reaches the SQL text.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from appliance.timeutil import to_iso

__all__ = ["compile_where", "resolve_time", "SPAN", "FIELD_OPS"]

SPAN = re.compile(r"^(\d{1,5})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
FIELD_OPS = ("eq", "ne", "contains", "starts_with", "gt", "gte", "lt", "lte", "is_set", "is_not_set")
_COMPARE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
# Text that is a plain decimal number: digits, at most one point, an optional leading minus.
_NUMERIC_TEXT = ("(typeof({v}) IN ('integer', 'real') OR ({v} NOT GLOB '*[^0-9.-]*' AND {v} GLOB '*[0-9]*' "
                 "AND {v} NOT GLOB '?*-*' AND {v} NOT GLOB '*.*.*'))")


def resolve_time(value: str, now: datetime) -> datetime:
    """An absolute moment from an ISO time with an offset, or a span (``7d``) before ``now``."""
    span = SPAN.match(value)
    if span:
        return now - timedelta(**{_UNITS[span.group(2)]: int(span.group(1))})
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("a time needs an offset (Z or +02:00)")
    return moment


def _json_path(name: str) -> str:
    return '$."' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _field(cond: dict[str, Any], params: list[Any]) -> str:
    path = _json_path(cond["field"])
    op, value = cond["op"], cond.get("value")
    v = "json_extract(c.fields, ?)"
    text = f"lower(CAST({v} AS TEXT))"
    if op in ("is_set", "is_not_set"):
        params.append(path)
        present = f"COALESCE(CAST({v} AS TEXT), '') != ''"
        return present if op == "is_set" else f"NOT ({present})"
    if op == "ne":
        params.extend([path, _text(value)])
        return f"COALESCE({text}, '') != ?"
    if op == "eq":
        params.extend([path, _text(value)])
        return f"{text} = ?"
    if op == "contains":
        params.extend([path, _text(value)])
        return f"instr({text}, ?) > 0"
    if op == "starts_with":
        prefix = _text(value)
        params.extend([path, len(prefix), prefix])
        return f"substr({text}, 1, ?) = ?"
    numeric = _NUMERIC_TEXT.format(v=v)
    # The path once per placeholder in ``numeric`` and once for the CAST.
    params.extend([path] * (numeric.count(v) + 1) + [float(value)])  # type: ignore[arg-type]
    return f"({numeric} AND CAST({v} AS REAL) {_COMPARE[op]} ?)"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).lower()


def compile_where(audience: dict[str, Any], now: datetime) -> tuple[str, list[Any]]:
    """``(sql, params)``: a WHERE clause over ``contacts c JOIN channels ch``."""
    where: list[str] = []
    params: list[Any] = []
    tags = audience.get("tags") or {}
    if tags.get("any"):
        marks = ", ".join("?" * len(tags["any"]))
        where.append(f"EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND t.tag IN ({marks}))")
        params.extend(tags["any"])
    for tag in tags.get("all") or ():
        where.append("EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND t.tag = ?)")
        params.append(tag)
    if tags.get("none"):
        marks = ", ".join("?" * len(tags["none"]))
        where.append(f"NOT EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND t.tag IN ({marks}))")
        params.extend(tags["none"])
    for cond in audience.get("fields") or ():
        where.append(_field(cond, params))
    if audience.get("channels"):
        where.append(f"ch.type IN ({', '.join('?' * len(audience['channels']))})")
        params.extend(audience["channels"])
    if audience.get("channel_ids"):
        where.append(f"c.channel_id IN ({', '.join('?' * len(audience['channel_ids']))})")
        params.extend(int(i) for i in audience["channel_ids"])
    if audience.get("subscribed") is not None:
        where.append("c.subscribed = ?")
        params.append(int(bool(audience["subscribed"])))
    interaction = audience.get("last_interaction") or {}
    if interaction.get("after"):
        where.append("c.last_inbound_at >= ?")
        params.append(to_iso(resolve_time(interaction["after"], now)))
    if interaction.get("before"):
        where.append("(c.last_inbound_at IS NULL OR c.last_inbound_at < ?)")
        params.append(to_iso(resolve_time(interaction["before"], now)))
    return (" AND ".join(where) or "1 = 1"), params
