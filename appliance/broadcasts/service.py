"""Creating, estimating and steering broadcasts: validation that needs the database, and the
audit log.

A broadcast is checked completely when it is created, so that a bad one is a 422 that stores
nothing (DESIGN invariant 5): every button's flow is published and has a ``postback`` trigger
(its payload is what the button carries), the text renders on every channel type the audience
can reach, a template is in the catalogue and gets exactly the variables, media header and
buttons its components call for, and ``send_at`` is a real time in a real zone. What is
stored is the resolved message: flow buttons with their payloads, a template with its account
(``waba_id``) and ``category`` (which decides whether it is marketing).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlite_utils import Database

from appliance.audit import Actor, record
from appliance.broadcasts import catalogue, recipients, store
from appliance.broadcasts.audience import compile_where
from appliance.broadcasts.models import Audience, Message, NewBroadcast, dump
from appliance.channels.base import adapter_for
from appliance.channels.outbound import RenderError
from appliance.errors import Conflict, Detail, NotFound, Unprocessable
from appliance.flows import store as flows
from appliance.flows.models import PostbackTrigger
from appliance.outbox.policy import Decision
from appliance.outbox.sender import build_outbound
from appliance.store.rows import many
from appliance.timeutil import iso_now, to_iso, utcnow
from appliance.workspace import store as workspace

__all__ = ["create", "estimate", "act", "check_template", "template_problem_of", "resolve_message", "template_problem"]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_MEDIA_HEADERS = {"IMAGE": "image", "VIDEO": "video", "DOCUMENT": "document"}


def _invalid(details: list[Detail]) -> Unprocessable:
    return Unprocessable("the broadcast cannot be sent as given; see details", code="invalid_broadcast",
                         details=details)


def _flow_payload(db: Database, flow_id: str, path: str) -> str:
    found = flows.find_published(db, flow_id) if flow_id.isdigit() else None
    document = flows.load_version(db, *found) if found else None
    if document is None:
        raise _invalid([Detail(path, f"flow {flow_id} does not exist or is not published")])
    for trigger in document.triggers:
        if isinstance(trigger, PostbackTrigger):
            return trigger.payload
    raise _invalid([Detail(path, f"flow {flow_id} has no postback trigger: add one "
                                 "({\"type\": \"postback\", \"payload\": ...}) so a button can start it")])


def _channel_types(db: Database, audience: Audience) -> list[str]:
    """The channel types the audience can reach among the connected channels."""
    types = {r["type"] for r in many(db, "SELECT DISTINCT type FROM channels")}
    if audience.channels:
        types &= set(audience.channels)
    if audience.channel_ids:
        marks = ", ".join("?" * len(audience.channel_ids))
        types &= {r["type"] for r in many(db, f"SELECT type FROM channels WHERE id IN ({marks})",
                                          [int(i) for i in audience.channel_ids])}
    return sorted(types)


def _check_renders(message: dict[str, Any], types: list[str]) -> None:
    """A text message renders on each channel type (length and button limits differ)."""
    preview = {"text": message.get("text"), "reply_to": None, "message_id": 0, "contact_external_id": "1",
               "wa_id": "1", "bsuid": None,
               "payload": {"buttons": message.get("buttons", [])}}
    for channel_type in types:
        try:
            adapter_for(channel_type).render(build_outbound(preview, Decision(True)))
        except RenderError as exc:
            raise _invalid([Detail("message", f"cannot be sent on {channel_type}: {exc}")]) from exc


def template_problem(template: dict[str, Any], entry: dict[str, Any]) -> list[Detail]:
    """What the template's components call for and the message does not give (or the other
    way round). A catalogue entry without components (known from a webhook only) is trusted."""
    components = {str(c.get("type", "")).upper(): c for c in entry["components"] if isinstance(c, dict)}
    problems: list[Detail] = []
    if not components:
        return problems
    body = _PLACEHOLDER.findall(str(components.get("BODY", {}).get("text", "")))
    given = template.get("body")
    if entry["parameter_format"] == "NAMED":
        if sorted(set(body)) != sorted(given or {}) or (given is not None and not isinstance(given, dict)):
            problems.append(Detail("message.template.body",
                                   f"the template's body takes the named variables {sorted(set(body))}"))
    elif len(set(body)) != len(given or []) or isinstance(given, dict):
        problems.append(Detail("message.template.body", f"the template's body takes {len(set(body))} variables"))
    header = components.get("HEADER", {})
    fmt = str(header.get("format", "")).upper()
    media = template.get("header_media")
    if fmt in _MEDIA_HEADERS:
        if not media or media["type"] != _MEDIA_HEADERS[fmt]:
            problems.append(Detail("message.template.header_media", f"the template's header is {fmt.lower()}: "
                                   f"give header_media of type {_MEDIA_HEADERS[fmt]}"))
    elif media:
        problems.append(Detail("message.template.header_media", "the template has no media header"))
    wanted = len(set(_PLACEHOLDER.findall(str(header.get("text", ""))))) if fmt == "TEXT" else 0
    if wanted != len(template.get("header") or []):
        problems.append(Detail("message.template.header", f"the template's header takes {wanted} variables"))
    buttons = components.get("BUTTONS", {}).get("buttons", [])
    for i, button in enumerate(template.get("buttons", ())):
        kind = buttons[button["index"]].get("type") if button["index"] < len(buttons) else None
        if str(kind).upper() != "QUICK_REPLY":
            problems.append(Detail(f"message.template.buttons.{i}.index",
                                   f"button {button['index']} of the template is not a quick-reply button"))
    return problems


def resolve_message(db: Database, message: Message, audience: Audience) -> dict[str, Any]:
    """The message as stored and sent (see the module docstring); raises 422."""
    stored = dump(message)
    if message.template is None:
        for i, button in enumerate(stored.get("buttons", [])):
            if "flow_id" in button:
                button["payload"] = _flow_payload(db, button["flow_id"], f"message.buttons.{i}.flow_id")
        _check_renders(stored, _channel_types(db, audience))
        return stored
    template = stored["template"]
    try:
        entries = catalogue.find(db, template["name"], template["language"], template.get("waba_id"))
    except NotFound as exc:
        raise _invalid([Detail("message.template", exc.message)]) from exc
    if len(entries) > 1:
        raise _invalid([Detail("message.template.waba_id", "several WhatsApp accounts have this template: "
                               f"name one of {[e['waba_id'] for e in entries]}")])
    entry = entries[0]
    problems = template_problem(template, entry)
    if problems:
        raise _invalid(problems)
    for i, button in enumerate(template.get("buttons", [])):
        if "flow_id" in button:
            button["payload"] = _flow_payload(db, button["flow_id"], f"message.template.buttons.{i}.flow_id")
    template.update(waba_id=entry["waba_id"], category=entry["category"])
    return stored


def _schedule(send_at: str | None, zone_name: str | None, default_zone: str) -> tuple[str | None, str | None]:
    if send_at is None:
        return None, zone_name
    try:
        zone = ZoneInfo(zone_name or default_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _invalid([Detail("timezone", "not an IANA time zone, e.g. Europe/Berlin")]) from exc
    try:
        moment = datetime.fromisoformat(send_at.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        return to_iso(moment), zone_name or default_zone
    except (ValueError, OverflowError) as exc:
        raise _invalid([Detail("send_at", "not an ISO-8601 time, e.g. 2026-12-01T09:00:00")]) from exc


def create(db: Database, data: NewBroadcast, actor: Actor) -> dict[str, Any]:
    """Validate, store as a draft, audit; one transaction."""
    message = resolve_message(db, data.message, data.audience)
    send_at, zone = _schedule(data.send_at, data.timezone, workspace.read(db)["timezone"])
    row = store.create(db, name=data.name, audience=dump(data.audience), message=message, send_at=send_at,
                       timezone=zone, now=iso_now())
    record(db, actor, "broadcast.create", target_kind="broadcast", target_id=row["id"],
           details={"kind": "template" if "template" in message else "text"})
    return row


def estimate(db: Database, audience: Audience, message: Message) -> dict[str, Any]:
    """The audience now and what the policy would decide (read-only)."""
    stored = resolve_message(db, message, audience)
    now = utcnow()
    where, params = compile_where(dump(audience), now)
    return recipients.estimate(db, where, params, stored, to_iso(now))


def _template_state(db: Database, message: dict[str, Any]) -> str | None:
    """Why the broadcast's template cannot be sent now, or None."""
    template = message.get("template")
    if template is None:
        return None
    rows = many(db, "SELECT status FROM whatsapp_templates WHERE waba_id = ? AND name = ? AND language = ?",
                [template["waba_id"], template["name"], template["language"]])
    status = rows[0]["status"] if rows else "missing from the catalogue"
    if status == catalogue.SENDABLE:
        return None
    return f"the template {template['name']} ({template['language']}) is {status.lower()} at Meta"


