"""The condition step's operators (appliance/flows/conditions.py)."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.flows.conditions import evaluate, field_value
from appliance.flows.models import Condition
from tests.appliance.flow_helpers import make_contact

CONTACT = make_contact(
    channel="whatsapp", tags=frozenset({"VIP", "Café"}), subscribed=True,
    fields={"age": "42", "score": 7.5, "city": "São Paulo", "empty": "", "opted": "yes", "paid": False,
            "count": 0, "name": "custom name", "huge": 10**400},
)


def holds(field: str, op: str, value: Any = None, contact: Any = CONTACT) -> bool:
    return evaluate(contact, [Condition(field=field, op=op, value=value)], "all")


@pytest.mark.parametrize("field, op, value, expected", [
    # eq / ne: numbers, strings, booleans
    ("age", "eq", 42, True), ("age", "eq", "42.0", True), ("score", "eq", 7.5, True), ("age", "eq", 41, False),
    ("contact.channel", "eq", "WhatsApp", True), ("city", "eq", "sao paulo", True), ("city", "eq", "Rio", False),
    ("opted", "eq", True, True), ("paid", "eq", False, True), ("paid", "eq", True, False),
    ("contact.subscribed", "eq", True, True), ("contact.subscribed", "eq", "yes", True),
    ("missing", "eq", None, True), ("empty", "eq", "", True), ("missing", "eq", "x", False),
    ("count", "eq", 0, True), ("age", "ne", 41, True), ("age", "ne", "42", False),
    # gt / lt, with numbers and non-numbers
    ("age", "gt", 40, True), ("age", "gt", "42", False), ("age", "lt", 50, True), ("score", "lt", "7,6", True),
    ("city", "gt", 1, False), ("city", "lt", 1, False), ("age", "gt", "many", False), ("missing", "lt", 1, False),
    ("opted", "gt", 0, False), ("huge", "gt", 1, False),
    # contains / not_contains: case- and accent-insensitive
    ("city", "contains", "PAULO", True), ("city", "contains", "sao", True), ("city", "contains", "rio", False),
    ("missing", "contains", "x", False), ("city", "not_contains", "rio", True), ("city", "not_contains", "são", False),
    ("missing", "not_contains", "x", True),
    # exists / not_exists
    ("age", "exists", None, True), ("missing", "exists", None, False), ("empty", "exists", None, False),
    ("count", "exists", None, True), ("paid", "exists", None, True), ("missing", "not_exists", None, True),
    ("age", "not_exists", None, False), ("contact.first_name", "exists", None, True),
    # tags: in value or in field; case- and accent-insensitive
    ("tag", "has_tag", "vip", True), ("vip", "has_tag", None, True), ("cafe", "has_tag", "", True),
    ("x", "has_tag", "lead", False), ("x", "not_has_tag", "lead", True), ("x", "not_has_tag", "VIP", False),
])
def test_operator(field: str, op: str, value: Any, expected: bool) -> None:
    assert holds(field, op, value) is expected


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1_000"])
def test_words_that_float_would_read_are_not_numbers(value: str) -> None:
    contact = make_contact(fields={"x": value})
    assert (holds("x", "gt", 0, contact), holds("x", "lt", 0, contact), holds("x", "eq", value, contact)) == (
        False, False, True)


@pytest.mark.parametrize("name, expected", [
    ("contact.first_name", "Ana"), ("contact.last_name", "Lima"), ("contact.name", "Ana Lima"),
    ("contact.channel", "whatsapp"), ("contact.subscribed", True), ("contact.fields.city", "São Paulo"),
    ("fields.city", "São Paulo"), ("city", "São Paulo"), ("name", "custom name"), ("contact.tags", ["Café", "VIP"]),
    ("contact.unknown", None), ("contact", None), ("contact.fields", None),
])
def test_field_names(name: str, expected: Any) -> None:
    assert field_value(CONTACT, name) == expected


@pytest.mark.parametrize("match, expected", [("all", False), ("any", True)])
def test_match_all_or_any(match: str, expected: bool) -> None:
    conditions = [Condition(field="age", op="gt", value=40), Condition(field="city", op="eq", value="Rio")]
    assert evaluate(CONTACT, conditions, match) is expected


@pytest.mark.parametrize("match", ["all", "any"])
def test_match_when_every_condition_holds(match: str) -> None:
    conditions = [Condition(field="age", op="gt", value=40), Condition(field="vip", op="has_tag")]
    assert evaluate(CONTACT, conditions, match) is True
