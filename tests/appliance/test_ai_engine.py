"""The engine's side of ``ai_reply`` results that carry ``handoff`` (the model asked for a
person): the reply goes out, then the run hands the conversation to the inbox."""

from __future__ import annotations

from typing import Any

from appliance.flows.effects import CallOut, CallResult, Handoff, Reply, Send, StartRun, StepRecord
from tests.appliance.flow_helpers import drive, make_flow, of_type, sends

AI = {"ai": {"type": "ai_reply", "max_turns": 5, "next": "bye"}, "bye": {"type": "message", "text": "bye"}}


def test_handoff_result_sends_the_reply_then_hands_off() -> None:
    flow = make_flow(AI)
    meta: dict[str, Any] = {"passages": [], "provider": "anthropic", "model": "m"}
    state, effects = drive(flow, [StartRun("k"), CallResult("ai", ok=True, reply_text="A person will help you.",
                                                            reply_meta=meta, done=True, handoff=True)])
    assert sends(effects) == [Send("ai", text="A person will help you.", meta=meta)]
    assert of_type(effects, Handoff) == [Handoff()]
    assert StepRecord("ai", "completed", "handoff") in effects
    assert (state.status, state.waiting) == ("handed_off", None)
    assert "bye" not in [s.text for s in sends(effects)]


def test_handoff_without_text_hands_off_silently() -> None:
    flow = make_flow(AI)
    state, effects = drive(flow, [StartRun("k"), CallResult("ai", ok=True, reply_text=None, handoff=True)])
    assert (sends(effects), of_type(effects, Handoff), state.status) == ([], [Handoff()], "handed_off")


def test_handoff_on_a_later_turn() -> None:
    flow = make_flow(AI)
    state, effects = drive(flow, [
        StartRun("k"), CallResult("ai", ok=True, reply_text="Hi", done=False), Reply("I need a refund now"),
        CallResult("ai", ok=True, reply_text="Connecting you.", handoff=True),
    ])
    assert len(of_type(effects, CallOut)) == 2
    assert [s.text for s in sends(effects)] == ["Hi", "Connecting you."]
    assert state.status == "handed_off"


def test_without_handoff_the_conversation_goes_on() -> None:
    flow = make_flow(AI)
    state, effects = drive(flow, [StartRun("k"), CallResult("ai", ok=True, reply_text="Hi", done=False)])
    assert (of_type(effects, Handoff), state.waiting, state.status) == ([], "ai_turn", "active")
