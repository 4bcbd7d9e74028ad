"""The flow run's cheaper ways of doing things, each against the long way it replaces: the results
must be the same for any input (hypothesis), so the shortcuts change only the cost per reply."""

from __future__ import annotations

import dataclasses
import random
import re
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.channels.events import ContactRef
from appliance.connections.store import connect_channel
from appliance.contacts import store as contacts
from appliance.flows import engine
from appliance.flows import store as flows
from appliance.flows.effects import ContactView, RunState
from appliance.flows.runner import InboundFacts, Snapshot, fire_timer, on_inbound
from appliance.flows.templating import TEMPLATE, render_template
from appliance.inbox import store as inbox
from appliance.store.workspace import Workspace

SETTINGS = settings(max_examples=200, deadline=None)

maybe_text = st.one_of(st.none(), st.text(max_size=8))
run_states = st.builds(
    RunState, run_id=st.integers(1, 10**6), flow_id=st.integers(1, 99), version=st.integers(1, 9), step=maybe_text,
    status=st.sampled_from(["active", "completed", "error"]), waiting=st.sampled_from([None, "reply", "delay"]),
    retries=st.integers(0, 3), turns=st.integers(0, 3), timer=maybe_text, origin_comment=maybe_text,
    contact=st.one_of(st.none(), st.builds(ContactView, id=st.integers(1, 9), channel=st.just("whatsapp"))),
)
changes = st.dictionaries(
    st.sampled_from([f.name for f in dataclasses.fields(RunState)]),
    st.one_of(st.none(), st.integers(0, 5), st.text(max_size=5)), max_size=5,
)


@SETTINGS
@given(state=run_states, change=changes)
def test_evolve_makes_what_dataclasses_replace_makes(state: RunState, change: dict[str, Any]) -> None:
    evolved = state.evolve(**change)
    expected = dataclasses.replace(state, **change)
    assert type(evolved) is RunState
    assert [getattr(evolved, f.name) for f in dataclasses.fields(RunState)] == \
        [getattr(expected, f.name) for f in dataclasses.fields(RunState)]
    assert evolved == expected and repr(evolved) == repr(expected)


def test_an_evolved_state_is_as_frozen() -> None:
    evolved = RunState(run_id=1, flow_id=1, version=1, step=None).evolve(step="s1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        evolved.step = "s2"  # type: ignore[misc]


def test_evolve_refuses_an_unknown_field_as_replace_does() -> None:
    state = RunState(run_id=1, flow_id=1, version=1, step=None)
    with pytest.raises(TypeError):
        dataclasses.replace(state, stage="s1")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="stage"):
        state.evolve(stage="s1")


def _fold_the_long_way(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


@SETTINGS
@given(text=st.one_of(st.text(st.characters(max_codepoint=127)), st.text()))
def test_fold_of_ascii_text_skips_normalising_with_the_same_result(text: str) -> None:
    assert engine.fold(text) == _fold_the_long_way(text)


@pytest.mark.parametrize("text", ["  STOP  ", "Hello,\tare\x1cyou\x0bopen?", "Café", "ＳＴＯＰ", "Ǆemal", "ß"])
def test_fold_of_chosen_texts_is_the_long_way(text: str) -> None:
    assert engine.fold(text) == _fold_the_long_way(text)


def _render_the_long_way(text: str | None, values: Mapping[str, Any]) -> str:
    if not text:
        return ""

    def lookup(name: str) -> Any:
        current: Any = values
        for part in name.split("."):
            if not (isinstance(current, Mapping) and part in current):
                return None
            current = current[part]
        return current

    def substitute(match: re.Match[str]) -> str:
        value = lookup(match.group(1))
        if value is None or isinstance(value, Mapping | list | tuple | set | frozenset):
            rendered = ""
        elif isinstance(value, bool):
            rendered = "yes" if value else "no"
        elif isinstance(value, float) and value.is_integer():
            rendered = str(int(value))
        else:
            rendered = str(value)
        return rendered if rendered.strip() else (match.group(2) or "").strip()

    return TEMPLATE.sub(substitute, text)


leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6),
                 st.lists(st.integers(), max_size=2), st.frozensets(st.integers(), max_size=2))
