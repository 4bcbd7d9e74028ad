"""The prompt of an AI reply and the meaning of its answer, as plain function calls."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.ai.prompt import (
    DONE_MARK,
    HANDOFF_MARK,
    MAX_TURN_CHARS,
    ParsedReply,
    Turn,
    build_prompt,
    conversation_turns,
    parse_reply,
)

PASSAGE = {"title": "Opening hours", "heading": "Opening hours › Holidays", "text": "On holidays we open at 12."}


def prompt(**overrides: Any) -> Any:
    values: dict[str, Any] = {"turns": [Turn("user", "Open on holidays?")], "workspace_instructions": "We are Velo.",
                              "step_instructions": "Be brief.", "use_knowledge_base": True, "passages": [PASSAGE],
                              "channel": "whatsapp"}
    return build_prompt(**{**values, **overrides})


def test_the_prompt_holds_instructions_passages_and_turns() -> None:
    built = prompt()
    assert "We are Velo." in built.system and "Be brief." in built.system
    assert '<passage id="1" title="Opening hours › Opening hours › Holidays">\nOn holidays we open at 12.\n</passage>' \
        in built.system
    assert "Answer only from the knowledge base passages" in built.system
    assert "WhatsApp" in built.system
    assert HANDOFF_MARK in built.system and DONE_MARK in built.system
    assert built.as_messages() == [{"role": "user", "content": "Open on holidays?"}]


def test_no_passages_says_so() -> None:
    system = prompt(passages=[]).system
    assert "No passage of the business's knowledge base matches" in system
    assert "say that you do not know and offer to connect them with a person from the team" in system
    assert "<passage" not in system


def test_without_the_knowledge_base() -> None:
    system = prompt(use_knowledge_base=False, passages=[]).system
    assert "knowledge base" not in system and "<passage" not in system


def test_blank_instructions_leave_no_empty_sections() -> None:
    system = prompt(workspace_instructions=" ", step_instructions=None).system
    assert "Instructions from the business" not in system and "Instructions for this conversation" not in system


def test_a_quote_in_a_title_cannot_break_the_passage_tag() -> None:
    system = prompt(passages=[{**PASSAGE, "title": 'The "best" shop', "heading": ""}]).system
    assert '<passage id="1" title="The \'best\' shop">' in system


def msg(direction: str, text: str | None, kind: str = "text", status: str = "sent") -> dict[str, Any]:
    return {"direction": direction, "text": text, "kind": kind, "status": status}


def test_turns_alternate_and_merge() -> None:
    turns = conversation_turns([
        msg("out", "Welcome!"), msg("in", "hi"), msg("in", "are you open?"), msg("out", "Yes."),
        msg("out", "failed send", status="failed"), msg("in", None, kind="image"), msg("in", None, kind="reaction"),
        msg("in", "and tomorrow?"),
    ])
    assert turns == [Turn("user", "hi\n\nare you open?"), Turn("assistant", "Yes."),
                     Turn("user", "[an image]\n\nand tomorrow?")]


def test_turns_end_with_the_contact() -> None:
    assert conversation_turns([msg("in", "hi"), msg("out", "An agent replied")]) == [Turn("user", "hi")]
    assert conversation_turns([msg("out", "only us")]) == []


def test_long_messages_are_cut() -> None:
    [turn] = conversation_turns([msg("in", "x" * 5000)])
    assert len(turn.text) == MAX_TURN_CHARS


@pytest.mark.parametrize(("raw", "parsed"), [
    ("We open at 10.", ParsedReply("We open at 10.")),
    ("Bye! [[DONE]]", ParsedReply("Bye!", done=True)),
    ("I'll get a colleague. [[HANDOFF]]", ParsedReply("I'll get a colleague.", handoff=True, done=True)),
    ("[[handoff]]", ParsedReply(None, handoff=True, done=True)),
    ("Sure [[ Hand Off ]]", ParsedReply("Sure", handoff=True, done=True)),
    ("Sure [HANDOFF]", ParsedReply("Sure", handoff=True, done=True)),
    ("Let me get someone [[HANDO", ParsedReply("Let me get someone", handoff=True, done=True)),
    ("Done here [[DO", ParsedReply("Done here", done=True)),
    ("Cut [[", ParsedReply("Cut")),
    ("", ParsedReply(None)),
    (None, ParsedReply(None)),
    ("Use [brackets] freely", ParsedReply("Use [brackets] freely")),
])
def test_reply_signals(raw: str | None, parsed: ParsedReply) -> None:
    assert parse_reply(raw) == parsed
