"""Previewing a draft: a pretend contact talks to the flow; nothing reaches a channel.

Each builder user (``owner``) has one preview session per flow, kept in ``flow_previews``.
A new session (or ``reset``) starts at the flow's ``start``; later calls carry the contact's
text or a tapped button's payload. Delays pass at once, outside calls answer
``not_configured`` (until the AI/integrations executors exist), a handoff or ``goto_flow`` is
reported, not followed. Every message comes back twice: as the flow meant it and as the chosen
channel would receive it (the Graph API bodies the real adapter renders).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from typing import Any

from sqlite_utils import Database

from appliance.channels.base import adapter_for
from appliance.channels.outbound import Button, Card, Media, Outbound, Recipient, RenderError
from appliance.errors import Unprocessable
from appliance.flows import engine, store
from appliance.flows.effects import (
    CallOut,
    CallResult,
    ContactView,
    Context,
    EngineEvent,
    GotoFlow,
    Handoff,
    OutButton,
    Reply,
    RunState,
    Schedule,
    Send,
    StartRun,
    TimerFired,
    parse_button_payload,
)
from appliance.flows.validate import check_document
from appliance.timeutil import from_iso, to_iso

__all__ = ["run_preview"]


def _state_to_json(state: RunState) -> str:
    data = asdict(state)
    if state.contact is not None:
        data["contact"]["tags"] = sorted(state.contact.tags)
    return json.dumps(data, ensure_ascii=False)


def _state_from_json(text: str) -> RunState:
    data = json.loads(text)
    contact = data.pop("contact")
    view = ContactView(**{**contact, "tags": frozenset(contact["tags"])}) if contact else None
    return RunState(**data, contact=view)


def _buttons(items: tuple[OutButton, ...]) -> list[dict[str, Any]]:
    return [{k: v for k, v in (("title", b.title), ("payload", b.payload), ("url", b.url)) if v} for b in items]


def _rendered(send: Send, channel: str) -> dict[str, Any]:
    outbound = Outbound(
        recipient=Recipient(external_id="PREVIEW", wa_id="10000000000", comment_id=send.private_reply_to),
        text=send.text,
        media=Media(type=send.media["type"], url=send.media["url"]) if send.media else None,  # type: ignore[arg-type]
        buttons=tuple(Button(title=b.title, payload=b.payload, url=b.url) for b in send.buttons),
        quick_replies=tuple(Button(title=b.title, payload=b.payload) for b in send.quick_replies),
        cards=tuple(Card(title=c.title, subtitle=c.subtitle, image_url=c.image_url,
                         buttons=tuple(Button(title=b.title, payload=b.payload, url=b.url) for b in c.buttons))
                    for c in send.cards),
    )
    message: dict[str, Any] = {
        "step": send.step, "text": send.text, "media": dict(send.media) if send.media else None,
        "buttons": _buttons(send.buttons), "quick_replies": _buttons(send.quick_replies),
        "cards": [{"title": c.title, "subtitle": c.subtitle, "image_url": c.image_url,
                   "buttons": _buttons(c.buttons)} for c in send.cards],
    }
    try:
        message["channel_bodies"] = adapter_for(channel).render(outbound)
    except RenderError as exc:
        message["channel_error"] = str(exc)
    return message


def run_preview(
    db: Database, flow_id: int, owner: str, *, channel: str, text: str | None, payload: str | None,
    reset: bool, now: str,
) -> dict[str, Any]:
    checked = check_document(store.draft_document(db, flow_id))
    if checked.document is None:
        raise Unprocessable("the draft has problems; fix them before previewing", code="invalid_flow",
                            details=checked.errors)
    flow = checked.document
    saved = None if reset else db.execute(
        "SELECT state FROM flow_previews WHERE flow_id = ? AND owner = ?", [flow_id, owner]).fetchone()
    state = _state_from_json(saved[0]) if saved else None
    event: EngineEvent
    if state is None or state.status != "active" or (state.contact and state.contact.channel != channel):
        contact = ContactView(id=0, channel=channel, name="Preview Contact", first_name="Preview",
                              last_name="Contact")
        state = RunState(run_id=0, flow_id=flow_id, version=0, step=None, contact=contact)
        event = StartRun("preview")
    elif payload and (own := parse_button_payload(payload)) is not None:
        event = own[1]
    else:
        event = Reply(text, "text")
    rng = random.Random()
    workspace_name = db.execute("SELECT value FROM workspace_settings WHERE key = 'name'").fetchone()
    timezone = db.execute("SELECT value FROM workspace_settings WHERE key = 'timezone'").fetchone()
    transcript: list[dict[str, Any]] = []
    pending: list[EngineEvent] = [event]
    steps_taken = 0
    while pending and steps_taken < 20:
        steps_taken += 1
        ctx = Context(now=from_iso(now), seed=rng.randrange(2**31),
                      workspace_name=workspace_name[0] if workspace_name else "",
                      default_timezone=timezone[0] if timezone else "UTC")
        state, effects = engine.step(flow, state, pending.pop(0), ctx)
        for effect in effects:
            if isinstance(effect, Send):
                transcript.append({"type": "message", **_rendered(effect, channel)})
            elif isinstance(effect, Schedule):
                transcript.append({"type": "wait", "kind": effect.kind, "until": to_iso(effect.at)})
                if effect.kind == "delay":
                    pending.append(TimerFired(effect.token))
            elif isinstance(effect, CallOut):
                transcript.append({"type": "call", "kind": effect.kind, "step": effect.step,
                                   "error": "not_configured"})
                pending.append(CallResult(step=effect.step, ok=False, error="not_configured"))
            elif isinstance(effect, Handoff):
                transcript.append({"type": "handoff", "assign_to": effect.assign_to})
            elif isinstance(effect, GotoFlow):
                transcript.append({"type": "goto_flow", "flow": effect.flow})
    db.execute(
        "INSERT OR REPLACE INTO flow_previews (flow_id, owner, state, updated_at) VALUES (?, ?, ?, ?)",
        [flow_id, owner, _state_to_json(state), now],
    )
    contact = state.contact
    return {
        "transcript": transcript,
        "run": {"status": state.status, "step": state.step, "waiting": state.waiting},
        "contact": {"tags": sorted(contact.tags) if contact else [], "fields": dict(contact.fields) if contact else {},
                    "subscribed": contact.subscribed if contact else True},
    }
