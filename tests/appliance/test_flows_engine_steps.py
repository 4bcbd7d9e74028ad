"""The flow engine as plain calls of ``step``: condition, randomizer, delay, action, handoff,
goto_flow, end, outside calls (HTTP, Sheets, AI), the step limit and comment runs."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from appliance.flows import engine
from appliance.flows.effects import (
    AddTag,
    CallOut,
    CallResult,
    ClearField,
    Click,
    GotoFlow,
    Handoff,
    NotifyTeam,
    RemoveTag,
    Reply,
    Schedule,
    Send,
    SetField,
    StartRun,
    StepRecord,
    Subscribe,
    TimerFired,
    button_payload,
    parse_button_payload,
)
from tests.appliance.flow_helpers import (
    NOW,
    RUN_ID,
    drive,
    entered,
    fire,
    make_contact,
    make_ctx,
    make_flow,
    make_state,
    of_type,
    pricing_document,
    sends,
    start,
    texts,
)

PRICING = make_flow(pricing_document()["steps"], start="hello")
END = {"type": "end"}


def at_hello() -> Any:
    return start(PRICING)[0]


# --- condition and randomizer ------------------------------------------------------------------

def branch_flow(conditions: list[dict[str, Any]], match: str = "all") -> Any:
    return make_flow({"c": {"type": "condition", "if": conditions, "match": match, "then": "yes", "else": "no"},
                      "yes": {"type": "message", "text": "then"}, "no": {"type": "message", "text": "else"}})


@pytest.mark.parametrize("contact, expected", [
    (make_contact(tags=frozenset({"vip"})), ["then"]), (make_contact(), ["else"])])
def test_condition_branches(contact: Any, expected: list[str]) -> None:
    flow = branch_flow([{"field": "vip", "op": "has_tag"}])
    assert texts(start(flow, state=make_state(contact))[1]) == expected


def test_condition_records_the_branch() -> None:
    _, effects = start(branch_flow([{"field": "contact.channel", "op": "eq", "value": "messenger"}]))
    assert StepRecord("c", "completed", "then") in effects


def test_condition_without_else_ends() -> None:
    flow = make_flow({"c": {"type": "condition", "if": [{"field": "x", "op": "exists"}], "then": "m"},
                      "m": {"type": "message", "text": "x"}})
    state, effects = start(flow)
    assert (sends(effects), state.status) == ([], "completed")


RANDOM = {"r": {"type": "randomizer", "branches": [{"weight": 1, "next": "a"}, {"weight": 3, "next": "b"}]},
          "a": {"type": "message", "text": "A"}, "b": {"type": "message", "text": "B"}}


def test_randomizer_is_deterministic_for_a_seed() -> None:
    flow = make_flow(RANDOM)
    runs = {tuple(texts(start(flow, ctx=make_ctx(seed=seed))[1])) for seed in [12345] * 5}
    assert len(runs) == 1


def test_randomizer_follows_the_weights() -> None:
    flow = make_flow(RANDOM)
    counts = Counter(texts(start(flow, ctx=make_ctx(seed=seed))[1])[0] for seed in range(2000))
    assert 0.70 < counts["B"] / 2000 < 0.80


# --- delay -------------------------------------------------------------------------------------

DELAY = {"d": {"type": "delay", "seconds": 90, "next": "m"}, "m": {"type": "message", "text": "later"}}


def test_delay_schedules_a_timer() -> None:
    state, effects = start(make_flow(DELAY))
    assert (of_type(effects, Schedule), state.waiting) == (
        [Schedule(str(state.timer), NOW + timedelta(seconds=90), "delay")], "delay")


def test_delay_continues_on_its_timer() -> None:
    flow = make_flow(DELAY)
    state, effects = fire(flow, start(flow)[0])
    assert (texts(effects), state.status) == (["later"], "completed")


@pytest.mark.parametrize("event", [TimerFired("other"), Reply("hi"), CallResult("d", ok=True)],
                         ids=["other-timer", "reply", "call-result"])
def test_delay_ignores_other_events(event: Any) -> None:
    flow = make_flow(DELAY)
    before = start(flow)[0]
    assert drive(flow, [event], state=before) == (before, [])


def test_delay_without_next_ends_on_its_timer() -> None:
    flow = make_flow({"d": {"type": "delay", "seconds": 5}})
    state, _ = fire(flow, start(flow)[0])
    assert (state.status, state.waiting, state.timer) == ("completed", None, None)


def test_delay_window_in_contact_time_zone() -> None:
    flow = make_flow({"d": {"type": "delay", "seconds": 60, "window": {"from": "09:00", "to": "18:00"}}})
    contact = make_contact(timezone="America/New_York")  # 10:01 UTC is 06:01 in New York
    _, effects = start(flow, state=make_state(contact))
    assert of_type(effects, Schedule)[0].at == datetime(2024, 6, 3, 13, 0, tzinfo=timezone.utc)


def test_revisited_delay_ignores_the_earlier_timer() -> None:
    flow = make_flow({"d": {"type": "delay", "seconds": 60, "next": "m"},
                      "m": {"type": "message", "text": "again?", "buttons": [{"title": "Again", "next": "d"}]}})
    first = start(flow)[0]
    state, _ = fire(flow, first)
    second, _ = drive(flow, [Click("m", "b", 0)], state=state, ctx=make_ctx(now=NOW + timedelta(minutes=5)))
    assert (second.waiting, second.timer != first.timer) == ("delay", True)
    assert drive(flow, [TimerFired(str(first.timer))], state=second) == (second, [])


# --- action ------------------------------------------------------------------------------------

@pytest.mark.parametrize("action, effect", [
    ({"add_tag": "lead"}, AddTag("lead")),
    ({"remove_tag": "old"}, RemoveTag("old")),
    ({"set_field": {"name": "plan", "value": "pro for {{contact.first_name}}"}}, SetField("plan", "pro for Ana")),
    ({"clear_field": "plan"}, ClearField("plan")),
    ({"subscribe": False}, Subscribe(False)),
    ({"notify_team": "{{contact.name}} wants a call"}, NotifyTeam("Ana Lima wants a call")),
])
def test_action_emits_its_effect(action: dict[str, Any], effect: Any) -> None:
    flow = make_flow({"a": {"type": "action", "actions": [action]}})
    _, effects = start(flow)
    assert [e for e in effects if not isinstance(e, StepRecord)] == [effect]


@pytest.mark.parametrize("action, condition", [
    ({"add_tag": "lead"}, {"field": "lead", "op": "has_tag"}),
    ({"remove_tag": "old"}, {"field": "old", "op": "not_has_tag"}),
    ({"set_field": {"name": "plan", "value": "pro"}}, {"field": "contact.fields.plan", "op": "eq", "value": "pro"}),
    ({"clear_field": "plan"}, {"field": "plan", "op": "not_exists"}),
    ({"subscribe": False}, {"field": "contact.subscribed", "op": "eq", "value": False}),
])
def test_later_condition_sees_the_change(action: dict[str, Any], condition: dict[str, Any]) -> None:
    flow = make_flow({"a": {"type": "action", "actions": [action], "next": "c"},
                      "c": {"type": "condition", "if": [condition], "then": "yes", "else": "no"},
                      "yes": {"type": "message", "text": "seen"}, "no": {"type": "message", "text": "missed"}})
    contact = make_contact(tags=frozenset({"old"}), fields={"plan": "basic"})
    assert texts(start(flow, state=make_state(contact))[1]) == ["seen"]


def test_action_updates_the_runs_contact() -> None:
    actions = [{"add_tag": "lead"}, {"set_field": {"name": "x", "value": "1"}}]
    state, _ = start(make_flow({"a": {"type": "action", "actions": actions}}))
    assert state.contact is not None
    assert (state.contact.tags, dict(state.contact.fields)) == (frozenset({"lead"}), {"x": "1"})


# --- handoff, goto_flow, end -------------------------------------------------------------------

def test_handoff_sends_and_hands_off() -> None:
    flow = make_flow({"h": {"type": "handoff", "text": "A human will answer", "assign_to": "sam@x.io"}})
    state, effects = start(flow)
    assert ([e for e in effects if not isinstance(e, StepRecord)], state.status) == (
        [Send("h", text="A human will answer"), Handoff("sam@x.io")], "handed_off")


def test_handoff_without_text_sends_nothing() -> None:
    state, effects = start(make_flow({"h": {"type": "handoff"}}))
    assert (sends(effects), of_type(effects, Handoff), state.status) == ([], [Handoff(None)], "handed_off")


def test_goto_flow() -> None:
    state, effects = start(make_flow({"g": {"type": "goto_flow", "flow": "Onboarding"}}))
    assert (of_type(effects, GotoFlow), state.status) == ([GotoFlow("Onboarding")], "completed")


def test_end() -> None:
    flow = make_flow({"m": {"type": "message", "text": "bye", "next": "e"}, "e": END,
                      "x": {"type": "message", "text": "never"}})
    state, effects = start(flow)
    assert (texts(effects), state.status, StepRecord("e", "completed") in effects) == (["bye"], "completed", True)


@pytest.mark.parametrize("event", [StartRun("k"), Reply("plans"), Click("hello", "b", 0), TimerFired("t")])
def test_ended_run_ignores_events(event: Any) -> None:
    ended = make_state(step="hello", status="completed")
    assert engine.step(PRICING, ended, event, make_ctx()) == (ended, [])


# --- outside calls -----------------------------------------------------------------------------

HTTP = {"h": {"type": "http_request", "method": "POST",
              "url": "https://api.x.io/c/{{contact.fields.code}}?n={{contact.name}}",
              "headers": {"X-Name": "{{contact.first_name}}"},
              "body": {"who": "{{contact.name}}", "n": 1, "list": ["{{contact.channel}}"]},
              "save": {"plan": "$.data.plan", "first": "$.items[0].id", "missing": "$.nope"},
              "next": "ok", "on_error": "err"},
        "ok": {"type": "message", "text": "plan {{contact.fields.plan}}"}, "err": {"type": "message", "text": "failed"}}


def http_flow(**changes: Any) -> Any:
    steps = {k: dict(v) for k, v in HTTP.items()}
    steps["h"].update(changes)
    steps["h"] = {k: v for k, v in steps["h"].items() if v is not None}
    return make_flow(steps)


def at_call(flow: Any) -> Any:
    return start(flow, state=make_state(make_contact(fields={"code": "a b/ü"})))


def test_http_request_call_out() -> None:
    state, effects = at_call(http_flow())
    assert (of_type(effects, CallOut), state.waiting) == ([CallOut("h", "http_request", {
        "method": "POST", "url": "https://api.x.io/c/a%20b%2F%C3%BC?n=Ana%20Lima",
        "headers": {"X-Name": "Ana"}, "body": {"who": "Ana Lima", "n": 1, "list": ["messenger"]},
        "timeout_seconds": 10})], "call")


def test_not_configured_goes_on_error() -> None:
    flow = http_flow()
    state, effects = drive(flow, [CallResult("h", ok=False, error="not_configured")], state=at_call(flow)[0])
    assert (texts(effects), state.status, StepRecord("h", "completed", "error: not_configured") in effects) == (
        ["failed"], "completed", True)


def test_failure_without_on_error_ends_as_error() -> None:
    flow = http_flow(on_error=None)
    state, _ = drive(flow, [CallResult("h", ok=False, error="not_configured")], state=at_call(flow)[0])
    assert (state.status, state.waiting) == ("error", None)


def test_http_result_saves_json_paths() -> None:
    flow = http_flow()
    data = {"data": {"plan": "pro"}, "items": [{"id": 9}]}
    state, effects = drive(flow, [CallResult("h", ok=True, data=data)], state=at_call(flow)[0])
    assert (of_type(effects, SetField), texts(effects), state.status) == (
        [SetField("plan", "pro"), SetField("first", 9)], ["plan pro"], "completed")


def test_call_result_without_next_ends() -> None:
    flow = http_flow(next=None)
    state, _ = drive(flow, [CallResult("h", ok=True, data={})], state=at_call(flow)[0])
    assert (state.status, state.waiting) == ("completed", None)


def test_stale_call_result_is_ignored() -> None:
    flow = http_flow()
    before = at_call(flow)[0]
    assert drive(flow, [CallResult("ok", ok=True)], state=before) == (before, [])


def test_google_sheets_call_out() -> None:
    flow = make_flow({"g": {"type": "google_sheets", "spreadsheet_id": "1AbC_dEf-123", "sheet": "Leads",
                            "values": ["{{contact.name}}", "{{contact.fields.email|none}}"]}})
    assert of_type(start(flow)[1], CallOut) == [CallOut("g", "google_sheets", {
        "spreadsheet_id": "1AbC_dEf-123", "sheet": "Leads", "values": ["Ana Lima", "none"]})]


@pytest.mark.parametrize("kind, step", [
    ("google_sheets", {"type": "google_sheets", "spreadsheet_id": "1AbC_dEf-123", "sheet": "S", "values": ["v"]}),
    ("ai_reply", {"type": "ai_reply"}),
])
def test_other_calls_not_configured_go_on_error(kind: str, step: dict[str, Any]) -> None:
    flow = make_flow({"s": {**step, "on_error": "e"}, "e": {"type": "message", "text": "fallback"}})
    state, effects = drive(flow, [StartRun("k"), CallResult("s", ok=False, error="not_configured")])
    assert (of_type(effects, CallOut)[0].kind, texts(effects), state.status) == (kind, ["fallback"], "completed")


AI = {"ai": {"type": "ai_reply", "instructions": "Be brief", "max_turns": 3, "handoff_keywords": ["human", " "],
             "next": "bye"}, "bye": {"type": "message", "text": "bye"}}


def test_ai_reply_conversation() -> None:
    flow = make_flow(AI)
    state, effects = drive(flow, [StartRun("k"), CallResult("ai", ok=True, reply_text="Hello!", done=False,
                                                            reply_meta={"model": "m"}), Reply("price?")])
    assert (sends(effects), of_type(effects, CallOut)[-1].request["message"], state.turns, state.waiting) == (
        [Send("ai", text="Hello!", meta={"model": "m"})], "price?", 1, "call")


def test_ai_reply_handoff_keyword() -> None:
    flow = make_flow(AI)
    state, effects = drive(flow, [StartRun("k"), CallResult("ai", ok=True, reply_text="Hi", done=False),
                                  Reply("a HUMAN please")])
    assert (of_type(effects, Handoff), state.status) == ([Handoff()], "handed_off")


def test_ai_reply_blank_handoff_keyword_matches_nothing() -> None:
    flow = make_flow(AI)
    state, _ = drive(flow, [StartRun("k"), CallResult("ai", ok=True, reply_text="Hi", done=False), Reply("thanks")])
    assert (state.status, state.waiting) == ("active", "call")


def test_ai_reply_done_goes_next() -> None:
    flow = make_flow(AI)
    _, effects = drive(flow, [StartRun("k"), CallResult("ai", ok=True, reply_text="All set", done=True)])
    assert texts(effects) == ["All set", "bye"]


def test_ai_reply_stops_at_max_turns() -> None:
    flow = make_flow(AI)
    events: list[Any] = [StartRun("k")]
    for turn in range(3):
        events += [CallResult("ai", ok=True, reply_text=f"a{turn}", done=False), Reply(f"q{turn}")]
    state, effects = drive(flow, events)
    assert (texts(effects), state.status) == (["a0", "a1", "a2", "bye"], "completed")


# --- limits and comments -----------------------------------------------------------------------

def test_step_limit_ends_a_loop() -> None:
    flow = make_flow({"m": {"type": "message", "text": "again", "next": "a"},
                      "a": {"type": "action", "actions": [{"add_tag": "x"}], "next": "m"}})
    state, effects = start(flow)
    assert (len(entered(effects)), state.status) == (engine.MAX_STEPS_PER_EVENT, "loop_limit")


def test_comment_run_sends_a_private_reply_then_waits() -> None:
    flow = make_flow({"a": {"type": "message", "text": "Thanks for commenting!", "next": "b"},
                      "b": {"type": "message", "text": "Here is the link"}})
    state, effects = drive(flow, [StartRun("comment", comment_id="c-1")])
    assert (sends(effects), state.waiting, state.origin_comment) == (
        [Send("a", text="Thanks for commenting!", private_reply_to="c-1")], "comment_reply", None)


def test_comment_run_continues_when_the_contact_answers() -> None:
    flow = make_flow({"a": {"type": "message", "text": "Thanks!", "next": "b"},
                      "b": {"type": "message", "text": "Here is the link"}})
    state = drive(flow, [StartRun("comment", comment_id="c-1")])[0]
    assert engine.accepts(flow, state, Reply("ok")) is True
    state, effects = drive(flow, [Reply("ok")], state=state)
    assert (sends(effects), state.status) == ([Send("b", text="Here is the link")], "completed")


def test_comment_run_with_buttons_waits_for_the_tap() -> None:
    state, effects = drive(PRICING, [StartRun("comment", comment_id="c-9")])
    assert (sends(effects)[0].private_reply_to, state.waiting) == ("c-9", "reply")


def test_payloads_resolve_to_the_run() -> None:
    buttons = sends(start(PRICING)[1])[0].buttons
    assert [parse_button_payload(b.payload) for b in buttons] == [
        (RUN_ID, Click("hello", "b", 0)), (RUN_ID, Click("hello", "b", 1))]


@pytest.mark.parametrize("group, index, card", [("b", 0, 0), ("q", 12, 0), ("c", 2, 9)])
def test_button_payload_round_trip(group: str, index: int, card: int) -> None:
    assert parse_button_payload(button_payload(5, "ask-1_x", group, index, card)) == (
        5, Click("ask-1_x", group, index, card))  # type: ignore[arg-type]


@pytest.mark.parametrize("payload", [None, "", "MENU", "aat1:", "aat1:x:s:b0", "aat1:1:s:z0", "aat1:1:s:b",
                                     "aat1:1:s:bx", "aat1:1:s:c1", "aat1:1:s:c.1", "aat1:1:s:b0:extra", "aat2:1:s:b0"])
def test_foreign_payloads_do_not_parse(payload: str | None) -> None:
    assert parse_button_payload(payload) is None


@pytest.mark.parametrize("kind", ["comment", "reaction"])
def test_comments_and_reactions_do_not_continue_a_comment_run(kind: str) -> None:
    flow = make_flow({"a": {"type": "message", "text": "Thanks!", "next": "b"},
                      "b": {"type": "message", "text": "Here is the link"}})
    state = drive(flow, [StartRun("comment", comment_id="c-1")])[0]
    assert (engine.accepts(flow, state, Reply("nice", kind)), drive(flow, [Reply("nice", kind)], state=state)) == (
        False, (state, []))
