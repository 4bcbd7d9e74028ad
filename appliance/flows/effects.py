"""What goes into the flow engine (events, the run's state, the contact it sees) and what comes
out (effects). Plain immutable values: the engine is a pure function over them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "ContactView",
    "RunState",
    "Context",
    "StartRun",
    "Reply",
    "Click",
    "TimerFired",
    "CallResult",
    "EngineEvent",
    "OutButton",
    "OutCard",
    "Send",
    "Schedule",
    "CallOut",
    "AddTag",
    "RemoveTag",
    "SetField",
    "ClearField",
    "Subscribe",
    "NotifyTeam",
    "Handoff",
    "GotoFlow",
    "PublicReply",
    "StepRecord",
    "Effect",
    "button_payload",
    "parse_button_payload",
]

RunStatus = Literal["active", "completed", "interrupted", "loop_limit", "handed_off", "error"]
Waiting = Literal["reply", "input", "delay", "call", "ai_turn", "comment_reply"]


@dataclass(frozen=True, slots=True)
class ContactView:
    """What a flow may read about its contact; the engine updates its own copy as actions run."""

    id: int
    channel: str
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    subscribed: bool = True
    timezone: str | None = None

    def template_values(self, workspace_name: str) -> dict[str, Any]:
        return {
            "contact": {
                "first_name": self.first_name, "last_name": self.last_name, "name": self.name,
                "channel": self.channel, "fields": dict(self.fields), "subscribed": self.subscribed,
            },
            "workspace": {"name": workspace_name},
        }


@dataclass(frozen=True, slots=True)
class RunState:
    """One contact's run of one flow version."""

    run_id: int
    flow_id: int
    version: int
    step: str | None
    status: RunStatus = "active"
    waiting: Waiting | None = None
    retries: int = 0
    turns: int = 0
    timer: str | None = None  # token of the timer the run waits for
    origin_comment: str | None = None  # comment id: the first message goes as a private reply
    contact: ContactView | None = None

    def evolve(self, **changes: Any) -> RunState:
        """A copy with ``changes``, as ``dataclasses.replace`` makes it (unknown names raise
        ``TypeError``; the copy is as frozen), at half its cost: the engine evolves a run
        several times per reply, and ``replace`` re-walks the fields' metadata and re-runs
        ``__init__`` each time (tests/appliance/test_flows_shortcuts.py compares the two)."""
        if not _RUN_FIELD_SET.issuperset(changes):
            raise TypeError(f"RunState has no field {sorted(set(changes) - _RUN_FIELD_SET)!r}")
        new = object.__new__(RunState)
        for name in _RUN_FIELDS:
            # object.__setattr__ is how the frozen class's own __init__ sets a field.
            object.__setattr__(new, name, changes[name] if name in changes else getattr(self, name))
        return new


_RUN_FIELDS = tuple(f.name for f in fields(RunState))
_RUN_FIELD_SET = frozenset(_RUN_FIELDS)


@dataclass(frozen=True, slots=True)
class Context:
    """The world as the engine may see it: the time, a seed for the randomizer, names."""

    now: datetime
    seed: int
    workspace_name: str = ""
    default_timezone: str = "UTC"


# --- events ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StartRun:
    """Begin at the flow's start step (a trigger fired, or ``goto_flow``)."""

    trigger: str
    comment_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """The contact wrote (or tapped something that is not one of this run's buttons)."""

    text: str | None
    kind: str = "text"


@dataclass(frozen=True, slots=True)
class Click:
    """The contact tapped a button (``group`` ``b``), a quick reply (``q``) or a card's button
    (``c``, with ``card``) that this run sent, resolved from its payload."""

    step: str
    group: Literal["b", "q", "c"]
    index: int
    card: int = 0


@dataclass(frozen=True, slots=True)
class TimerFired:
    token: str


