"""Templates in flow texts (appliance/flows/templating.py): every name, fallbacks, and the
promise that rendering never raises."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.flows.templating import render_template, render_url, render_value
from tests.appliance.flow_helpers import make_contact

VALUES = make_contact(channel="instagram", fields={"email": "ana@x.io", "age": 30, "score": 2.0, "vip": True,
                                                   "blank": "  ", "nested": {"a": 1}}).template_values("Acme")


@pytest.mark.parametrize("template, expected", [
    ("{{contact.first_name}}", "Ana"),
    ("{{contact.last_name}}", "Lima"),
    ("{{contact.name}}", "Ana Lima"),
    ("{{contact.channel}}", "instagram"),
    ("{{contact.fields.email}}", "ana@x.io"),
    ("{{workspace.name}}", "Acme"),
    ("{{ contact.first_name }}", "Ana"),
    ("Hi {{contact.first_name}}, from {{workspace.name}}.", "Hi Ana, from Acme."),
])
def test_every_name(template: str, expected: str) -> None:
    assert render_template(template, VALUES) == expected


@pytest.mark.parametrize("template, expected", [
    ("{{contact.fields.age}}", "30"),
    ("{{contact.fields.score}}", "2"),
    ("{{contact.fields.vip}}", "yes"),
    ("{{contact.fields.nested}}", ""),
    ("{{contact.fields.nested|n/a}}", "n/a"),
], ids=["int", "whole-float", "bool", "mapping", "mapping-fallback"])
def test_value_types(template: str, expected: str) -> None:
    assert render_template(template, VALUES) == expected


@pytest.mark.parametrize("template, expected", [
    ("{{contact.fields.phone|no phone}}", "no phone"),
    ("{{contact.fields.blank|empty}}", "empty"),
    ("{{contact.first_name|there}}", "Ana"),
    ("{{ contact.fields.phone | spaced }}", "spaced"),
    ("{{contact.fields.phone|}}", ""),
], ids=["missing", "blank-value", "present-value-wins", "spaces-trimmed", "empty-fallback"])
def test_fallbacks(template: str, expected: str) -> None:
    assert render_template(template, VALUES) == expected


@pytest.mark.parametrize("template", ["{{contact.fields.phone}}", "{{unknown.name}}", "{{contact}}",
                                      "{{contact.first_name.deeper}}"])
def test_missing_renders_empty(template: str) -> None:
    assert render_template(f"[{template}]", VALUES) == "[]"


@pytest.mark.parametrize("text", [None, ""])
def test_no_text_renders_empty(text: str | None) -> None:
    assert render_template(text, VALUES) == ""


def test_not_a_template_is_left_alone() -> None:
    assert render_template("{{not a name}} {single} }}{{", VALUES) == "{{not a name}} {single} }}{{"


def test_values_are_not_rendered_again() -> None:
    values = make_contact(first_name="{{workspace.name}}").template_values("Acme")
    assert render_template("{{contact.first_name}}", values) == "{{workspace.name}}"


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("{}|._ acontfirs_nme") + ["é", "\x00", "\n"]), max_size=60),
       fields=st.dictionaries(st.text(max_size=5), st.recursive(
           st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
           max_leaves=5), max_size=4))
def test_rendering_never_raises(text: str, fields: dict[str, Any]) -> None:
    values = make_contact(fields=fields).template_values("W")
    assert isinstance(render_template(text, values), str)


@pytest.mark.parametrize("url, expected", [
    ("https://x.io/{{contact.fields.city}}", "https://x.io/S%C3%A3o%20Paulo%2FSP"),
    ("https://x.io/s?q={{contact.fields.query}}&n=1", "https://x.io/s?q=a%26b%3Dc&n=1"),
    ("https://x.io/{{contact.fields.missing|a b}}", "https://x.io/a%20b"),
    ("https://x.io/{{contact.fields.missing}}/x", "https://x.io//x"),
    ("https://x.io/{{contact.fields.broken}}", "https://x.io/%3Fa"),
], ids=["path", "query", "fallback", "missing", "lone-surrogate"])
def test_url_values_are_percent_encoded(url: str, expected: str) -> None:
    values = make_contact(fields={"city": "São Paulo/SP", "query": "a&b=c", "broken": "\ud800a"}).template_values("W")
    assert render_url(url, values) == expected


def test_render_value_renders_strings_inside_json() -> None:
    body = {"who": "{{contact.name}}", "n": 1, "list": ["{{contact.first_name}}", None, {"x": "{{workspace.name}}"}]}
    assert render_value(body, VALUES) == {"who": "Ana Lima", "n": 1, "list": ["Ana", None, {"x": "Acme"}]}
