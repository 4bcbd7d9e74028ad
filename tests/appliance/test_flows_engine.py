"""The flow engine (appliance/flows/engine.py) as plain calls of ``step``: message and input
steps, buttons and waits. The other steps, outside calls and limits: test_flows_engine_steps.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from appliance.flows import engine
from appliance.flows.effects import (
    Click,
    OutButton,
    OutCard,
    Reply,
    Schedule,
    SetField,
    StartRun,
    StepRecord,
    TimerFired,
)
from tests.appliance.flow_helpers import (
    NOW,
    RUN_ID,
    drive,
    fire,
    make_contact,
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


# --- message -----------------------------------------------------------------------------------

def test_message_renders_template_with_contact() -> None:
    assert texts(start(PRICING)[1]) == ["Hi Ana! What would you like?"]


def test_message_template_fallback() -> None:
    _, effects = start(PRICING, state=make_state(make_contact(first_name=None)))
    assert texts(effects) == ["Hi there! What would you like?"]


def test_message_buttons_carry_payloads() -> None:
    assert sends(start(PRICING)[1])[0].buttons == (
        OutButton("Plans", payload=f"aat1:{RUN_ID}:hello:b0"),
        OutButton("Talk to a human", payload=f"aat1:{RUN_ID}:hello:b1"),
    )


def test_message_with_buttons_waits_for_a_tap() -> None:
    state = at_hello()
    assert (state.status, state.step, state.waiting) == ("active", "hello", "reply")


def test_message_quick_replies() -> None:
    flow = make_flow({"a": {"type": "message", "text": "Pick", "quick_replies": [
        {"title": "Yes", "next": "b"}, {"title": "No", "next": "b"}]}, "b": END})
    assert sends(start(flow)[1])[0].quick_replies == (
        OutButton("Yes", payload=f"aat1:{RUN_ID}:a:q0"), OutButton("No", payload=f"aat1:{RUN_ID}:a:q1"))


def test_message_media() -> None:
    flow = make_flow({"a": {"type": "message", "media": {"type": "image", "url": "https://x.io/p.png"}}})
    assert sends(start(flow)[1])[0].media == {"type": "image", "url": "https://x.io/p.png"}


CARDS = {"a": {"type": "message", "cards": [
    {"title": "Pro", "subtitle": "for {{contact.first_name}}", "image_url": "https://x.io/p.png",
     "buttons": [{"title": "Buy", "next": "b"}, {"title": "Site", "url": "https://x.io"}]},
    {"title": "Team", "buttons": [{"title": "Buy", "next": "c"}]},
]}, "b": {"type": "message", "text": "Pro it is"}, "c": {"type": "message", "text": "Team it is"}}


def test_message_cards() -> None:
    assert sends(start(make_flow(CARDS))[1])[0].cards == (
        OutCard("Pro", "for Ana", "https://x.io/p.png", (
            OutButton("Buy", payload=f"aat1:{RUN_ID}:a:c0.0"), OutButton("Site", url="https://x.io"))),
        OutCard("Team", None, None, (OutButton("Buy", payload=f"aat1:{RUN_ID}:a:c1.0"),)),
    )


def test_card_button_tap_follows_its_card() -> None:
    flow = make_flow(CARDS)
    _, effects = drive(flow, [StartRun("k"), Click("a", "c", 0, card=1)])
    assert texts(effects)[-1] == "Team it is"


@pytest.mark.parametrize("click", [Click("a", "c", 0, card=-1), Click("a", "c", 0, card=2),
                                   Click("a", "c", 1, card=0), Click("a", "c", 5, card=0)],
                         ids=["negative-card", "card-out-of-range", "url-button", "index-out-of-range"])
def test_card_click_that_is_not_a_reply_button_is_ignored(click: Click) -> None:
    flow = make_flow(CARDS)
    before = start(flow)[0]
    assert drive(flow, [click], state=before) == (before, [])


def test_url_buttons_do_not_wait() -> None:
    flow = make_flow({"a": {"type": "message", "text": "See", "buttons": [{"title": "Site", "url": "https://x.io"}],
                            "next": "b"}, "b": {"type": "message", "text": "then this"}})
    state, effects = start(flow)
    assert (sends(effects)[0].buttons, texts(effects), state.status) == (
        (OutButton("Site", url="https://x.io"),), ["See", "then this"], "completed")


def test_message_chain_then_completes() -> None:
    flow = make_flow({"a": {"type": "message", "text": "one", "next": "b"}, "b": {"type": "message", "text": "two"}})
    state, effects = start(flow)
    assert (texts(effects), state.status, state.waiting) == (["one", "two"], "completed", None)


def test_tap_follows_the_button() -> None:
    state, effects = drive(PRICING, [Click("hello", "b", 0)], state=at_hello())
    assert (texts(effects), state.step, state.waiting) == (
        ["Pro is 15 EUR a month.", "Where can we send the details?"], "ask_email", "input")


def test_tap_records_click_and_completion() -> None:
    _, effects = drive(PRICING, [Click("hello", "b", 0)], state=at_hello())
    assert of_type(effects, StepRecord)[:2] == [StepRecord("hello", "clicked", "Plans"),
                                               StepRecord("hello", "completed")]


def test_tap_on_quick_reply() -> None:
    flow = make_flow({"a": {"type": "message", "text": "Pick", "quick_replies": [
        {"title": "Yes", "next": "y"}, {"title": "No", "next": "n"}]},
        "y": {"type": "message", "text": "yes!"}, "n": {"type": "message", "text": "no!"}})
    _, effects = drive(flow, [StartRun("k"), Click("a", "q", 1)])
    assert texts(effects) == ["Pick", "no!"]


@pytest.mark.parametrize("click", [Click("hello", "b", 2), Click("hello", "b", -1), Click("hello", "q", 0),
                                   Click("nope", "b", 0), Click("plans", "b", 0), Click("ask_email", "b", 0)],
                         ids=["index-too-big", "negative", "no-quick-replies", "unknown-step", "no-buttons",
                              "not-a-message"])
def test_click_that_matches_nothing_is_ignored(click: Click) -> None:
    before = at_hello()
    assert drive(PRICING, [click], state=before) == (before, [])


@pytest.mark.parametrize("typed, expected_step", [
    ("Plans", "ask_email"), ("PLANS", "ask_email"), ("  plans!  ", "ask_email"), ("talk to a HUMAN", "human"),
])
def test_typing_a_button_title_taps_it(typed: str, expected_step: str) -> None:
    state, _ = drive(PRICING, [Reply(typed)], state=at_hello())
    assert state.step == expected_step


def test_typing_title_is_accent_insensitive() -> None:
    flow = make_flow({"a": {"type": "message", "text": "?", "buttons": [{"title": "Café!", "next": "b"}]},
                      "b": {"type": "message", "text": "coffee"}})
    _, effects = drive(flow, [StartRun("k"), Reply("cafe")])
    assert texts(effects) == ["?", "coffee"]


def test_other_text_leaves_the_run_waiting() -> None:
    before = at_hello()
    assert drive(PRICING, [Reply("what?")], state=before) == (before, [])


@pytest.mark.parametrize("text, expected", [("plans", True), ("Plans.", True), ("hello", False), (None, False)])
def test_accepts_typed_titles_only_while_waiting_for_a_tap(text: str | None, expected: bool) -> None:
    assert engine.accepts(PRICING, at_hello(), Reply(text)) is expected


def test_accepts_any_answer_while_waiting_for_input() -> None:
    state = drive(PRICING, [Click("hello", "b", 0)], state=at_hello())[0]
    assert engine.accepts(PRICING, state, Reply("anything")) is True


def test_accepts_nothing_while_waiting_for_a_delay() -> None:
    flow = make_flow({"a": {"type": "delay", "seconds": 60}})
    assert engine.accepts(flow, start(flow)[0], Reply("hi")) is False


def test_accepts_nothing_for_an_ended_run() -> None:
    flow = make_flow({"a": END})
    assert engine.accepts(flow, start(flow)[0], Reply("hi")) is False


def test_old_button_of_the_same_run_still_works() -> None:
    state = drive(PRICING, [Click("hello", "b", 0)], state=at_hello())[0]
    assert state.waiting == "input"
    state, effects = drive(PRICING, [Click("hello", "b", 1)], state=state)
    assert (texts(effects), state.status) == (["Connecting you with our team."], "handed_off")


# --- input -------------------------------------------------------------------------------------

def ask(validate: str = "text", **extra: Any) -> Any:
    step = {"type": "input", "text": "Your answer?", "validate": validate, "save_to": "answer", "next": "done",
            **extra}
    return make_flow({"q": step, "done": {"type": "message", "text": "Got {{contact.fields.answer}}"},
                      "bad": {"type": "message", "text": "Giving up"},
                      "late": {"type": "message", "text": "Too late"}})


def test_input_asks_and_waits() -> None:
    state, effects = start(ask())
    assert (texts(effects), state.waiting, state.step) == (["Your answer?"], "input", "q")


@pytest.mark.parametrize("validate, answer, saved", [
    ("text", "  hello there ", "hello there"),
    ("email", "Ana.Lima@Example.COM", "ana.lima@example.com"),
    ("phone", "+33 6 12-34-56-78", "+33612345678"),
    ("number", "42", 42),
    ("number", "3,5", 3.5),
    ("date", "31/12/2024", "2024-12-31"),
    ("url", "https://example.com/a?b=1", "https://example.com/a?b=1"),
    (r"regex:[A-Z]{2}\d{3}", "AB123", "AB123"),
])
def test_valid_answer_is_saved_normalised(validate: str, answer: str, saved: Any) -> None:
    state, effects = drive(ask(validate), [StartRun("k"), Reply(answer)])
    assert state.contact is not None
    assert (of_type(effects, SetField), state.contact.fields["answer"], texts(effects)[-1]) == (
        [SetField("answer", saved)], saved, f"Got {saved}")


@pytest.mark.parametrize("validate, answer", [
    ("text", "   "), ("email", "ana@"), ("phone", "12"), ("number", "many"), ("date", "2024-02-30"),
    ("url", "example.com"), (r"regex:[A-Z]{2}\d{3}", "ab123"),
])
def test_invalid_answer_retries(validate: str, answer: str) -> None:
    state, effects = drive(ask(validate, retry_text="Try again"), [StartRun("k"), Reply(answer)])
    assert (texts(effects)[-1], state.retries, state.waiting, of_type(effects, SetField)) == (
        "Try again", 1, "input", [])


def test_retry_repeats_the_question_without_retry_text() -> None:
    _, effects = drive(ask("number"), [StartRun("k"), Reply("x")])
    assert texts(effects) == ["Your answer?", "Your answer?"]


def test_invalid_after_max_retries_goes_on_invalid() -> None:
    flow = ask("number", max_retries=2, on_invalid="bad", retry_text="Again")
    state, effects = drive(flow, [StartRun("k"), Reply("x"), Reply("y"), Reply("z")])
    assert (texts(effects), state.status) == (["Your answer?", "Again", "Again", "Giving up"], "completed")


def test_zero_retries_goes_on_invalid_at_once() -> None:
    _, effects = drive(ask("number", max_retries=0, on_invalid="bad"), [StartRun("k"), Reply("x")])
    assert texts(effects) == ["Your answer?", "Giving up"]


def test_invalid_without_on_invalid_ends_the_run() -> None:
    state, _ = drive(ask("number", max_retries=0), [StartRun("k"), Reply("x")])
    assert (state.status, state.waiting) == ("completed", None)


def test_valid_answer_without_next_ends_the_run() -> None:
    flow = make_flow({"q": {"type": "input", "text": "?", "validate": "number"}})
    state, _ = drive(flow, [StartRun("k"), Reply("5")])
    assert (state.status, state.waiting) == ("completed", None)


def test_valid_answer_after_a_retry() -> None:
    state, effects = drive(ask("number"), [StartRun("k"), Reply("x"), Reply("7")])
    assert (texts(effects)[-1], state.status) == ("Got 7", "completed")


def test_input_timeout_is_scheduled() -> None:
    state, effects = start(ask(timeout_seconds=3600, on_timeout="late"))
    assert of_type(effects, Schedule) == [Schedule(str(state.timer), NOW + timedelta(hours=1), "input_timeout")]


def test_input_timeout_goes_on_timeout() -> None:
    flow = ask(timeout_seconds=3600, on_timeout="late")
    state, effects = fire(flow, start(flow)[0])
    assert (texts(effects), state.status) == (["Too late"], "completed")


def test_input_stale_timer_is_ignored() -> None:
    flow = ask(timeout_seconds=3600, on_timeout="late")
    before = start(flow)[0]
    assert drive(flow, [TimerFired("1:q:timeout:0:0")], state=before) == (before, [])


def test_input_timer_after_the_answer_is_ignored() -> None:
    flow = ask(timeout_seconds=3600, on_timeout="late")
    asked = start(flow)[0]
    answered, _ = drive(flow, [Reply("fine")], state=asked)
    assert drive(flow, [TimerFired(str(asked.timer))], state=answered) == (answered, [])


def test_input_timeout_without_on_timeout_ends_the_run() -> None:
    flow = ask(timeout_seconds=60)
    state, _ = fire(flow, start(flow)[0])
    assert (state.status, state.waiting, state.timer) == ("completed", None, None)


@pytest.mark.parametrize("kind", ["comment", "reaction"])
def test_comments_and_reactions_are_not_answers(kind: str) -> None:
    asked = start(ask())[0]
    assert (engine.accepts(ask(), asked, Reply("ana@x.io", kind)), drive(ask(), [Reply("x", kind)], state=asked)) == (
        False, (asked, []))
