"""The ``aat.flow/v1`` models (appliance/flows/models.py): parsing, round trips, the JSON Schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from appliance.flows.models import (
    FlowDocument,
    InputStep,
    KeywordTrigger,
    MessageStep,
    Window,
    flow_json_schema,
)
from tests.appliance.flow_helpers import document, pricing_document


def test_example_parses_with_every_step() -> None:
    doc = FlowDocument.model_validate(pricing_document())
    assert {k: s.type for k, s in doc.steps.items()} == {
        "hello": "message", "plans": "message", "ask_email": "input", "thanks": "action",
        "bye": "message", "human": "handoff",
    }


def test_aliases_are_read_from_the_document() -> None:
    doc = FlowDocument.model_validate(pricing_document())
    step = doc.steps["ask_email"]
    assert isinstance(step, InputStep)
    assert step.validate_ == "email"


def test_trigger_defaults_to_contains() -> None:
    doc = FlowDocument.model_validate(document({"a": {"type": "end"}},
                                               triggers=[{"type": "keyword", "keywords": ["x"]}]))
    trigger = doc.triggers[0]
    assert isinstance(trigger, KeywordTrigger)
    assert trigger.match == "contains"


def test_to_json_round_trips() -> None:
    doc = FlowDocument.model_validate(pricing_document())
    assert FlowDocument.model_validate(doc.to_json()) == doc


def test_to_json_uses_the_documents_names() -> None:
    raw = document({"a": {"type": "condition", "if": [{"field": "x", "op": "exists"}], "then": "b",
                          "else": "b"},
                    "b": {"type": "delay", "seconds": 5, "window": {"from": "09:00", "to": "18:00"}}})
    dumped = FlowDocument.model_validate(raw).to_json()
    assert (set(dumped["steps"]["a"]), set(dumped["steps"]["b"]["window"]), "schema" in dumped) == (
        {"type", "if", "then", "else"}, {"from", "to"}, True)


def test_window_reads_from() -> None:
    assert Window.model_validate({"from": "22:00", "to": "06:00"}).from_ == "22:00"


@pytest.mark.parametrize("step", [
    {"type": "message"},
    {"type": "message", "text": "x", "buttons": [{"title": "a", "next": "a"}],
     "quick_replies": [{"title": "b", "next": "a"}]},
    {"type": "message", "text": "x", "buttons": [{"title": "a", "next": "a", "url": "https://x.io"}]},
    {"type": "action", "actions": [{"add_tag": "a", "remove_tag": "b"}]},
    {"type": "action", "actions": [{}]},
    {"type": "delay", "seconds": 365 * 24 * 3600 + 1},
    {"type": "http_request", "url": "https://x.io", "timeout_seconds": 11},
    {"type": "randomizer", "branches": [{"weight": 1}]},
], ids=["empty-message", "buttons-and-quick-replies", "button-with-two-targets", "two-actions",
        "no-action", "delay-over-a-year", "http-timeout-over-10", "one-branch"])
def test_bad_step_is_rejected(step: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FlowDocument.model_validate(document({"a": step}))


def test_media_only_message_is_allowed() -> None:
    raw = document({"a": {"type": "message", "media": {"type": "image", "url": "https://x.io/a.png"}}})
    assert isinstance(FlowDocument.model_validate(raw).steps["a"], MessageStep)


# --- the JSON Schema ----------------------------------------------------------------------------

def _resolve(schema: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = schema
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_schema_is_json_with_draft_and_id() -> None:
    schema = json.loads(json.dumps(flow_json_schema()))
    assert (schema["$schema"], schema["$id"], schema["type"]) == (
        "https://json-schema.org/draft/2020-12/schema", "aat.flow/v1", "object")


def test_schema_refs_all_resolve() -> None:
    schema = flow_json_schema()
    for ref in _refs(schema):
        assert isinstance(_resolve(schema, ref), dict), ref


def test_schema_names_every_step_and_trigger_type() -> None:
    schema = flow_json_schema()
    steps = schema["properties"]["steps"]["patternProperties"]
    step_map = next(iter(steps.values()))["discriminator"]["mapping"]
    trigger_map = schema["properties"]["triggers"]["items"]["discriminator"]["mapping"]
    assert (set(step_map), set(trigger_map)) == (
        {"message", "input", "condition", "randomizer", "delay", "action", "http_request",
         "google_sheets", "ai_reply", "handoff", "goto_flow", "end"},
        {"keyword", "comment", "story_reply", "story_mention", "ref", "postback", "welcome", "default"},
    )


def test_schema_closes_objects_and_step_maps() -> None:
    schema = flow_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["properties"]["steps"]["additionalProperties"] is False
    assert all(d.get("additionalProperties") is False for d in schema["$defs"].values()
               if d.get("type") == "object")


def test_schema_uses_document_names() -> None:
    defs = flow_json_schema()["$defs"]
    assert ("validate" in defs["InputStep"]["properties"], "if" in defs["ConditionStep"]["properties"],
            "from" in defs["Window"]["properties"]) == (True, True, True)


def _structurally_accepts(schema: dict[str, Any], raw: dict[str, Any]) -> list[str]:
    """Without a JSON Schema library: each step and trigger of ``raw`` has only known keys and
    every required one, per the definition its ``type`` maps to."""
    problems = []
    top = schema["properties"]
    problems += [f"top-level {k}" for k in raw if k not in top]
    problems += [f"missing {k}" for k in schema["required"] if k not in raw]
    steps = schema["properties"]["steps"]
    step_map = next(iter(steps["patternProperties"].values()))["discriminator"]["mapping"]
    trigger_map = top["triggers"]["items"]["discriminator"]["mapping"]
    items = [(f"steps.{k}", step_map, v) for k, v in raw["steps"].items()]
    items += [(f"triggers.{i}", trigger_map, t) for i, t in enumerate(raw.get("triggers", []))]
    for where, mapping, item in items:
        definition = _resolve(schema, mapping[item["type"]])
        problems += [f"{where}.{k}" for k in item if k not in definition["properties"]]
        problems += [f"{where} missing {k}" for k in definition.get("required", []) if k not in item]
    return problems


def test_schema_accepts_the_example_structurally() -> None:
    assert _structurally_accepts(flow_json_schema(), pricing_document()) == []


def test_schema_is_valid_and_accepts_the_example_with_jsonschema() -> None:
    import jsonschema

    schema = flow_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(pricing_document())
