"""The ``condition`` step's operators over a contact's view.

Fields are named as in templates: ``contact.first_name``, ``contact.fields.NAME``,
``contact.channel``, ``contact.subscribed``; a bare ``NAME`` (or ``fields.NAME``) means
``contact.fields.NAME``.
``has_tag``/``not_has_tag`` take the tag in ``value`` (or in ``field`` when ``value`` is empty).
Comparisons never raise: a value that cannot be compared makes the condition false.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from appliance.flows.effects import ContactView
from appliance.flows.models import Condition

__all__ = ["evaluate", "field_value"]


def field_value(contact: ContactView, name: str) -> Any:
    path = name.split(".")
    if path[0] == "fields" and len(path) > 1:
        return contact.fields.get(".".join(path[1:]))
    if path[0] != "contact":
        return contact.fields.get(name)  # a bare NAME is a custom field, even `name`
    path = path[1:]
    if not path:
        return None
    if path[0] == "fields":
        return contact.fields.get(".".join(path[1:])) if len(path) > 1 else None
    if len(path) == 1 and path[0] in ("first_name", "last_name", "name", "channel", "subscribed", "timezone"):
        return getattr(contact, path[0])
    if len(path) == 1 and path[0] == "tags":
        return sorted(contact.tags)
    return None


def _fold(value: Any) -> str:
    text = unicodedata.normalize("NFKD", str(value))
    return "".join(c for c in text if not unicodedata.combining(c)).casefold().strip()


def _number(value: Any) -> float | None:
    """A finite number, or ``None``: "nan", "inf" and "1_000" are words here, not numbers."""
    if isinstance(value, bool):
        return None
    text = value if isinstance(value, int | float) else str(value).strip().replace(",", ".")
    if isinstance(text, str) and "_" in text:
        return None
    try:
        number = float(text)
    except (ValueError, OverflowError):  # OverflowError: an int too big for a float
        return None
    return number if math.isfinite(number) else None


def _truthy(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    folded = _fold(value) if value is not None else ""
    if folded in ("true", "yes", "y", "1", "on"):
        return True
    if folded in ("false", "no", "n", "0", "off", ""):
        return False
    return None


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(expected, bool):
        return _truthy(actual) is expected
    if isinstance(actual, bool):  # contact.subscribed eq "yes"
        return _truthy(expected) is actual
    if actual is None or expected is None:
        return (actual in (None, "")) and (expected in (None, ""))
    a, b = _number(actual), _number(expected)
    if a is not None and b is not None:
        return a == b
    return _fold(actual) == _fold(expected)


def _one(contact: ContactView, condition: Condition) -> bool:
    op = condition.op
    if op in ("has_tag", "not_has_tag"):
        tag = str(condition.value) if condition.value not in (None, "") else condition.field
        has = tag in contact.tags or _fold(tag) in {_fold(t) for t in contact.tags}
        return has if op == "has_tag" else not has
    actual = field_value(contact, condition.field)
    present = actual is not None and actual != ""
    if op == "exists":
        return present
    if op == "not_exists":
        return not present
    expected = condition.value
    if op in ("gt", "lt"):
        a, b = _number(actual), _number(expected)
        if a is None or b is None:
            return False
        return a > b if op == "gt" else a < b
    if op in ("eq", "ne"):
        equal = _equal(actual, expected)
        return equal if op == "eq" else not equal
    if op in ("contains", "not_contains"):
        inside = present and expected is not None and _fold(expected) in _fold(actual)
        return inside if op == "contains" else not inside
    return False


def evaluate(contact: ContactView, conditions: list[Condition], match: str) -> bool:
    results = (_one(contact, c) for c in conditions)
    return all(results) if match == "all" else any(results)
