"""Validation of flow documents (appliance/flows/validate.py): every problem with its exact
path on create/update, and what publishing adds."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.errors import Detail
from appliance.flows.validate import check_document, check_publish
from tests.appliance.flow_helpers import document, pricing_document


def paths(raw: Any) -> list[str]:
    return [e.path for e in check_document(raw).errors]


def publish_errors(raw: dict[str, Any]) -> list[Detail]:
    checked = check_document(raw)
    assert checked.errors == [] and checked.document is not None
    return check_publish(checked.document).errors


def publish_warnings(raw: dict[str, Any]) -> list[Detail]:
    checked = check_document(raw)
    assert checked.document is not None
    return check_publish(checked.document).warnings


def with_step(step_id: str, step: dict[str, Any], **top: Any) -> dict[str, Any]:
    raw = pricing_document()
    raw["steps"][step_id] = step
    raw.update(top)
    return raw


# --- the example -----------------------------------------------------------------------------

def test_example_validates() -> None:
    checked = check_document(pricing_document())
    assert (checked.errors, checked.document is not None) == ([], True)


def test_example_publishes_on_all_three_channels() -> None:
    raw = pricing_document()
    assert raw["triggers"][0]["channels"] == ["instagram", "messenger", "whatsapp"]
    checked = check_document(raw)
    assert checked.document is not None
    published = check_publish(checked.document)
    assert (published.errors, published.warnings, published.document is not None) == ([], [], True)


def test_not_an_object() -> None:
    assert paths([1, 2]) == ["$"]


# --- unknown step references -------------------------------------------------------------------

REFERENCES = [
    ("plans", "next", lambda s: s.update(next="nope"), "steps.plans.next"),
    ("hello", "button", lambda s: s["buttons"][0].update(next="nope"), "steps.hello.buttons.0.next"),
    ("hello", "quick reply", lambda s: s.update(buttons=[], quick_replies=[{"title": "a", "next": "nope"}]),
     "steps.hello.quick_replies.0.next"),
    ("hello", "card button", lambda s: s.update(buttons=[], cards=[
        {"title": "c", "buttons": [{"title": "a", "next": "nope"}]}]), "steps.hello.cards.0.buttons.0.next"),
    ("ask_email", "on_invalid", lambda s: s.update(on_invalid="nope"), "steps.ask_email.on_invalid"),
    ("ask_email", "on_timeout", lambda s: s.update(on_timeout="nope", timeout_seconds=60),
     "steps.ask_email.on_timeout"),
]


@pytest.mark.parametrize("step_id, _name, change, expected", REFERENCES, ids=[r[1] for r in REFERENCES])
def test_unknown_reference_in_example(step_id: str, _name: str, change: Any, expected: str) -> None:
    raw = pricing_document()
    change(raw["steps"][step_id])
    assert paths(raw) == [expected]


@pytest.mark.parametrize("step, expected", [
    ({"type": "condition", "if": [{"field": "x", "op": "exists"}], "then": "nope", "else": "bye"},
     ["steps.x.then"]),
    ({"type": "condition", "if": [{"field": "x", "op": "exists"}], "then": "bye", "else": "nope"},
     ["steps.x.else"]),
    ({"type": "randomizer", "branches": [{"weight": 1, "next": "bye"}, {"weight": 1, "next": "nope"}]},
     ["steps.x.branches.1.next"]),
    ({"type": "http_request", "url": "https://x.io", "next": "bye", "on_error": "nope"}, ["steps.x.on_error"]),
    ({"type": "google_sheets", "spreadsheet_id": "a" * 20, "sheet": "S", "values": ["v"], "on_error": "nope"},
     ["steps.x.on_error"]),
    ({"type": "ai_reply", "on_error": "nope"}, ["steps.x.on_error"]),
    ({"type": "delay", "seconds": 5, "next": "nope"}, ["steps.x.next"]),
], ids=["then", "else", "branch", "http-on_error", "sheets-on_error", "ai-on_error", "delay-next"])
def test_unknown_reference_in_new_step(step: dict[str, Any], expected: list[str]) -> None:
    assert paths(with_step("x", step)) == expected


def test_unknown_reference_message() -> None:
    raw = pricing_document()
    raw["steps"]["ask_email"]["next"] = "thx"
    assert check_document(raw).errors == [Detail("steps.ask_email.next", 'unknown step "thx"')]


def test_missing_start() -> None:
    raw = pricing_document()
    del raw["start"]
    assert paths(raw) == ["start"]


def test_unknown_start() -> None:
    raw = pricing_document()
    raw["start"] = "nowhere"
    assert check_document(raw).errors == [Detail("start", 'unknown step "nowhere"')]


def test_unknown_layout_step() -> None:
    assert paths(pricing_document() | {"layout": {"ghost": {"x": 1, "y": 2}}}) == ["layout.ghost"]


# --- types and unknown fields ------------------------------------------------------------------

def _set(path: list[Any], value: Any) -> dict[str, Any]:
    raw = pricing_document()
    node: Any = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return raw


@pytest.mark.parametrize("where, value, expected", [
    (["steps", "ask_email", "max_retries"], "two", "steps.ask_email.max_retries"),
    (["steps", "ask_email", "timeout_seconds"], 5, "steps.ask_email.timeout_seconds"),
    (["steps", "plans", "text"], 42, "steps.plans.text"),
    (["steps", "hello", "buttons"], "Plans", "steps.hello.buttons"),
    (["triggers", 0, "keywords"], "price", "triggers.0.keywords"),
    (["triggers", 0, "match"], "fuzzy", "triggers.0.match"),
    (["triggers", 0, "channels"], ["telegram"], "triggers.0.channels.0"),
    (["name"], "", "name"),
    (["schema"], "aat.flow/v2", "schema"),
], ids=["int-as-string", "timeout-too-short", "text-not-string", "buttons-not-list", "keywords-not-list",
        "bad-match", "bad-channel", "empty-name", "wrong-schema"])
def test_wrong_field_type(where: list[Any], value: Any, expected: str) -> None:
    assert paths(_set(where, value)) == [expected]


@pytest.mark.parametrize("where, expected", [
    ([], "colour"),
    (["steps", "plans"], "steps.plans.colour"),
    (["steps", "hello", "buttons", 0], "steps.hello.buttons.0.colour"),
    (["triggers", 0], "triggers.0.colour"),
], ids=["top-level", "step", "button", "trigger"])
def test_unknown_field(where: list[Any], expected: str) -> None:
    raw = pricing_document()
    node: Any = raw
    for key in where:
        node = node[key]
    node["colour"] = "blue"
    errors = check_document(raw).errors
    assert errors == [Detail(expected, "Extra inputs are not permitted")]


def test_unknown_step_type() -> None:
    errors = check_document(with_step("x", {"type": "teleport"})).errors
    assert [(e.path, e.message.split(":")[0]) for e in errors] == [("steps.x.type", 'unknown type "teleport"')]


def test_step_without_type() -> None:
    assert paths(with_step("x", {"text": "hi"})) == ["steps.x.type"]


def test_unknown_trigger_type() -> None:
    assert paths(pricing_document() | {"triggers": [{"type": "shake"}]}) == ["triggers.0.type"]


def test_bad_step_id() -> None:
    assert paths(with_step("not ok", {"type": "end"})) == ["steps.not ok"]


@pytest.mark.parametrize("validate", ["regex:(", "regex:[a-", "regex:a{99999999999}", "regex:*x", "shouting"])
def test_bad_validator(validate: str) -> None:
    assert paths(_set(["steps", "ask_email", "validate"], validate)) == ["steps.ask_email.validate"]


def test_good_regex_validator() -> None:
    assert paths(_set(["steps", "ask_email", "validate"], r"regex:^[A-Z]{2}\d{4}$")) == []


def test_unknown_window_time_zone() -> None:
    step = {"type": "delay", "seconds": 60, "window": {"from": "09:00", "to": "18:00", "timezone": "Mars/Base"}}
    assert paths(with_step("x", step)) == ["steps.x.window.timezone"]


def test_known_window_time_zone() -> None:
    step = {"type": "delay", "seconds": 60, "window": {"from": "09:00", "to": "18:00", "timezone": "Asia/Tokyo"}}
    assert paths(with_step("x", step)) == []


# --- limits ------------------------------------------------------------------------------------

def _buttons(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"title": f"b{i}", "next": "plans", **extra} for i in range(n)]


@pytest.mark.parametrize("step, expected", [
    ({"type": "message", "text": "x", "buttons": _buttons(11)}, "steps.x.buttons"),
    ({"type": "message", "text": "x", "quick_replies": _buttons(14)}, "steps.x.quick_replies"),
    ({"type": "message", "cards": [{"title": f"c{i}"} for i in range(11)]}, "steps.x.cards"),
    ({"type": "message", "cards": [{"title": "c", "buttons": _buttons(4)}]}, "steps.x.cards.0.buttons"),
    ({"type": "message", "text": "x", "buttons": [{"title": "t" * 81, "next": "plans"}]},
     "steps.x.buttons.0.title"),
    ({"type": "message", "text": "x", "quick_replies": [{"title": "t" * 81, "next": "plans"}]},
     "steps.x.quick_replies.0.title"),
], ids=["11-buttons", "14-quick-replies", "11-cards", "4-card-buttons", "button-title", "quick-reply-title"])
def test_limit(step: dict[str, Any], expected: str) -> None:
    assert paths(with_step("x", step)) == [expected]


@pytest.mark.parametrize("step", [
    {"type": "message", "text": "x", "buttons": _buttons(10)},
    {"type": "message", "text": "x", "quick_replies": _buttons(13)},
    {"type": "message", "cards": [{"title": f"c{i}", "buttons": _buttons(3)} for i in range(10)]},
    {"type": "message", "text": "x", "buttons": [{"title": "t" * 80, "next": "plans"}]},
], ids=["10-buttons", "13-quick-replies", "10-cards-3-buttons", "80-char-title"])
def test_at_the_limit_is_fine(step: dict[str, Any]) -> None:
    assert paths(with_step("x", step)) == []


@pytest.mark.parametrize("step", [
    {"type": "message", "text": "x", "buttons": _buttons(1), "next": "plans"},
    {"type": "message", "text": "x", "quick_replies": _buttons(1), "next": "plans"},
    {"type": "message", "cards": [{"title": "c", "buttons": _buttons(1)}], "next": "plans"},
], ids=["buttons", "quick-replies", "card-buttons"])
def test_reply_buttons_and_next(step: dict[str, Any]) -> None:
    assert paths(with_step("x", step)) == ["steps.x.next"]


def test_link_buttons_and_next_are_fine() -> None:
    step = {"type": "message", "text": "x", "buttons": [{"title": "Site", "url": "https://x.io"}], "next": "plans"}
    assert paths(with_step("x", step)) == []


def test_several_problems_at_once() -> None:
    raw = pricing_document()
    raw["steps"]["hello"]["colour"] = "blue"
    raw["steps"]["plans"]["next"] = "nope"
    raw["steps"]["ask_email"]["validate"] = "regex:("
    raw["steps"]["ask_email"]["max_retries"] = "many"
    raw["triggers"][0]["match"] = "fuzzy"
    assert sorted(paths(raw)) == sorted([
        "steps.hello.colour", "steps.plans.next", "steps.ask_email.validate",
        "steps.ask_email.max_retries", "triggers.0.match",
    ])


def test_several_cross_field_problems_at_once() -> None:
    raw = pricing_document()
    raw["start"] = "nope"
    raw["steps"]["plans"]["next"] = "zz"
    raw["steps"]["hello"]["next"] = "plans"
    assert sorted(paths(raw)) == ["start", "steps.hello.next", "steps.plans.next"]


# --- publishing --------------------------------------------------------------------------------

COND = {"type": "condition", "if": [{"field": "x", "op": "exists"}], "then": "loop_a", "else": "bye"}


def test_silent_cycle_rejected() -> None:
    raw = pricing_document()
    raw["steps"]["thanks"]["next"] = "loop_a"
    raw["steps"]["loop_a"] = dict(COND, then="thanks")
    errors = publish_errors(raw)
    assert [e.path for e in errors] == ["steps.thanks"]
    assert "thanks -> loop_a -> thanks" in errors[0].message


def test_self_loop_rejected() -> None:
    raw = with_step("spin", {"type": "action", "actions": [{"add_tag": "x"}], "next": "spin"})
    raw["steps"]["thanks"]["next"] = "spin"
    assert [e.path for e in publish_errors(raw)] == ["steps.spin"]


def test_cycle_through_outside_call_rejected() -> None:
    raw = with_step("call", {"type": "http_request", "url": "https://x.io", "next": "thanks", "on_error": "thanks"})
    raw["steps"]["thanks"]["next"] = "call"
    assert [e.path for e in publish_errors(raw)] == ["steps.thanks"]


@pytest.mark.parametrize("breaker", [
    {"type": "message", "text": "again", "next": "thanks"},
    {"type": "input", "text": "again?", "next": "thanks"},
    {"type": "delay", "seconds": 60, "next": "thanks"},
], ids=["message", "input", "delay"])
def test_cycle_through_a_wait_accepted(breaker: dict[str, Any]) -> None:
    raw = with_step("pause", breaker)
    raw["steps"]["thanks"]["next"] = "pause"
    assert publish_errors(raw) == []


def test_url_button_among_four_cannot_render() -> None:
    buttons = _buttons(3) + [{"title": "Site", "url": "https://x.io"}]
    errors = publish_errors(with_step("x", {"type": "message", "text": "x", "buttons": buttons}))
    assert [(e.path, e.message.split(":")[0]) for e in errors] == [
        ("steps.x", "cannot be sent on messenger"), ("steps.x", "cannot be sent on instagram"),
        ("steps.x", "cannot be sent on whatsapp")]


def test_whatsapp_list_row_title_over_24() -> None:
    raw = with_step("x", {"type": "message", "text": "x", "buttons": [
        {"title": f"Option {i} with a long title", "next": "plans"} for i in range(5)]},
        settings={"channels": ["whatsapp"]})
    errors = publish_errors(raw)
    assert [(e.path, e.message) for e in errors] == [
        ("steps.x", "cannot be sent on whatsapp: list row title has 26 characters; the limit is 24")]


def test_text_over_instagram_limit() -> None:
    raw = pricing_document()
    raw["steps"]["plans"]["text"] = "x" * 1001
    assert [(e.path, e.message.split(":")[0]) for e in publish_errors(raw)] == [
        ("steps.plans", "cannot be sent on instagram")]


@pytest.mark.parametrize("step_id, field", [("ask_email", "text"), ("ask_email", "retry_text"),
                                            ("human", "text")])
def test_long_input_and_handoff_texts_checked(step_id: str, field: str) -> None:
    raw = pricing_document()
    raw["steps"][step_id][field] = "x" * 1001
    assert [(e.path, e.message.split(":")[0]) for e in publish_errors(raw)] == [
        (f"steps.{step_id}.{field}", "cannot be sent on instagram")]


def test_settings_channels_restrict_the_check() -> None:
    raw = pricing_document() | {"settings": {"channels": ["messenger", "whatsapp"]}}
    raw["steps"]["plans"]["text"] = "x" * 1001
    assert publish_errors(raw) == []


def test_trigger_channels_restrict_the_check() -> None:
    raw = pricing_document()
    raw["triggers"][0]["channels"] = ["whatsapp"]
    raw["steps"]["plans"]["text"] = "x" * 1001
    assert publish_errors(raw) == []


def test_no_trigger_channels_means_all() -> None:
    raw = pricing_document()
    del raw["triggers"][0]["channels"]
    raw["steps"]["plans"]["text"] = "x" * 1001
    assert [e.message.split(":")[0] for e in publish_errors(raw)] == ["cannot be sent on instagram"]


def test_cards_cannot_render_on_whatsapp() -> None:
    raw = with_step("x", {"type": "message", "cards": [{"title": "c"}]}, settings={"channels": ["whatsapp"]})
    assert [e.path for e in publish_errors(raw)] == ["steps.x"]


def test_unreachable_step_is_a_warning_only() -> None:
    raw = with_step("orphan", {"type": "end"})
    checked = check_publish(check_document(raw).document)  # type: ignore[arg-type]
    assert (checked.errors, [w.path for w in checked.warnings], checked.document is not None) == (
        [], ["steps.orphan"], True)


def test_call_without_on_error_warns() -> None:
    raw = pricing_document()
    raw["steps"]["thanks"]["next"] = "call"
    raw["steps"]["call"] = {"type": "http_request", "url": "https://x.io", "next": "bye"}
    assert [w.path for w in publish_warnings(raw)] == ["steps.call.on_error"]


def test_comment_flow_must_start_with_a_message() -> None:
    raw = document({"a": {"type": "action", "actions": [{"add_tag": "x"}], "next": "b"},
                    "b": {"type": "message", "text": "hi"}},
                   triggers=[{"type": "comment", "channels": ["instagram"]}])
    assert [e.path for e in publish_errors(raw)] == ["start"]


@pytest.mark.parametrize("step_id, field, text", [
    ("plans", "text", "{{contact.fields.plan}}"), ("ask_email", "text", " {{contact.first_name}} "),
    ("ask_email", "retry_text", "{{contact.fields.hint}}"), ("human", "text", "{{workspace.name}}"),
])
def test_text_of_templates_without_fallback_warns(step_id: str, field: str, text: str) -> None:
    raw = pricing_document()
    raw["steps"][step_id][field] = text
    assert [w.path for w in publish_warnings(raw)] == [f"steps.{step_id}.{field}"]


@pytest.mark.parametrize("text", ["{{contact.fields.plan|basic}}", "Plan: {{contact.fields.plan}}"])
def test_text_that_cannot_vanish_does_not_warn(text: str) -> None:
    raw = pricing_document()
    raw["steps"]["plans"]["text"] = text
    assert publish_warnings(raw) == []


def test_templated_caption_of_media_does_not_warn() -> None:
    raw = with_step("x", {"type": "message", "text": "{{contact.fields.caption}}",
                          "media": {"type": "image", "url": "https://x.io/a.png"}})
    raw["steps"]["bye"]["next"] = "x"
    assert publish_warnings(raw) == []
