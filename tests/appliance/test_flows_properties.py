"""Properties of the flow engine over generated flows and event sequences (hypothesis).

The flows are random graphs of random step types that pass ``check_document``; the events are
arbitrary (any text, clicks on anything, real and made-up timer tokens, calls that succeed or
fail with any data) mixed with realistic ones (taps on the buttons the run just sent, the
timer it waits for). Whatever comes, ``step``:

- does not raise and does not end a run as ``error``, except a failed call without ``on_error``;
- enters at most 50 steps per event;
- leaves an active run waiting for something its step can deliver (never active and idle, never
  waiting on a step it has just completed);
- sends buttons whose payloads resolve to this run and to a step of the flow.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.flows import engine
from appliance.flows.effects import (
    CallResult,
    Click,
    ContactView,
    Context,
    EngineEvent,
    Reply,
    RunState,
    Send,
    StartRun,
    StepRecord,
    TimerFired,
    parse_button_payload,
)
from appliance.flows.models import FlowDocument
from appliance.flows.validate import check_document

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENGINE_SETTINGS = settings(SETTINGS, max_examples=150)
RUN_ID = 42
TYPES = ["message", "input", "condition", "randomizer", "delay", "action", "http_request", "google_sheets",
         "ai_reply", "handoff", "goto_flow", "end"]
VALIDATORS = ["text", "email", "phone", "number", "date", "url", r"regex:[A-Z]\d+", "regex:(?i)yes|no", "regex:.*"]
OPS = ["eq", "ne", "contains", "not_contains", "gt", "lt", "exists", "not_exists", "has_tag", "not_has_tag"]
FIELDS = ["contact.first_name", "contact.fields.age", "contact.fields.city", "age", "contact.channel",
          "contact.subscribed", "contact.tags", "vip", "contact"]
ZONES = [None, "Europe/Paris", "America/New_York", "Asia/Kolkata", "UTC"]
TEMPLATED = st.sampled_from(["Hi {{contact.first_name|there}}", "{{contact.fields.age}}", "{{workspace.name}}",
                             "{{contact.fields.city|?}} ok", "plain"])

short_text = st.text(min_size=1, max_size=12).map(lambda t: t if t.strip() else "x")
text = st.one_of(TEMPLATED, short_text)
title = st.one_of(st.sampled_from(["Yes", "No", "Café!", "Talk to a human", "{{contact.first_name}}"]),
                  st.text(min_size=1, max_size=20))
any_text = st.text(st.characters(exclude_categories=()), max_size=10)  # lone surrogates too
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def steps(draw: Any) -> dict[str, Any]:
    ids = [f"s{i}" for i in range(draw(st.integers(1, 6)))]
    target = st.sampled_from(ids)
    maybe = st.one_of(st.none(), target)
    doc: dict[str, Any] = {}
    for step_id in ids:
        doc[step_id] = {k: v for k, v in draw(_step(draw(st.sampled_from(TYPES)), target, maybe)).items()
                        if v is not None}
    return {"schema": "aat.flow/v1", "name": "generated", "start": draw(target), "steps": doc}


def _step(kind: str, target: Any, maybe: Any) -> Any:  # noqa: PLR0911 - one strategy per type
    if kind == "message":
        return _message(target, maybe)
    if kind == "input":
        return st.fixed_dictionaries({
            "type": st.just("input"), "text": text, "validate": st.sampled_from(VALIDATORS),
            "save_to": st.sampled_from([None, "answer", "age"]), "retry_text": st.one_of(st.none(), text),
            "max_retries": st.integers(0, 3), "timeout_seconds": st.sampled_from([None, 60, 3600]),
            "next": maybe, "on_invalid": maybe, "on_timeout": maybe})
    if kind == "condition":
        condition = st.fixed_dictionaries({"field": st.sampled_from(FIELDS), "op": st.sampled_from(OPS),
                                           "value": st.one_of(st.none(), st.booleans(), st.integers(-5, 50),
                                                              st.floats(allow_nan=False, allow_infinity=False),
                                                              st.text(max_size=8))})
        return st.fixed_dictionaries({"type": st.just("condition"), "if": st.lists(condition, min_size=1, max_size=3),
                                      "match": st.sampled_from(["all", "any"]), "then": maybe, "else": maybe})
    if kind == "randomizer":
        branch = st.fixed_dictionaries({"weight": st.integers(1, 1000), "next": maybe})
        return st.fixed_dictionaries({"type": st.just("randomizer"),
                                      "branches": st.lists(branch, min_size=2, max_size=4)})
    if kind == "delay":
        window = st.one_of(st.none(), st.fixed_dictionaries({
            "from": st.sampled_from(["00:00", "09:00", "22:00", "02:30"]),
            "to": st.sampled_from(["06:00", "18:00", "09:00", "23:59"]), "timezone": st.sampled_from(ZONES)}))
        return st.fixed_dictionaries({"type": st.just("delay"), "seconds": st.integers(1, 365 * 24 * 3600),
                                      "window": window.map(lambda w: {k: v for k, v in w.items() if v} if w else None),
                                      "next": maybe})
    if kind == "action":
        action = st.one_of(
            st.builds(lambda t: {"add_tag": t}, st.sampled_from(["vip", "lead", "Café"])),
            st.builds(lambda t: {"remove_tag": t}, st.sampled_from(["vip", "lead"])),
            st.builds(lambda n, v: {"set_field": {"name": n, "value": v}}, st.sampled_from(["age", "city"]), text),
            st.builds(lambda n: {"clear_field": n}, st.sampled_from(["age", "city"])),
            st.builds(lambda b: {"subscribe": b}, st.booleans()),
            st.builds(lambda t: {"notify_team": t}, text))
        return st.fixed_dictionaries({"type": st.just("action"), "actions": st.lists(action, min_size=1, max_size=3),
                                      "next": maybe})
    if kind == "http_request":
        return st.fixed_dictionaries({
            "type": st.just("http_request"), "method": st.sampled_from(["GET", "POST"]),
            "url": st.sampled_from(["https://x.io/{{contact.fields.city}}", "https://x.io/a?q={{contact.name}}"]),
            "body": st.one_of(st.none(), text, st.fixed_dictionaries({"who": text})),
            "save": st.sampled_from([{}, {"age": "$.age"}, {"city": "$.a[0].b", "age": "$"}]),
            "next": maybe, "on_error": maybe})
    if kind == "google_sheets":
        return st.fixed_dictionaries({"type": st.just("google_sheets"), "spreadsheet_id": st.just("1AbC_dEf-123"),
                                      "sheet": st.just("Leads"), "values": st.lists(text, min_size=1, max_size=3),
                                      "next": maybe, "on_error": maybe})
    if kind == "ai_reply":
        return st.fixed_dictionaries({"type": st.just("ai_reply"), "max_turns": st.integers(1, 4),
                                      "handoff_keywords": st.lists(st.sampled_from(["human", "agent", " ", "é"]),
                                                                   max_size=2),
                                      "next": maybe, "on_error": maybe})
    if kind == "handoff":
        return st.fixed_dictionaries({"type": st.just("handoff"), "text": st.one_of(st.none(), text),
                                      "assign_to": st.sampled_from([None, "sam@x.io"])})
    if kind == "goto_flow":
        return st.just({"type": "goto_flow", "flow": "Other"})
    return st.just({"type": "end"})


@st.composite
def _message(draw: Any, target: Any, maybe: Any) -> dict[str, Any]:
    reply = st.fixed_dictionaries({"title": title, "next": target})
    link = st.fixed_dictionaries({"title": title, "url": st.just("https://x.io/p")})
    step: dict[str, Any] = {"type": "message", "text": draw(text)}
    if draw(st.booleans()):
        step["media"] = {"type": "image", "url": "https://x.io/i.png"}
    shape = draw(st.sampled_from(["plain", "buttons", "quick_replies", "cards"]))
    if shape == "buttons":
        step["buttons"] = draw(st.lists(st.one_of(reply, link), min_size=1, max_size=10))
    elif shape == "quick_replies":
        step["quick_replies"] = draw(st.lists(reply, min_size=1, max_size=13))
    elif shape == "cards":
        card = st.fixed_dictionaries({"title": title, "buttons": st.lists(st.one_of(reply, link), max_size=3)})
        step["cards"] = draw(st.lists(card, min_size=1, max_size=3))
    waits = bool(step.get("quick_replies")) or any("next" in b for b in step.get("buttons", [])) or any(
        "next" in b for c in step.get("cards", []) for b in c["buttons"])
    step["next"] = None if waits else draw(maybe)
    return step


contacts = st.builds(
    ContactView,
    id=st.just(1), channel=st.sampled_from(["messenger", "instagram", "whatsapp"]),
    first_name=st.one_of(st.none(), st.text(max_size=10)),
    fields=st.dictionaries(st.sampled_from(["age", "city", "answer", "x"]), json_value, max_size=3),
    tags=st.frozensets(st.sampled_from(["vip", "lead", "cafe"]), max_size=2),
    subscribed=st.booleans(), timezone=st.sampled_from(ZONES + ["Mars/Base", "Europe", ""]),
)


def _buttons_of(send: Send) -> list[Any]:
    return [*send.buttons, *send.quick_replies, *(b for c in send.cards for b in c.buttons)]


REPLIES = st.builds(Reply, st.one_of(st.none(), st.text(max_size=30), any_text),
                    st.sampled_from(["text", "image", "quick_reply", "comment", "reaction"]))
CALL_DATA = st.one_of(st.none(), st.just({"age": 5, "a": [{"b": "x"}]}), json_value)
EVENT_KINDS = ["reply", "click", "timer", "call", "start", "tap", "typed"]


@st.composite
def event_for(draw: Any, flow: FlowDocument, state: RunState, sent: list[Send]) -> EngineEvent:  # noqa: PLR0911
    """Any event, or one that fits the run: a tap on a button it sent, a title typed, its timer."""
    step_id = st.one_of(st.sampled_from(list(flow.steps)), st.text(max_size=5))
    kind = draw(st.sampled_from(EVENT_KINDS))
    payloads = [b.payload for s in sent for b in _buttons_of(s) if b.payload]
    current = flow.steps.get(state.step or "")
    titles = [b.title for b in (*getattr(current, "buttons", []), *getattr(current, "quick_replies", []))]
    if kind == "tap" and payloads:
        return parse_button_payload(draw(st.sampled_from(payloads)))[1]  # type: ignore[index]
    if kind == "typed" and titles:
        return Reply(f"  {draw(st.sampled_from(titles)).upper()}! ")
    if kind == "click":
        return Click(draw(step_id), draw(st.sampled_from(["b", "q", "c"])), draw(st.integers(-2, 12)),
                     draw(st.integers(-1, 11)))
    if kind == "timer":
        return TimerFired(draw(st.one_of(st.just(state.timer or "none"), st.text(max_size=20))))
    if kind == "call":
        return CallResult(draw(st.one_of(st.just(state.step or "x"), step_id)), draw(st.booleans()), draw(CALL_DATA),
                          draw(st.sampled_from([None, "not_configured", "timeout"])),
                          draw(st.one_of(st.none(), st.text(max_size=20))), None, draw(st.booleans()))
    if kind == "start":
        return StartRun("keyword", draw(st.sampled_from([None, "c1"])))
    return draw(REPLIES)


def _allowed_error(flow: FlowDocument, before: RunState, event: EngineEvent) -> bool:
    """The one way a validated flow may end as ``error``: its call failed and it has no on_error."""
    if not (isinstance(event, CallResult) and not event.ok):
        return False
    doc = flow.steps.get(event.step)
    return before.waiting == "call" and before.step == event.step and not getattr(doc, "on_error", None)


WAITS_ON = {"reply": ("message",), "comment_reply": ("message",), "input": ("input",), "delay": ("delay",),
            "call": ("http_request", "google_sheets", "ai_reply"), "ai_turn": ("ai_reply",)}


def _check_waiting(flow: FlowDocument, state: RunState, effects: list[Any]) -> None:
    """An active run waits for something its current step can deliver, and not for a step it
    has just completed (its wait is over)."""
    if state.status != "active":
        assert (state.waiting, state.timer) == (None, None), state
        return
    assert state.waiting is not None and state.step in flow.steps, state
    assert flow.steps[state.step].type in WAITS_ON[state.waiting], state
    assert state.waiting != "delay" or state.timer is not None, state
    records = [r.event for r in effects if isinstance(r, StepRecord) and r.step == state.step and r.event != "clicked"]
    assert state.waiting == "comment_reply" or records[-1:] != ["completed"], (state, records)


def _check_payloads(flow: FlowDocument, effects: list[Any]) -> None:
    for send in (e for e in effects if isinstance(e, Send)):
        for button in _buttons_of(send):
            if button.url is not None:
                assert button.payload is None
                continue
            parsed = parse_button_payload(button.payload)
            assert parsed is not None, button
            run_id, click = parsed
            assert (run_id, click.step, click.step in flow.steps) == (RUN_ID, send.step, True)


@ENGINE_SETTINGS
@given(raw=steps(), contact=contacts, data=st.data(), seed=st.integers(0, 2**31 - 1),
       hours=st.integers(0, 24 * 365))
def test_engine_keeps_its_promises(raw: dict[str, Any], contact: ContactView, data: Any, seed: int, hours: int) -> None:
    checked = check_document(raw)
    assert checked.errors == [], checked.errors
    flow = checked.document
    assert flow is not None
    state = RunState(run_id=RUN_ID, flow_id=1, version=1, step=None, contact=contact)
    sent: list[Send] = []
    now = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(hours=hours)
    for turn in range(data.draw(st.integers(1, 8), label="events")):
        event = StartRun("keyword", data.draw(st.sampled_from([None, "c1"]), label="comment")) if turn == 0 else \
            data.draw(event_for(flow, state, sent), label=f"event {turn}")
        ctx = Context(now=now + timedelta(minutes=turn), seed=seed + turn, workspace_name="Acme")
        before = state
        state, effects = engine.step(flow, state, event, ctx)
        became_error = state.status == "error" and before.status != "error"
        assert not became_error or _allowed_error(flow, before, event), (event, before)
        entered = [e for e in effects if isinstance(e, StepRecord) and e.event == "entered"]
        assert len(entered) <= engine.MAX_STEPS_PER_EVENT
        _check_waiting(flow, state, effects)
        _check_payloads(flow, effects)
        sent += [e for e in effects if isinstance(e, Send)]


@SETTINGS
@given(raw=steps())
def test_generated_flows_validate_and_publish_checks_run(raw: dict[str, Any]) -> None:
    from appliance.flows.validate import check_publish

    checked = check_document(raw)
    assert checked.document is not None
    published = check_publish(checked.document)
    assert all(e.path == "start" or e.path.startswith("steps.") for e in published.errors + published.warnings)


@settings(max_examples=100, deadline=None)
@given(raw=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                            st.sampled_from(["schema", "name", "start", "steps", "type", "next", "text", "s0",
                                             "buttons", "title", "triggers", "validate", "x"]), inner, max_size=4),
                        max_leaves=20))
def test_check_document_never_raises(raw: Any) -> None:
    checked = check_document(raw)
    assert (checked.document is None) == bool(checked.errors)
