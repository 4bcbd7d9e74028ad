"""Validating ``aat.flow/v1`` documents: every problem, located by path.

:func:`check_document` (create/update) parses the document with the models and adds the
cross-field rules: ``start`` and every step reference exist, regexes compile, time zones are
known, a message with reply buttons has no ``next``. :func:`check_publish` adds what only
matters for running: a cycle of steps without a ``message``, ``input`` or ``delay`` (it would
spin to the step limit, or call out forever), content that cannot render on a channel the flow
targets (tried with the real channel adapters); unreachable steps, calls without ``on_error`` and
texts made only of templates without a fallback are warnings, not errors.

Problems are :class:`~appliance.errors.Detail` ``(path, message)`` with paths like
``steps.ask_email.next`` or ``triggers.0.keywords``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from appliance.channels.base import adapter_for
from appliance.channels.outbound import Button, Card, Media, Outbound, Recipient, RenderError
from appliance.errors import Detail
from appliance.flows.inputs import ValidatorError, compile_validator
from appliance.flows.models import (
    AiReplyStep,
    ConditionStep,
    FlowDocument,
    GoogleSheetsStep,
    HandoffStep,
    HttpRequestStep,
    InputStep,
    MessageStep,
    RandomizerStep,
)
from appliance.flows.templating import TEMPLATE
from appliance.flows.timing import known_zone

__all__ = ["Checked", "check_document", "check_publish", "step_targets", "CHANNELS"]

CHANNELS = ("messenger", "instagram", "whatsapp")
_STEP_TYPES = ("message", "input", "condition", "randomizer", "delay", "action", "http_request",
               "google_sheets", "ai_reply", "handoff", "goto_flow", "end")
_TRIGGER_TYPES = ("keyword", "comment", "story_reply", "story_mention", "ref", "postback", "welcome",
                  "default")
_TAGS = set(_STEP_TYPES + _TRIGGER_TYPES)
_ALIASES = {"validate_": "validate", "if_": "if", "else_": "else", "from_": "from", "schema_": "schema"}


@dataclass
class Checked:
    """A parsed document, or the problems that stop it; warnings either way."""

    document: FlowDocument | None
    errors: list[Detail] = field(default_factory=list)
    warnings: list[Detail] = field(default_factory=list)


def _path(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    # A discriminated union puts the tag in the location (steps.ask.input.text): drop it.
    if len(parts) >= 3 and parts[0] in ("steps", "triggers") and parts[2] in _TAGS:
        del parts[2]
    if parts and parts[-1] == "[key]":  # a bad key: the path names the key itself
        parts.pop()
    return ".".join(_ALIASES.get(str(p), str(p)) for p in parts) or "$"


def _detail(error: Any) -> Detail:
    """One pydantic error as a Detail; a missing or unknown ``type`` is reported at ``.type``."""
    loc, message = tuple(error["loc"]), error["msg"].removeprefix("Value error, ")
    if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
        expected = ", ".join(_STEP_TYPES if loc[0] == "steps" else _TRIGGER_TYPES)
        tag = error.get("ctx", {}).get("tag")
        message = f'unknown type "{tag}"' if error["type"] == "union_tag_invalid" else "Field required"
        loc, message = loc + ("type",), f"{message}: use one of {expected}"
    elif loc and loc[-1] == "[key]":
        message = f'"{loc[-2]}" is not a valid id: use 1-64 letters, digits, _ or -'
    return Detail(_path(loc), message)


def step_targets(doc: Any) -> Iterator[tuple[str, str]]:
    """``(field path inside the step, target step id)`` for every reference a step makes."""
    for name in ("next", "on_invalid", "on_timeout", "on_error"):
        target = getattr(doc, name, None)
        if target:
            yield name, target
    if isinstance(doc, ConditionStep):
        if doc.then:
            yield "then", doc.then
        if doc.else_:
            yield "else", doc.else_
    if isinstance(doc, RandomizerStep):
        for i, branch in enumerate(doc.branches):
            if branch.next:
                yield f"branches.{i}.next", branch.next
    if isinstance(doc, MessageStep):
        for i, button in enumerate(doc.buttons):
            if button.next:
                yield f"buttons.{i}.next", button.next
        for i, reply in enumerate(doc.quick_replies):
            yield f"quick_replies.{i}.next", reply.next
        for c, card in enumerate(doc.cards):
            for i, button in enumerate(card.buttons):
                if button.next:
                    yield f"cards.{c}.buttons.{i}.next", button.next


def check_document(raw: Any) -> Checked:
    """Parse and check a document for storing as a draft."""
    if not isinstance(raw, dict):
        return Checked(None, [Detail("$", "a flow document must be a JSON object")])
    try:
        doc = FlowDocument.model_validate(raw)
    except ValidationError as exc:
        errors = [_detail(e) for e in exc.errors()]
        known = {e.path for e in errors}
        errors += [e for e in _raw_reference_errors(raw) + _raw_regex_errors(raw) if e.path not in known]
        return Checked(None, errors)
    errors: list[Detail] = []
    if doc.start not in doc.steps:
        errors.append(Detail("start", f'unknown step "{doc.start}"'))
    for step_id, step_doc in doc.steps.items():
        for where, target in step_targets(step_doc):
            if target not in doc.steps:
                errors.append(Detail(f"steps.{step_id}.{where}", f'unknown step "{target}"'))
        if isinstance(step_doc, InputStep):
            try:
                compile_validator(step_doc.validate_)
            except ValidatorError as exc:
                errors.append(Detail(f"steps.{step_id}.validate", str(exc)))
        if isinstance(step_doc, MessageStep) and step_doc.next and (
            step_doc.quick_replies or any(b.next for b in step_doc.buttons)
            or any(b.next for card in step_doc.cards for b in card.buttons)
        ):
            errors.append(Detail(
                f"steps.{step_id}.next",
                "a message with reply buttons continues from its buttons; remove `next`",
            ))
        window = getattr(step_doc, "window", None)
        if window is not None and window.timezone is not None and not known_zone(window.timezone):
            errors.append(Detail(f"steps.{step_id}.window.timezone",
                                 f'unknown time zone "{window.timezone}"; use an IANA name such as Europe/Paris'))
    for step_id in (doc.layout or {}):
        if step_id not in doc.steps:
            errors.append(Detail(f"layout.{step_id}", f'unknown step "{step_id}"'))
    return Checked(None if errors else doc, errors)


def _raw_regex_errors(raw: dict[str, Any]) -> list[Detail]:
    """Bad ``validate`` values in a document that did not parse (see above)."""
    steps = raw.get("steps")
    if not isinstance(steps, dict):
        return []
    errors = []
    for step_id, step_doc in steps.items():
        if isinstance(step_doc, dict) and step_doc.get("type") == "input" and isinstance(step_doc.get("validate"), str):
            try:
                compile_validator(step_doc["validate"])
            except ValidatorError as exc:
                errors.append(Detail(f"steps.{step_id}.validate", str(exc)))
    return errors


def _raw_reference_errors(raw: dict[str, Any]) -> list[Detail]:
    """Unknown step references in a document that did not parse, so one answer lists both
    kinds of problem."""
    steps = raw.get("steps")
    if not isinstance(steps, dict):
        return []
    errors = []
    if isinstance(raw.get("start"), str) and raw["start"] not in steps:
        errors.append(Detail("start", f'unknown step "{raw["start"]}"'))

    def refs(value: Any, path: str) -> Iterator[tuple[str, Any]]:
        if isinstance(value, dict):
            for key, inner in value.items():
                where = f"{path}.{key}"
                if key in ("next", "on_invalid", "on_timeout", "on_error", "then", "else"):
                    yield where, inner
                elif key in ("buttons", "quick_replies", "cards", "branches"):
                    yield from refs(inner, where)
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                yield from refs(inner, f"{path}.{index}")

    for step_id, step_doc in steps.items():
        for where, target in refs(step_doc, f"steps.{step_id}"):
            if isinstance(target, str) and target not in steps:
                errors.append(Detail(where, f'unknown step "{target}"'))
    return errors


def _reachable(doc: FlowDocument) -> set[str]:
    seen: set[str] = set()
    todo = [doc.start]
    while todo:
        current = todo.pop()
        if current in seen or current not in doc.steps:
            continue
        seen.add(current)
        todo.extend(target for _, target in step_targets(doc.steps[current]))
    return seen


def _waits(doc: Any) -> bool:
    # Steps that send, ask or wait (the spec's list). Outside calls do not count: a call that
    # is not configured answers at once, and a configured one would call out forever.
    return doc.type in ("message", "input", "delay")


def _silent_cycles(doc: FlowDocument) -> list[list[str]]:
    """Cycles with no ``message``, ``input`` or ``delay`` step in them."""
    graph = {
        sid: list(dict.fromkeys(t for _, t in step_targets(s) if t in doc.steps and not _waits(doc.steps[t])))
        for sid, s in doc.steps.items() if not _waits(s)
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node)
    return cycles


def _sample_outbounds(step: Any) -> Iterator[tuple[str, Outbound]]:
    """``(where, message)`` for every message a step sends whose content the document fixes."""
    recipient = Recipient(external_id="1", wa_id="1")
    if isinstance(step, MessageStep):
        yield "", _sample_outbound(step)
    elif isinstance(step, InputStep):
        yield ".text", Outbound(recipient=recipient, text=step.text)
        if step.retry_text:
            yield ".retry_text", Outbound(recipient=recipient, text=step.retry_text)
    elif isinstance(step, HandoffStep) and step.text:
        yield ".text", Outbound(recipient=recipient, text=step.text)


def _sample_outbound(step: MessageStep) -> Outbound:
    def button(b: Any, i: int) -> Button:
        return Button(title=b.title, url=b.url) if b.url else Button(title=b.title, payload=f"aat1:0:s:b{i}")

    return Outbound(
        recipient=Recipient(external_id="1", wa_id="1"),
        text=step.text,
        media=Media(type=step.media.type, url=step.media.url) if step.media else None,
        buttons=tuple(button(b, i) for i, b in enumerate(step.buttons)),
        quick_replies=tuple(Button(title=q.title, payload=f"aat1:0:s:q{i}") for i, q in enumerate(step.quick_replies)),
        cards=tuple(
            Card(title=c.title, subtitle=c.subtitle, image_url=c.image_url,
                 buttons=tuple(button(b, i) for i, b in enumerate(c.buttons)))
            for c in step.cards
        ),
    )


def _channels(doc: FlowDocument) -> list[str]:
    if doc.settings and doc.settings.channels:
        return list(doc.settings.channels)
    targeted: set[str] = set()
    for trigger in doc.triggers:
        targeted.update(trigger.channels or CHANNELS)
    return [c for c in CHANNELS if c in targeted] or list(CHANNELS)


def check_publish(doc: FlowDocument) -> Checked:
    """What publishing adds to :func:`check_document` (run it on a parsed document)."""
    errors: list[Detail] = []
    warnings: list[Detail] = []
    for cycle in _silent_cycles(doc):
        errors.append(Detail(
            f"steps.{cycle[0]}",
            "these steps loop without a message, input or delay: " + " -> ".join(cycle)
            + "; put a message, input or delay in the loop",
        ))
    for channel in _channels(doc):
        adapter = adapter_for(channel)
        for step_id, step_doc in doc.steps.items():
            for where, outbound in _sample_outbounds(step_doc):
                try:
                    adapter.render(outbound)
                except RenderError as exc:
                    errors.append(Detail(f"steps.{step_id}{where}", f"cannot be sent on {channel}: {exc}"))
    if any(t.type == "comment" for t in doc.triggers):
        first = doc.steps.get(doc.start)
        if not isinstance(first, MessageStep | InputStep):
            errors.append(Detail("start", "a flow with a comment trigger must start with a message "
                                          "or input step: it is sent as the private reply"))
    reachable = _reachable(doc)
    for step_id in doc.steps:
        if step_id not in reachable:
            warnings.append(Detail(f"steps.{step_id}", "no path from `start` reaches this step"))
    for step_id, step_doc in doc.steps.items():
        if isinstance(step_doc, HttpRequestStep | GoogleSheetsStep | AiReplyStep) and not step_doc.on_error:
            warnings.append(Detail(f"steps.{step_id}.on_error",
                                   "without on_error the run ends when this call fails"))
        for where in _texts_that_may_vanish(step_doc):
            warnings.append(Detail(f"steps.{step_id}.{where}",
                                   "only templates without a fallback: for a contact without these values "
                                   "it renders empty and cannot be sent; add a fallback ({{name|default}})"))
    return Checked(doc if not errors else None, errors, warnings)


def _vanishes(text: str | None) -> bool:
    # What stays of the text when every template without a fallback renders empty.
    return bool(text) and not TEMPLATE.sub(lambda m: m.group(2) or "", text or "").strip()


def _texts_that_may_vanish(step: Any) -> list[str]:
    """Fields of ``step`` whose text can render empty where a message needs it."""
    if isinstance(step, MessageStep):
        needs_text = bool(step.buttons or step.quick_replies) or not (step.media or step.cards)
        return ["text"] if needs_text and _vanishes(step.text) else []
    if isinstance(step, InputStep):
        return [f for f in ("text", "retry_text") if _vanishes(getattr(step, f))]
    if isinstance(step, HandoffStep):
        return ["text"] if _vanishes(step.text) else []
    return []
