"""The flow run's cheaper ways of doing things, each against the long way it replaces: the results
must be the same for any input (hypothesis), so the shortcuts change only the cost per reply."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.flows.effects import ContactView, RunState

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