field_values = st.dictionaries(st.sampled_from(["age", "city", "x.y"]), leaf, max_size=3)
template_texts = st.lists(st.one_of(
    st.text(max_size=6), st.sampled_from(["{{", "}}", "{", "|", " "]),
    st.sampled_from(["{{contact.first_name}}", "{{ contact.fields.age | none }}", "{{contact.fields.city|?}}",
                     "{{workspace.name}}", "{{contact.fields}}", "{{contact.nothing|x}}", "{{contact.fields.x.y}}"]),
), max_size=6).map("".join)


@SETTINGS
@given(text=st.one_of(st.none(), template_texts), first=st.one_of(st.none(), st.text(max_size=6)),
       fields=field_values, proxy=st.booleans())
def test_render_with_its_shortcuts_is_the_long_way(
    text: str | None, first: str | None, fields: dict[str, Any], proxy: bool,
) -> None:
    # A MappingProxyType stands for any Mapping that is not a dict (the ABC check still runs).
    contact: Mapping[str, Any] = {"first_name": first, "fields": MappingProxyType(fields) if proxy else fields}
    values = {"contact": MappingProxyType(contact) if proxy else contact, "workspace": {"name": "Acme"}}
    assert render_template(text, values) == _render_the_long_way(text, values)


SEED = 1_234_567_890
FIRST = {"schema": "aat.flow/v1", "name": "First", "triggers": [{"type": "default"}], "start": "wait",
         "steps": {"wait": {"type": "delay", "seconds": 60, "next": "go"}, "go": {"type": "goto_flow", "flow": "Then"}}}
THEN = {"schema": "aat.flow/v1", "name": "Then", "triggers": [{"type": "keyword", "keywords": ["zzz"]}],
        "start": "wait", "steps": {"wait": {"type": "delay", "seconds": 60}}}


def test_a_sessions_first_step_takes_its_seed_and_later_steps_draw_from_it(workspace: Workspace) -> None:
    """The runner's first engine step uses the session's seed (no ``Random`` built for the one
    step most messages feed); a later step (here the timer's goto into a second flow, in a
    session of its own) draws from ``Random(seed)``. The seed shows in the timer token's end."""
    now = "2026-11-27T09:00:00.000Z"

    def run(db: Any) -> list[str]:
        channel_id = connect_channel(db, channel_type="messenger", external_id="page-1", token_enc="t", name=None,
                                     waba_id=None, page_id=None, rate_limit=None, now=now)["id"]
        for document in (FIRST, THEN):
            flows.publish(db, int(flows.create_flow(db, document, now)["id"]), document, now)
        contact_id, _ = contacts.upsert_contact(db, channel_id, ContactRef(external_id="psid", name="Ana"), now)
        conversation_id = inbox.ensure_conversation(db, contact_id, channel_id, now)
        facts = InboundFacts(contact_id=contact_id, conversation_id=conversation_id, channel="messenger",
                             kind="text", text="hello", payload={}, new_contact=False, occurred_at=now,
                             channel_id=channel_id, conversation_announced=True)
        first = on_inbound(db, facts, now, seed=SEED, snapshot=Snapshot(db)).timers
        assert len(first) == 1
        later = "2026-11-27T09:01:00.000Z"
        second = fire_timer(db, first[0][0], later, seed=SEED).timers
        return [first[0][0], *(token for token, _ in second)]

    tokens = workspace.gateway.write_sync(run)
    drawn = random.Random(SEED).randrange(2**31)
    assert [token.rsplit(":", 1)[1] for token in tokens] == [str(SEED % 1_000_000), str(drawn % 1_000_000)]