_ACTIONS = {"start": store.start, "pause": store.pause, "cancel": store.cancel}


def act(db: Database, broadcast_id: int, action: str, actor: Actor) -> dict[str, Any]:
    """Start (or resume), pause or cancel; audited when the status changes. Starting a template
    broadcast needs the template approved (409 ``template_not_sendable``)."""
    before = store.get(db, broadcast_id)
    if action == "start" and before["status"] in ("draft", "paused"):
        problem = _template_state(db, json.loads(before["message"]))
        if problem:
            raise Conflict(problem, code="template_not_sendable")
    now = iso_now()
    after = _ACTIONS[action](db, broadcast_id, now)
    if after["status"] != before["status"]:
        name = "resume" if action == "start" and before["status"] == "paused" else action
        record(db, actor, f"broadcast.{name}", target_kind="broadcast", target_id=broadcast_id,
               details={"from": before["status"], "to": after["status"]}, now=now)
    return after


def template_problem_of(db: Database, broadcast_id: int) -> str | None:
    """Why the broadcast's template cannot be sent now, or None (read-only)."""
    return _template_state(db, json.loads(store.get(db, broadcast_id)["message"]))


def check_template(db: Database, broadcast_id: int, now: str) -> str | None:
    """For the worker: pause a sending broadcast whose template Meta stopped (audited as the
    system); returns the reason when it did."""
    row = store.get(db, broadcast_id)
    problem = _template_state(db, json.loads(row["message"]))
    if problem and store.auto_pause(db, broadcast_id, problem, now):
        record(db, Actor("system"), "broadcast.pause", target_kind="broadcast", target_id=broadcast_id,
               details={"from": row["status"], "to": "paused", "reason": "template_not_sendable"}, now=now)
        return problem
    return None