@dataclass(frozen=True, slots=True)
class CallResult:
    """The outcome of a ``CallOut``: ``data`` on success (e.g. the HTTP response JSON), or an
    ``error`` reason (``not_configured``, ``timeout``, ``http_500``...)."""

    step: str
    ok: bool
    data: Any = None
    error: str | None = None
    reply_text: str | None = None  # ai_reply: the answer to send
    reply_meta: Mapping[str, Any] | None = None  # ai_reply: passages used, model ...
    done: bool = True  # ai_reply: False while the AI conversation goes on
    handoff: bool = False  # ai_reply: the model asked for a person; the run hands off to the inbox


EngineEvent = StartRun | Reply | Click | TimerFired | CallResult


# --- effects --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OutButton:
    title: str
    payload: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class OutCard:
    title: str
    subtitle: str | None = None
    image_url: str | None = None
    buttons: tuple[OutButton, ...] = ()


@dataclass(frozen=True, slots=True)
class Send:
    """One message to the contact; ``private_reply_to`` makes it a private reply to a comment."""

    step: str
    text: str | None = None
    media: Mapping[str, str] | None = None
    buttons: tuple[OutButton, ...] = ()
    quick_replies: tuple[OutButton, ...] = ()
    cards: tuple[OutCard, ...] = ()
    private_reply_to: str | None = None
    meta: Mapping[str, Any] | None = None  # shown in the inbox (e.g. the AI's passages)


@dataclass(frozen=True, slots=True)
class PublicReply:
    comment_id: str
    text: str


@dataclass(frozen=True, slots=True)
class Schedule:
    """Wake the run at ``at`` with ``TimerFired(token)`` (a delay or an input timeout)."""

    token: str
    at: datetime
    kind: Literal["delay", "input_timeout"]


@dataclass(frozen=True, slots=True)
class CallOut:
    """Work that needs the outside world; its result comes back as ``CallResult``."""

    step: str
    kind: Literal["http_request", "google_sheets", "ai_reply"]
    request: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AddTag:
    tag: str


@dataclass(frozen=True, slots=True)
class RemoveTag:
    tag: str


@dataclass(frozen=True, slots=True)
class SetField:
    name: str
    value: Any


@dataclass(frozen=True, slots=True)
class ClearField:
    name: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    subscribed: bool


@dataclass(frozen=True, slots=True)
class NotifyTeam:
    text: str


@dataclass(frozen=True, slots=True)
class Handoff:
    """Pause automation for the contact and put the conversation in the inbox queue."""

    assign_to: str | None = None


@dataclass(frozen=True, slots=True)
class GotoFlow:
    flow: str


@dataclass(frozen=True, slots=True)
class StepRecord:
    """For stats: a step was entered or completed, or one of its buttons clicked."""

    step: str
    event: Literal["entered", "completed", "clicked"]
    detail: str | None = None


Effect = (
    Send | PublicReply | Schedule | CallOut | AddTag | RemoveTag | SetField | ClearField
    | Subscribe | NotifyTeam | Handoff | GotoFlow | StepRecord
)

_PAYLOAD_PREFIX = "aat1"


def button_payload(run_id: int, step: str, group: str, index: int, card: int = 0) -> str:
    """The opaque payload a button carries: it resolves to (run, step, button) after restarts.
    ``aat1:<run>:<step>:b<i>`` / ``q<i>`` / ``c<card>.<i>``."""
    slot = f"c{card}.{index}" if group == "c" else f"{group}{index}"
    return f"{_PAYLOAD_PREFIX}:{run_id}:{step}:{slot}"


def parse_button_payload(payload: str | None) -> tuple[int, Click] | None:
    """``(run_id, Click)`` for a payload made by :func:`button_payload`, else ``None``."""
    if not payload or not payload.startswith(_PAYLOAD_PREFIX + ":"):
        return None
    parts = payload.split(":")
    if len(parts) != 4 or len(parts[3]) < 2 or parts[3][0] not in "bqc":
        return None
    group, slot = parts[3][0], parts[3][1:]
    try:
        run_id = int(parts[1])
        if group == "c":
            card, _, index = slot.partition(".")
            return run_id, Click(step=parts[2], group="c", index=int(index), card=int(card))
        return run_id, Click(step=parts[2], group=group, index=int(slot))  # type: ignore[arg-type]
    except ValueError:
        return None
