"""The flow engine: ``step(flow, state, event, ctx) -> (state, effects)``. Pure: no I/O.

The engine walks a run through its flow until the run has to wait (for a button, an answer, a
delay, an outside call) or ends. It never sends, stores or sleeps; it returns effects for the
runner to perform (:mod:`appliance.flows.runner`), and results come back as events.

Rules it keeps (docs/spec/flow-format.md):
- one inbound event executes at most ``MAX_STEPS_PER_EVENT`` steps; past that the run ends as
  ``loop_limit``;
- a message with reply buttons or quick replies waits for a tap; typing a button's title counts
  as tapping it; old buttons of the same run keep working;
- an ``input`` retries with ``retry_text`` up to ``max_retries``, then goes ``on_invalid``;
  its timeout goes ``on_timeout``;
- a run started by a comment sends its first message as a private reply, then waits for the
  contact to answer before sending more (Meta allows nothing else until they write);
- comments and reactions never answer a waiting run;
- ``handoff``, ``goto_flow`` and ``end`` are terminal; a wait (timer, answer, call) that ends
  with no step to go on to completes the run;
- a stale timer or call result (the run moved on) is ignored;
- an ``ai_reply`` hands the conversation to the inbox on one of its ``handoff_keywords`` or when
  its result says ``handoff`` (the model asked for a person).

``step`` never raises: should a bug surface, the run ends as ``error`` with what it produced so far.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import replace
from typing import Any

from appliance.flows import conditions
from appliance.flows.effects import (
    AddTag,
    CallOut,
    CallResult,
    ClearField,
    Click,
    ContactView,
    Context,
    Effect,
    EngineEvent,
    GotoFlow,
    Handoff,
    NotifyTeam,
    OutButton,
    OutCard,
    RemoveTag,
    Reply,
    RunState,
    Schedule,
    Send,
    SetField,
    StartRun,
    StepRecord,
    Subscribe,
    TimerFired,
    button_payload,
)
from appliance.flows.inputs import check_answer
from appliance.flows.models import (
    ActionStep,
    AiReplyStep,
    ConditionStep,
    DelayStep,
    EndStep,
    FlowButton,
    FlowDocument,
    GoogleSheetsStep,
    GotoFlowStep,
    HandoffStep,
    HttpRequestStep,
    InputStep,
    MessageStep,
    RandomizerStep,
)
from appliance.flows.templating import render_template, render_url, render_value
from appliance.flows.timing import wake_time

__all__ = ["step", "accepts", "MAX_STEPS_PER_EVENT", "fold", "json_path"]

MAX_STEPS_PER_EVENT = 50
# A public comment or a reaction is not the contact answering in the conversation (and opens
# no messaging window: a run waiting after its private reply must not go on because of one).
NOT_ANSWERS = frozenset({"comment", "reaction"})


def fold(text: str) -> str:
    """Case- and accent-insensitive form, whitespace collapsed (for keyword and title matching)."""
    if text.isascii():  # most messages: NFKD leaves ASCII as it is and it has no combining marks
        return " ".join(text.casefold().split())
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


def json_path(data: Any, path: str) -> Any:
    """``$.a.b[0].c`` over decoded JSON; ``None`` when anything along the way is missing."""
    current = data
    token = ""
    for part in path[1:].replace("[", ".[").split("."):
        if not part:
            continue
        token = part
        if token.startswith("[") and token.endswith("]"):
            if not isinstance(current, list):
                return None
            index = int(token[1:-1])
            if index >= len(current):
                return None
            current = current[index]
        elif isinstance(current, dict):
            current = current.get(token)
        else:
            return None
    return current


def _reply_buttons(step: MessageStep) -> bool:
    return bool(step.quick_replies) or any(b.next for b in step.buttons) or any(
        b.next for card in step.cards for b in card.buttons
    )


def _title_key(text: str) -> str:
    return fold(text).strip(" .!?")


def _title_match(step: MessageStep, text: str) -> Click | None:
    # Both sides lose trailing punctuation: typing "yes" taps a button titled "Yes!".
    wanted = _title_key(text)
    if not wanted:
        return None
    for index, button in enumerate(step.buttons):
        if button.next and _title_key(button.title) == wanted:
            return Click(step="", group="b", index=index)
    for index, reply in enumerate(step.quick_replies):
        if _title_key(reply.title) == wanted:
            return Click(step="", group="q", index=index)
    return None


def accepts(flow: FlowDocument, state: RunState, event: Reply) -> bool:
    """Does the run take this message itself (an answer, a typed button title, the next turn
    of an AI conversation), rather than letting triggers see it? Comments and reactions are
    never answers: they are not the contact writing in the conversation."""
    if state.status != "active" or state.step is None or event.kind in NOT_ANSWERS:
        return False
    if state.waiting in ("input", "ai_turn", "comment_reply"):
        return True
    if state.waiting == "reply" and event.text:
        step_doc = flow.steps.get(state.step)
        return isinstance(step_doc, MessageStep) and _title_match(step_doc, event.text) is not None
    return False


class _Machine:
    def __init__(self, flow: FlowDocument, state: RunState, ctx: Context) -> None:
        self.flow = flow
        self.state = state
        self.ctx = ctx
        self.effects: list[Effect] = []
        self.executed = 0
        self._rng: random.Random | None = None  # built on first use: only randomizer steps draw
        self.contact = state.contact or ContactView(id=0, channel="messenger")

    # --- plumbing ---------------------------------------------------------------------------
    @property
    def rng(self) -> random.Random:
        """The step's randomizer source, seeded with ``ctx.seed`` (the same draws as ever)."""
        if self._rng is None:
            self._rng = random.Random(self.ctx.seed)
        return self._rng

    def emit(self, effect: Effect) -> None:
        self.effects.append(effect)

    def values(self) -> dict[str, Any]:
        return self.contact.template_values(self.ctx.workspace_name)

    def render(self, text: str | None) -> str:
        return render_template(text, self.values())

    def finish(self, status: str) -> None:
        self.state = self.state.evolve(status=status, waiting=None, timer=None)

    def wait(self, kind: str, **extra: Any) -> None:
        self.state = self.state.evolve(waiting=kind, **extra)

    def token(self, suffix: str) -> str:
        # The time and the seed tell apart two visits of the same step, so the timer of an
        # earlier visit is stale even when the run comes back to the step.
        stamp = int(self.ctx.now.timestamp() * 1000)
        return f"{self.state.run_id}:{self.state.step}:{suffix}:{stamp}:{self.ctx.seed % 1_000_000}"

    # --- driving ----------------------------------------------------------------------------
    def handle(self, event: EngineEvent) -> None:
        if self.state.status != "active":
            return
        if isinstance(event, StartRun):
            if event.comment_id != self.state.origin_comment:  # most runs start from no comment
                self.state = self.state.evolve(origin_comment=event.comment_id)
            self.run_from(self.flow.start)
        elif isinstance(event, Click):
            self.on_click(event)
        elif isinstance(event, Reply):
            self.on_reply(event)
        elif isinstance(event, TimerFired):
            self.on_timer(event)
        elif isinstance(event, CallResult):
            self.on_call(event)

    def run_from(self, step_id: str | None) -> None:
        if step_id is None:
            # Leaving a wait (timer, answer, call) with nowhere to go: the run is complete, not
            # left waiting for something that already happened.
            self.finish("completed")
            return
        # Each way through the loop below ends the wait itself (no separate evolve first).
        current: str | None = step_id
        while current is not None:
            if self.executed >= MAX_STEPS_PER_EVENT:
                self.finish("loop_limit")
                return
            self.executed += 1
            doc = self.flow.steps.get(current)
            if doc is None:
                self.finish("error")
                return
            self.state = self.state.evolve(step=current, waiting=None, retries=0, turns=0, timer=None)
            self.emit(StepRecord(current, "entered"))
            current = self.execute(current, doc)
        if self.state.status == "active" and self.state.waiting is None:
            self.finish("completed")

    def complete(self, step_id: str, detail: str | None = None) -> None:
        self.emit(StepRecord(step_id, "completed", detail))

    # --- steps ------------------------------------------------------------------------------
    def execute(self, step_id: str, doc: Any) -> str | None:  # noqa: PLR0911 - one branch per type
        if isinstance(doc, MessageStep):
            return self.message(step_id, doc)
        if isinstance(doc, InputStep):
            self.send(step_id, text=self.render(doc.text))
            timer = None
            if doc.timeout_seconds:
                timer = self.token("timeout")
                self.emit(Schedule(timer, wake_time(self.ctx.now, doc.timeout_seconds, None,
                                                    contact_tz=None, default_tz="UTC"), "input_timeout"))
            self.wait("input", timer=timer)
            return None
        if isinstance(doc, ConditionStep):
            result = conditions.evaluate(self.contact, doc.if_, doc.match)
            self.complete(step_id, "then" if result else "else")
            return doc.then if result else doc.else_
        if isinstance(doc, RandomizerStep):
            total = sum(b.weight for b in doc.branches)
            pick = self.rng.uniform(0, total)
            for index, branch in enumerate(doc.branches):
                pick -= branch.weight
                if pick <= 0 or index == len(doc.branches) - 1:
                    self.complete(step_id, f"branch {index}")
                    return branch.next
        if isinstance(doc, DelayStep):
            timer = self.token("delay")
            at = wake_time(self.ctx.now, doc.seconds, doc.window, contact_tz=self.contact.timezone,
                           default_tz=self.ctx.default_timezone)
            self.emit(Schedule(timer, at, "delay"))
            self.wait("delay", timer=timer)
            return None
        if isinstance(doc, ActionStep):
            for action in doc.actions:
                self.act(action)
            self.complete(step_id)
            return doc.next
        if isinstance(doc, HttpRequestStep | GoogleSheetsStep | AiReplyStep):
            self.emit(CallOut(step_id, doc.type, self.call_request(doc)))
            self.wait("call")
            return None
        if isinstance(doc, HandoffStep):
            if doc.text:
                self.send(step_id, text=self.render(doc.text))
            self.emit(Handoff(assign_to=doc.assign_to))
            self.complete(step_id)
            self.finish("handed_off")
            return None
        if isinstance(doc, GotoFlowStep):
            self.complete(step_id)
            self.emit(GotoFlow(doc.flow))
            self.finish("completed")
            return None
        if isinstance(doc, EndStep):
            self.complete(step_id)
            self.finish("completed")
            return None
        self.finish("error")
        return None

    def send(self, step_id: str, **content: Any) -> bool:
        """Emit a Send; the first message of a comment-started run is the private reply.
        Returns whether this one was that private reply."""
        private = self.state.origin_comment
        if private:
            self.state = self.state.evolve(origin_comment=None)
        self.emit(Send(step=step_id, private_reply_to=private, **content))
        return private is not None

    def out_button(self, step_id: str, button: FlowButton, group: str, index: int, card: int = 0) -> OutButton:
        if button.url:
            return OutButton(title=self.render(button.title), url=button.url)
        return OutButton(
            title=self.render(button.title),
            payload=button_payload(self.state.run_id, step_id, group, index, card),
        )

    def message(self, step_id: str, doc: MessageStep) -> str | None:
        plain = not (doc.buttons or doc.quick_replies or doc.cards)
        # Most messages are plain text: no generators to build and run over empty lists.
        buttons, replies, cards = ((), (), ()) if plain else self.options(step_id, doc)
        was_private = self.send(
            step_id, text=self.render(doc.text) or None,
            media={"type": doc.media.type, "url": doc.media.url} if doc.media else None,
            buttons=buttons, quick_replies=replies, cards=cards,
        )
        if not plain and _reply_buttons(doc):
            self.wait("reply")
            return None
        self.complete(step_id)
        if was_private and doc.next:
            self.wait("comment_reply")
            return None
        return doc.next

    def options(
        self, step_id: str, doc: MessageStep,
    ) -> tuple[tuple[OutButton, ...], tuple[OutButton, ...], tuple[OutCard, ...]]:
        """A message's buttons, quick replies and cards, rendered, with this run's payloads."""
        buttons = tuple(self.out_button(step_id, b, "b", i) for i, b in enumerate(doc.buttons))
        replies = tuple(
            OutButton(title=self.render(q.title), payload=button_payload(self.state.run_id, step_id, "q", i))
            for i, q in enumerate(doc.quick_replies)
        )
        cards = tuple(
            OutCard(
                title=self.render(card.title), subtitle=self.render(card.subtitle) or None,
                image_url=card.image_url,
                buttons=tuple(self.out_button(step_id, b, "c", j, c) for j, b in enumerate(card.buttons)),
            )
            for c, card in enumerate(doc.cards)
        )
        return buttons, replies, cards

    def act(self, action: Any) -> None:
        c = self.contact
        if action.add_tag is not None:
            self.emit(AddTag(action.add_tag))
            self.contact = _with(c, tags=c.tags | {action.add_tag})
        elif action.remove_tag is not None:
            self.emit(RemoveTag(action.remove_tag))
            self.contact = _with(c, tags=c.tags - {action.remove_tag})
        elif action.set_field is not None:
            value = self.render(action.set_field.value)
            self.emit(SetField(action.set_field.name, value))
            self.contact = _with(c, fields={**c.fields, action.set_field.name: value})
        elif action.clear_field is not None:
            self.emit(ClearField(action.clear_field))
            self.contact = _with(c, fields={k: v for k, v in c.fields.items() if k != action.clear_field})
        elif action.subscribe is not None:
            self.emit(Subscribe(action.subscribe))
            self.contact = _with(c, subscribed=action.subscribe)
        elif action.notify_team is not None:
            self.emit(NotifyTeam(self.render(action.notify_team)))
        self.state = self.state.evolve(contact=self.contact)

    def call_request(self, doc: Any) -> dict[str, Any]:
        if isinstance(doc, HttpRequestStep):
            return {
                "method": doc.method,
                "url": render_url(doc.url, self.values()),
                "headers": {k: self.render(v) for k, v in doc.headers.items()},
                "body": render_value(doc.body, self.values()),
                "timeout_seconds": doc.timeout_seconds,
            }
        if isinstance(doc, GoogleSheetsStep):
            return {"spreadsheet_id": doc.spreadsheet_id, "sheet": doc.sheet,
                    "values": [self.render(v) for v in doc.values]}
        return {"instructions": doc.instructions, "use_knowledge_base": doc.use_knowledge_base,
                "provider": doc.provider, "model": doc.model, "turn": self.state.turns}

    # --- events on a waiting run ------------------------------------------------------------
    def on_click(self, event: Click) -> None:
        doc = self.flow.steps.get(event.step)
        if not isinstance(doc, MessageStep):
            return
        if event.group == "b":
            options: list[Any] = list(doc.buttons)
        elif event.group == "q":
            options = list(doc.quick_replies)
        else:
            options = list(doc.cards[event.card].buttons) if 0 <= event.card < len(doc.cards) else []
        if not 0 <= event.index < len(options) or not options[event.index].next:
            return
        chosen = options[event.index]
        self.emit(StepRecord(event.step, "clicked", chosen.title))
        if self.state.step == event.step and self.state.waiting == "reply":
            self.complete(event.step)
        self.run_from(chosen.next)

    def on_reply(self, event: Reply) -> None:
        if event.kind in NOT_ANSWERS:
            return
        current = self.state.step
        doc = self.flow.steps.get(current) if current else None
        if self.state.waiting == "input" and isinstance(doc, InputStep):
            self.answer(current, doc, event)  # type: ignore[arg-type]
        elif self.state.waiting == "reply" and isinstance(doc, MessageStep) and event.text:
            click = _title_match(doc, event.text)
            if click is not None:
                self.on_click(Click(step=current, group=click.group, index=click.index))  # type: ignore[arg-type]
        elif self.state.waiting == "comment_reply" and isinstance(doc, MessageStep):
            self.run_from(doc.next)
        elif self.state.waiting == "ai_turn" and isinstance(doc, AiReplyStep):
            text = fold(event.text or "")
            if any(fold(k) and fold(k) in text for k in doc.handoff_keywords):
                self.complete(current, "handoff")  # type: ignore[arg-type]
                self.emit(Handoff())
                self.finish("handed_off")
                return
            self.state = self.state.evolve(turns=self.state.turns + 1)
            request = {**self.call_request(doc), "message": event.text}
            self.emit(CallOut(current, "ai_reply", request))  # type: ignore[arg-type]
            self.wait("call")

    def answer(self, step_id: str, doc: InputStep, event: Reply) -> None:
        value = check_answer(doc.validate_, event.text)
        if value is not None:
            if doc.save_to:
                self.emit(SetField(doc.save_to, value))
                self.contact = _with(self.contact, fields={**self.contact.fields, doc.save_to: value})
                self.state = self.state.evolve(contact=self.contact)
            self.complete(step_id, "valid")
            self.run_from(doc.next)
            return
        if self.state.retries < doc.max_retries:
            self.state = self.state.evolve(retries=self.state.retries + 1)
            self.send(step_id, text=self.render(doc.retry_text or doc.text))
            return
        self.complete(step_id, "invalid")
        self.run_from(doc.on_invalid)

    def on_timer(self, event: TimerFired) -> None:
        if event.token != self.state.timer or self.state.step is None:
            return
        step_id = self.state.step
        doc = self.flow.steps.get(step_id)
        if isinstance(doc, DelayStep) and self.state.waiting == "delay":
            self.complete(step_id)
            self.run_from(doc.next)
        elif isinstance(doc, InputStep) and self.state.waiting == "input":
            self.complete(step_id, "timeout")
            self.run_from(doc.on_timeout)

    def on_call(self, event: CallResult) -> None:
        if self.state.waiting != "call" or self.state.step != event.step:
            return
        doc = self.flow.steps.get(event.step)
        if not event.ok:
            self.complete(event.step, f"error: {event.error or 'failed'}")
            on_error = getattr(doc, "on_error", None)
            if on_error:
                self.run_from(on_error)
            else:
                self.finish("error")
            return
        if isinstance(doc, HttpRequestStep):
            for name, path in doc.save.items():
                value = json_path(event.data, path)
                if value is not None:
                    self.emit(SetField(name, value))
                    self.contact = _with(self.contact, fields={**self.contact.fields, name: value})
            self.state = self.state.evolve(contact=self.contact)
        if isinstance(doc, AiReplyStep):
            if event.reply_text:
                self.send(event.step, text=event.reply_text, meta=event.reply_meta)
            if event.handoff:
                self.complete(event.step, "handoff")
                self.emit(Handoff())
                self.finish("handed_off")
                return
            if not event.done and self.state.turns + 1 < doc.max_turns:
                self.wait("ai_turn")
                return
        self.complete(event.step)
        self.run_from(getattr(doc, "next", None))


def _with(contact: ContactView, **changes: Any) -> ContactView:
    return replace(contact, **changes)


def step(
    flow: FlowDocument, state: RunState, event: EngineEvent, ctx: Context
) -> tuple[RunState, list[Effect]]:
    """Advance ``state`` by ``event``; see the module docstring for the rules."""
    machine = _Machine(flow, state, ctx)
    try:
        machine.handle(event)
    except Exception:  # noqa: BLE001 - the contract: never raise; the run records the failure
        return state.evolve(status="error", waiting=None, timer=None), machine.effects
    return machine.state, machine.effects

