"""Fuzzing the pure parsers: Meta webhook deliveries, flow documents and flow templates.

Inputs are the fixtures (``tests/fixtures``) with random mutations (:mod:`tests.security.mutations`):
fields dropped, wrong types, huge strings, arbitrary unicode, deep nesting. The contracts:

- ``parse_delivery`` (all three channels) returns events of the documented types and
  ``ParseProblem``s; it never raises, and a problem's reason never quotes content;
- ``check_document`` returns a document or ``{path, message}`` problems (what the API answers
  as ``invalid_flow``); it never raises, and a document it accepts passes it again;
- ``render_template`` / ``render_url`` / ``render_value`` never raise, and a contact's data
  substituted into a URL cannot change its host, path or query structure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.channels.base import parse_delivery
from appliance.channels.events import (
    Echo,
    InboundMessage,
    MessageRevoked,
    ParsedWebhook,
    ParseProblem,
    PreferenceChange,
    StatusUpdate,
    TemplateStatus,
)
from appliance.errors import Detail
from appliance.flows.templating import render_template, render_url, render_value
from appliance.flows.validate import check_document
from tests.conftest import FIXTURES, fixture_json
from tests.security.mutations import MARKER, json_values, mutated, unicode_text

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.data_too_large])
EVENT_TYPES = (InboundMessage, Echo, StatusUpdate, MessageRevoked, PreferenceChange, TemplateStatus)
DELIVERIES = sorted(p.stem for p in FIXTURES.glob("*.json"))
FLOW = json.loads((Path(__file__).parents[1] / "fixtures" / "flows" / "pricing.json").read_text())


def _check_parsed(parsed: ParsedWebhook) -> None:
    assert isinstance(parsed, ParsedWebhook)
    assert all(isinstance(e, EVENT_TYPES) for e in parsed.events), parsed.events
    for problem in parsed.problems:
        assert isinstance(problem, ParseProblem)
        assert isinstance(problem.path, str) and isinstance(problem.reason, str) and problem.reason
        assert MARKER not in problem.reason, "a problem quotes the delivery's content"
    assert isinstance(parsed.ignored, int) and parsed.ignored >= 0


@pytest.mark.parametrize("fixture", DELIVERIES)
def test_every_fixture_parses_without_problems(fixture: str) -> None:
    """The unmutated baseline: each fixture is understood (events or deliberately ignored)."""
    parsed = parse_delivery(fixture_json(fixture))
    _check_parsed(parsed)
    assert parsed.problems == [] and (parsed.events or parsed.ignored), fixture


@FUZZ
@given(data=st.data(), fixture=st.sampled_from(DELIVERIES))
def test_mutated_deliveries_parse_to_events_or_problems(data: st.DataObject, fixture: str) -> None:
    payload = data.draw(mutated(fixture_json(fixture)))
    _check_parsed(parse_delivery(payload))


@FUZZ
@given(data=st.data(), fixture=st.sampled_from(DELIVERIES))
def test_mutated_deliveries_survive_the_json_round_trip(data: st.DataObject, fixture: str) -> None:
    """As the journal processor sees them: encoded (lone surrogates escaped), decoded by msgspec."""
    body = json.dumps(data.draw(mutated(fixture_json(fixture)))).encode()
    _check_parsed(parse_delivery(msgspec.json.decode(body)))


@settings(FUZZ, max_examples=40)
@given(payload=json_values)
def test_arbitrary_json_is_a_problem_not_a_crash(payload: Any) -> None:
    _check_parsed(parse_delivery(payload))
    for obj in ("page", "instagram", "whatsapp_business_account"):
        _check_parsed(parse_delivery({"object": obj, "entry": payload}))
        _check_parsed(parse_delivery({"object": obj, "entry": [payload]}))


# --- flow documents --------------------------------------------------------------------------

def _check_flow(raw: Any) -> None:
    checked = check_document(raw)
    if checked.document is None:
        assert checked.errors, "a rejected document says why"
    else:
        assert not checked.errors
        again = check_document(checked.document.model_dump(mode="json", by_alias=True, exclude_none=True))
        assert again.document is not None, again.errors
    for problem in checked.errors + checked.warnings:
        assert isinstance(problem, Detail)
        assert isinstance(problem.path, str) and problem.path
        assert isinstance(problem.message, str) and problem.message


def test_the_flow_fixture_is_valid() -> None:
    assert check_document(FLOW).document is not None


@settings(FUZZ, max_examples=80)
@given(data=st.data())
def test_mutated_flows_are_valid_or_located_problems(data: st.DataObject) -> None:
    _check_flow(data.draw(mutated(FLOW, max_string=5000)))


@FUZZ
@given(raw=json_values)
def test_arbitrary_documents_are_problems_not_crashes(raw: Any) -> None:
    _check_flow(raw)
    _check_flow({"schema": "aat.flow/v1", "name": "x", "start": "a", "steps": raw})
    _check_flow({"schema": "aat.flow/v1", "name": "x", "start": "a", "steps": {"a": raw}})


# --- templates -------------------------------------------------------------------------------

NAMES = ["contact.first_name", "contact.name", "contact.fields.a", "contact.fields.b", "workspace.name",
         "contact.fields", "contact", "nope.x", "contact.fields.a.b"]
template_text = st.lists(st.one_of(
    unicode_text,
    st.sampled_from(["{{", "}}", "|", "{", "}", "{{ ", " }}"]),
    st.tuples(st.sampled_from(NAMES), st.one_of(st.none(), st.text(max_size=8))).map(
        lambda t: "{{" + t[0] + ("" if t[1] is None else "|" + t[1]) + "}}"),
), max_size=8).map("".join)
contact_values = st.fixed_dictionaries({
    "contact": st.fixed_dictionaries({
        "first_name": st.one_of(st.none(), unicode_text), "name": json_values,
        "fields": st.dictionaries(st.sampled_from(["a", "b", "c"]), json_values, max_size=3),
    }),
    "workspace": st.fixed_dictionaries({"name": unicode_text}),
})


@settings(FUZZ, max_examples=50)
@given(text=template_text, values=contact_values)
def test_rendering_never_raises(text: str, values: dict[str, Any]) -> None:
    rendered = render_template(text, values)
    assert isinstance(rendered, str)
    if "{{" not in text:
        assert rendered == text
    assert isinstance(render_url(text, values), str)


@settings(FUZZ, max_examples=40)
@given(values=contact_values)
def test_values_cannot_change_a_urls_structure(values: dict[str, Any]) -> None:
    url = render_url("https://api.example.com/v1/{{contact.fields.a}}?q={{contact.fields.b}}&n=1", values)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("https", "api.example.com")
    assert parts.path.startswith("/v1/") and "/" not in parts.path.removeprefix("/v1/")
    assert [k for k, _ in parse_qsl(parts.query, keep_blank_values=True)] == ["q", "n"]
    assert parts.fragment == ""


@settings(FUZZ, max_examples=30)
@given(body=json_values, values=contact_values)
def test_render_value_keeps_the_shape_of_json(body: Any, values: dict[str, Any]) -> None:
    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items()}
        if isinstance(value, list):
            return [shape(v) for v in value]
        return type(value).__name__

    assert shape(render_value(body, values)) == shape(body)
