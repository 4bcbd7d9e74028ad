"""Helpers for the flow engine tests: documents built from a few steps, a contact, a run, a
clock, and a driver that feeds the pure engine a list of events.

Everything here is plain data and function calls: the engine has no I/O, so neither do its
tests.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from appliance.flows import engine
from appliance.flows.effects import (
    ContactView,
    Context,
    Effect,
    EngineEvent,
    RunState,
    Send,
    StartRun,
    StepRecord,
    TimerFired,
)
from appliance.flows.models import FlowDocument
from appliance.flows.validate import check_document

FIXTURE = Path(__file__).parent.parent / "fixtures" / "flows" / "pricing.json"
NOW = datetime(2024, 6, 3, 10, 0, tzinfo=timezone.utc)  # a Monday
RUN_ID = 7

E = TypeVar("E")


def pricing_document() -> dict[str, Any]:
    """The spec's example flow (docs/spec/flow-format.md), a fresh copy each call."""
    return json.loads(FIXTURE.read_text())


def document(steps: dict[str, Any], *, start: str | None = None, **top: Any) -> dict[str, Any]:
    """A raw ``aat.flow/v1`` document: ``start`` defaults to the first step."""
    return {"schema": "aat.flow/v1", "name": "Test flow", "start": start or next(iter(steps)),
            "steps": copy.deepcopy(steps), **top}


def make_flow(steps: dict[str, Any], *, start: str | None = None, **top: Any) -> FlowDocument:
    """A parsed document that passed :func:`check_document` (fails the test otherwise)."""
    checked = check_document(document(steps, start=start, **top))
    assert checked.errors == [], checked.errors
    assert checked.document is not None
    return checked.document


def make_contact(**overrides: Any) -> ContactView:
    values: dict[str, Any] = {"id": 1, "channel": "messenger", "name": "Ana Lima", "first_name": "Ana",
                              "last_name": "Lima"}
    values.update(overrides)
    return ContactView(**values)


def make_state(contact: ContactView | None = None, **overrides: Any) -> RunState:
    values: dict[str, Any] = {"run_id": RUN_ID, "flow_id": 3, "version": 1, "step": None,
                              "contact": contact or make_contact()}
    values.update(overrides)
    return RunState(**values)


def make_ctx(*, now: datetime = NOW, seed: int = 1, **overrides: Any) -> Context:
    return Context(now=now, seed=seed, **overrides)


def drive(
    flow: FlowDocument, events: Iterable[EngineEvent], *, state: RunState | None = None,
    ctx: Context | None = None,
) -> tuple[RunState, list[Effect]]:
    """Feed ``events`` one by one; the final state and every effect, in order."""
    state = state or make_state()
    effects: list[Effect] = []
    for event in events:
        state, produced = engine.step(flow, state, event, ctx or make_ctx())
        effects += produced
    return state, effects


def start(flow: FlowDocument, **kwargs: Any) -> tuple[RunState, list[Effect]]:
    return drive(flow, [StartRun("keyword")], **kwargs)


def fire(flow: FlowDocument, state: RunState, **kwargs: Any) -> tuple[RunState, list[Effect]]:
    """The timer ``state`` waits for fires."""
    assert state.timer is not None, state
    return drive(flow, [TimerFired(state.timer)], state=state, **kwargs)


def of_type(effects: Iterable[Any], kind: type[E]) -> list[E]:
    return [e for e in effects if isinstance(e, kind)]


def sends(effects: Iterable[Any]) -> list[Send]:
    return of_type(effects, Send)


def texts(effects: Iterable[Any]) -> list[str | None]:
    return [s.text for s in sends(effects)]


def entered(effects: Iterable[Any]) -> list[str]:
    return [r.step for r in of_type(effects, StepRecord) if r.event == "entered"]
