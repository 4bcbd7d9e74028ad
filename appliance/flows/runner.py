"""The runner: feeds the pure engine and performs its effects, inside the writer's transaction.

Called from the ingest path for every new inbound message (same savepoint as storing the
message, so a replayed delivery neither stores nor answers twice), from timers, and with the
results of outside calls. Effects become rows: messages in the outbox (sent by the sender),
tags and fields on the contact, timers (woken by the queue), step records (stats). Work that
must happen after the commit (scheduling timers, running outside calls) is returned in a
:class:`Followups` for the caller to do.

Before any trigger: a conversation handed to a human (``bot_paused``) gets no automation; the
subscription words (STOP / START ...) change ``subscribed``; a tap on one of our buttons
resolves to its run (an ended run's buttons still work: the run resumes there); a run waiting
for an answer takes the message.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from appliance import events
from appliance.connections.store import channel_for_asset
from appliance.contacts import store as contacts
from appliance.flows import engine, store, subscriptions
from appliance.flows.effects import (
    AddTag,
    CallOut,
    CallResult,
    ClearField,
    Click,
    ContactView,
    Context,
    EngineEvent,
    GotoFlow,
    Handoff,
    NotifyTeam,
    OutButton,
    PublicReply,
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
    parse_button_payload,
)
from appliance.flows.models import FlowDocument
from appliance.flows.triggers import Candidate, Inbound, match_trigger
from appliance.outbox import store as outbox
from appliance.store.rows import one, scalar
from appliance.timeutil import from_iso, to_iso

__all__ = ["Followups", "InboundFacts", "Snapshot", "created_contact_view", "on_inbound", "fire_timer", "on_call_result", "MAX_GOTO"]

MAX_GOTO = 5
MAX_ROUNDS = 10  # engine steps per drive (each runs at most MAX_STEPS_PER_EVENT steps)
# Kinds whose outside call has an executor; the others end in `not_configured` at once.
CallExecutors = frozenset[str]


@dataclass
class Followups:
    """What the caller does after the transaction commits."""

    timers: list[tuple[str, str]] = field(default_factory=list)  # (token, due_at)
    calls: list[tuple[int, CallOut]] = field(default_factory=list)  # (run_id, call)
    queued_messages: int = 0

    def merge(self, other: Followups) -> None:
        self.timers += other.timers
        self.calls += other.calls
        self.queued_messages += other.queued_messages


@dataclass(frozen=True, slots=True)
class InboundFacts:
    """The parts of a stored inbound message the runner needs."""

    contact_id: int
    conversation_id: int
    channel: str
    kind: str
    text: str | None
    payload: dict[str, Any]
    new_contact: bool
    occurred_at: str
    channel_id: int | None = None  # the conversation's channel (saves reading it to queue a reply)
    # ``conversation.updated`` was already emitted for the conversation in this transaction
    # (the inbound message's): replies queued now do not emit another one.
    conversation_announced: bool = False
    # the contact was created in this transaction: it has no flow run yet (no lookup)
    contact_created: bool = False
    # that created contact as the engine sees it (:func:`created_contact_view`): not read back
    contact_view: ContactView | None = None


def created_contact_view(contact_id: int, channel: str, name: str | None) -> ContactView:
    """What ``store.contact_view`` reads for a contact that ``contacts.upsert_contact``
    created in this transaction, from the ``name`` it stored and the schema's defaults (no
    fields, no tags, subscribed, no timezone; the conversation created with it is not
    paused), without a statement. tests/appliance/test_flows_created_view.py compares the two."""
    first, last = contacts.split_name(name)
    return ContactView(id=contact_id, channel=channel, name=name, first_name=first, last_name=last)


def _button_buttons(buttons: tuple[OutButton, ...]) -> list[dict[str, Any]]:
    return [{k: v for k, v in (("title", b.title), ("payload", b.payload), ("url", b.url)) if v} for b in buttons]


class Snapshot:
    """Reads that cannot change during one writer job (publishing and settings changes are
    writer jobs of their own), shared by every message the job applies."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._channels: dict[tuple[str, str], dict[str, Any]] = {}

    @functools.cached_property
    def _settings(self) -> dict[str, str]:
        """The workspace settings the runner reads, in one statement."""
        return {key: value for key, value in self._db.execute(
            "SELECT key, value FROM workspace_settings WHERE key IN ('name', 'timezone', 'entitlement_contacts')")}

    @functools.cached_property
    def workspace_name(self) -> str:
        return self._settings.get("name") or ""

    @functools.cached_property
    def timezone(self) -> str:
        return self._settings.get("timezone") or "UTC"

    @functools.cached_property
    def candidates(self) -> list[Candidate]:
        return [Candidate(fid, version, doc) for fid, version, doc in store.published_candidates(self._db)]

    def channel(self, channel_type: str, asset_id: str, now: str) -> dict[str, Any]:
        """The channel a webhook arrived for (``connections.store.channel_for_asset``), read
        once per job: connecting or changing a channel is a writer job of its own."""
        key = (channel_type, asset_id)
        found = self._channels.get(key)
        if found is None:
            found = channel_for_asset(self._db, channel_type, asset_id, now)
            if found["created_at"] != now:  # one created just now may yet be rolled back with its event
                self._channels[key] = found
        return found

    def version(self, flow_id: int, version: int) -> FlowDocument | None:
        """A flow version's document: from the published candidates when it is one of them
        (versions are immutable), otherwise read."""
        for candidate in self.candidates:
            if candidate.flow_id == flow_id and candidate.version == version:
                return candidate.document
        return store.load_version(self._db, flow_id, version)

    @functools.cached_property
    def subscription_words(self) -> dict[str, Any]:
        return subscriptions.words(self._db)

    @functools.cached_property
    def automated_bound(self) -> int | None:
        """The last contact id the plan's contacts limit automates (``None``: every one):
        contacts are served in the order they arrived. The limit is the entitlement's,
        recorded by ``appliance.entitlements.store.store_contacts_limit``."""
        limit = self._settings.get("entitlement_contacts")
        if limit is None:
            return None
        if int(limit) == 0:
            return 0
        return scalar(self._db, "SELECT id FROM contacts ORDER BY id LIMIT 1 OFFSET ?", [int(limit) - 1])

    def automates(self, contact_id: int) -> bool:
        bound = self.automated_bound
        return bound is None or contact_id <= bound


class _Session:
    """One transaction's worth of running: the engine, its effects, the budget of gotos."""

    def __init__(self, db: Database, now: str, seed: int, snapshot: Snapshot, executors: CallExecutors) -> None:
        self.db = db
        self.now = now
        self.snapshot = snapshot
        self.seed = seed
        self._now: datetime | None = None  # parsed by the first ctx(): a message that feeds no run needs none
        self._rng: random.Random | None = None  # built by the second ctx(): most messages feed one engine step
        self.workspace_name = snapshot.workspace_name
        self.timezone = snapshot.timezone
        self.executors = executors
        self.followups = Followups()
        self.gotos = 0
        # (conversation id, contact id, channel id) of the conversation being answered, when known
        self.party: tuple[int, int, int] | None = None
        # conversations with a ``conversation.updated`` event in this transaction already
        self.announced: set[int] = set()
        # runs reserved (``store.reserve_run``) whose row is not written yet: id -> (contact, trigger)
        self.reserved: dict[int, tuple[int, str]] = {}

    def new_run(self, *, flow_id: int, version: int, contact: ContactView, trigger: str,
                no_active_run: bool = False) -> RunState:
        """A new active run (``store.create_run``), its row written by the first :meth:`drive`
        step, as that step leaves it."""
        state = store.reserve_run(self.db, contact_id=contact.id, now=self.now, contact=contact,
                                  flow_id=flow_id, version=version, no_active_run=no_active_run)
        self.reserved[state.run_id] = (contact.id, trigger)
        return state

    def _write_reserved(self, state: RunState) -> bool:
        """Write the row of a reserved run as ``state``; False when its row exists already."""
        reserved = self.reserved.pop(state.run_id, None)
        if reserved is None:
            return False
        store.insert_run(self.db, state, contact_id=reserved[0], trigger=reserved[1], now=self.now)
        return True

    def _party(self, conversation_id: int) -> dict[str, int]:
        if self.party is None or self.party[0] != conversation_id:
            return {}
        return {"contact_id": self.party[1], "channel_id": self.party[2]}

    def ctx(self) -> Context:
        """The engine's context for its next step. The first step's seed is the session's own
        (a random number already); each later one is drawn from a ``Random`` seeded with it:
        seeding one costs more than the rest of a message step's engine work."""
        if self._now is None:
            self._now = from_iso(self.now)
            seed = self.seed
        else:
            if self._rng is None:
                self._rng = random.Random(self.seed)
            seed = self._rng.randrange(2**31)
        return Context(now=self._now, seed=seed, workspace_name=self.workspace_name, default_timezone=self.timezone)

    def drive(self, state: RunState, event: EngineEvent, conversation_id: int) -> RunState:
        """Step the engine and perform everything it asked for, until nothing is left to do."""
        flow = self.snapshot.version(state.flow_id, state.version)
        if flow is None:
            state = state.evolve(status="error", waiting=None)
            if not self._write_reserved(state):
                store.save_run(self.db, state, self.now)
            return state
        stored = state.status  # every caller hands over a state whose row holds this status
        pending: list[EngineEvent] = [event]
        rounds = 0
        while pending:
            rounds += 1
            if rounds > MAX_ROUNDS:
                # Results fed straight back (calls with no executor) must not spin forever.
                state = state.evolve(status="loop_limit", waiting=None, timer=None)
                store.save_run(self.db, state, self.now)
                return state
            state, effects = engine.step(flow, state, pending.pop(0), self.ctx())
            # A run created in this transaction: its row now, before anything refers to it.
            written = self._write_reserved(state)
            records: list[tuple[str, str, str | None]] = []
            goto: str | None = None
            for effect in effects:
                if isinstance(effect, StepRecord):
                    records.append((effect.step, effect.event, effect.detail))
                elif isinstance(effect, GotoFlow):
                    goto = effect.flow
                elif isinstance(effect, CallOut):
                    if effect.kind in self.executors:
                        self.followups.calls.append((state.run_id, effect))
                    else:
                        pending.append(CallResult(step=effect.step, ok=False, error="not_configured"))
                else:
                    self.perform(effect, state, conversation_id)
            store.record_steps(self.db, state, records, self.now)
            store.save_run(self.db, state, self.now, stored_status=stored, written=written)
            stored = state.status
            if goto is not None:
                return self.goto(goto, state, conversation_id)
        return state

    def goto(self, reference: str, previous: RunState, conversation_id: int) -> RunState:
        target = store.find_published(self.db, reference)
        if target is None or self.gotos >= MAX_GOTO:
            return previous
        self.gotos += 1
        contact = previous.contact or store.contact_view(self.db, _contact_of(self.db, previous.run_id))[0]
        state = self.new_run(flow_id=target[0], version=target[1], contact=contact, trigger="goto_flow")
        return self.drive(state, StartRun("goto_flow"), conversation_id)

    def perform(self, effect: Any, state: RunState, conversation_id: int) -> None:  # noqa: PLR0912
        contact_id = state.contact.id if state.contact else _contact_of(self.db, state.run_id)
        if isinstance(effect, Send):
            self.send(effect, state, conversation_id)
        elif isinstance(effect, PublicReply):
            outbox.enqueue(self.db, conversation_id=conversation_id, kind="comment", text=effect.text,
                           payload={"public_reply_to": effect.comment_id}, sent_by="bot", user_id=None,
                           messaging_type=None, tag=None, now=self.now, **self._party(conversation_id))
            self.followups.queued_messages += 1
        elif isinstance(effect, Schedule):
            due = to_iso(effect.at)
            store.add_timer(self.db, effect.token, state.run_id, effect.kind, due)
            self.followups.timers.append((effect.token, due))
        elif isinstance(effect, AddTag):
            contacts.add_tag(self.db, contact_id, effect.tag, self.now)
        elif isinstance(effect, RemoveTag):
            contacts.remove_tag(self.db, contact_id, effect.tag)
        elif isinstance(effect, SetField | ClearField):
            value = effect.value if isinstance(effect, SetField) else None
            contacts.update_contact(self.db, contact_id, {"fields": {effect.name: value}}, self.now)
        elif isinstance(effect, Subscribe):
            contacts.update_contact(self.db, contact_id, {"subscribed": effect.subscribed}, self.now)
        elif isinstance(effect, NotifyTeam):
            self.db.execute("INSERT INTO notifications (conversation_id, text, created_at) VALUES (?, ?, ?)",
                            [conversation_id, effect.text, self.now])
        elif isinstance(effect, Handoff):
            assignee = None
            if effect.assign_to:
                assignee = scalar(self.db, "SELECT id FROM users WHERE email = ? AND disabled_at IS NULL",
                                  [effect.assign_to])
            self.db.execute(
                "UPDATE conversations SET bot_paused = 1, status = 'open', "
                "assignee_id = COALESCE(?, assignee_id), updated_at = ? WHERE id = ?",
                [assignee, self.now, conversation_id],
            )
            events.emit(self.db, "conversation.updated", conversation_id=conversation_id, now=self.now)
            if assignee:
                events.emit(self.db, "conversation.assigned", conversation_id=conversation_id,
                            user_id=assignee, now=self.now)

    def send(self, effect: Send, state: RunState, conversation_id: int) -> None:
        if not (effect.text or effect.media or effect.cards):
            return  # a text of templates that all rendered empty: nothing to send
        payload: dict[str, Any] = {"flow": {"flow_id": state.flow_id, "version": state.version,
                                            "run_id": state.run_id, "step": effect.step}}
        if effect.buttons:
            payload["buttons"] = _button_buttons(effect.buttons)
        if effect.quick_replies:
            payload["quick_replies"] = _button_buttons(effect.quick_replies)
        if effect.cards:
            payload["cards"] = [
                {"title": c.title, "subtitle": c.subtitle, "image_url": c.image_url,
                 "buttons": _button_buttons(c.buttons)} for c in effect.cards
            ]
        if effect.media:
            payload["media"] = dict(effect.media)
        if effect.meta:
            payload["meta"] = dict(effect.meta)
        if effect.private_reply_to:
            comment = one(self.db, "SELECT channel_id, occurred_at FROM messages WHERE kind = 'comment' "
                                   "AND external_id = ? ORDER BY id LIMIT 1", [effect.private_reply_to])
            if comment is None:
                return
            claimed = self.db.execute(
                "INSERT OR IGNORE INTO comment_private_replies (channel_id, comment_id, run_id, at) VALUES (?, ?, ?, ?)",
                [comment["channel_id"], effect.private_reply_to, state.run_id, self.now],
            ).rowcount
            if not claimed:
                return  # one private reply per comment, whatever Meta redelivers
            payload["private_reply_to"] = effect.private_reply_to
            payload["comment_created_at"] = comment["occurred_at"]
        kind = effect.media["type"] if effect.media and not effect.text else "text"
        outbox.enqueue(self.db, conversation_id=conversation_id, kind=kind, text=effect.text, payload=payload,
                       sent_by="bot", user_id=None, messaging_type=None, tag=None, now=self.now,
                       announce=conversation_id not in self.announced, **self._party(conversation_id))
        self.announced.add(conversation_id)
        self.followups.queued_messages += 1


def _contact_of(db: Database, run_id: int) -> int:
    return int(scalar(db, "SELECT contact_id FROM flow_runs WHERE id = ?", [run_id]))


def on_inbound(
    db: Database, facts: InboundFacts, now: str, *, seed: int, executors: CallExecutors = frozenset(),
    snapshot: Snapshot | None = None,
) -> Followups:
    """React to one new inbound message (see the module docstring for the order of checks)."""
    snapshot = snapshot or Snapshot(db)
    session = _Session(db, now, seed, snapshot, executors)
    if facts.channel_id is not None:
        session.party = (facts.conversation_id, facts.contact_id, facts.channel_id)
    if facts.conversation_announced:
        session.announced.add(facts.conversation_id)
    if facts.contact_view is not None:  # created in this transaction, with its conversation
        view, paused = facts.contact_view, False
    else:
        view, row = store.contact_view(db, facts.contact_id)
        paused = bool(row["bot_paused"])
    if paused:
        return session.followups
    subscription = subscriptions.command(snapshot.subscription_words, facts.text)
    if subscription is not None and facts.kind in ("text", "quick_reply"):
        subscriptions.apply(db, facts.contact_id, facts.conversation_id, subscription, now)
        session.followups.queued_messages += 1
        return session.followups
    if not snapshot.automates(facts.contact_id):  # over the plan's contacts: stored, not automated
        return session.followups
    active = None if facts.contact_created else store.active_run(db, facts.contact_id, view)
    own = parse_button_payload(facts.payload.get("payload") or facts.payload.get("id"))
    if own is not None:
        resumed = _resume_from_button(session, facts, view, active, *own)
        if resumed:
            return session.followups
    if active is not None:
        flow = snapshot.version(active.flow_id, active.version)
        if flow is not None and engine.accepts(flow, active, Reply(facts.text, facts.kind)):
            session.drive(active, Reply(facts.text, facts.kind), facts.conversation_id)
            return session.followups
    match = match_trigger(
        snapshot.candidates,
        Inbound(
            channel=facts.channel, kind=facts.kind, text=facts.text,
            payload=None if own else (facts.payload.get("payload") or facts.payload.get("id")),
            ref=facts.payload.get("ref") or (facts.payload.get("referral") or {}).get("ref"),
            post_id=facts.payload.get("post_id") or facts.payload.get("media_id"),
            new_contact=facts.new_contact,
        ),
    )
    if match is None:
        return session.followups
    state = session.new_run(flow_id=match.flow_id, version=match.version, contact=view, trigger=match.trigger,
                            no_active_run=active is None)
    comment_id = facts.payload.get("comment_id") if facts.kind == "comment" else None
    if comment_id:
        trigger = snapshot.version(match.flow_id, match.version).triggers[match.trigger_index]  # type: ignore[union-attr]
        public = getattr(trigger, "public_reply", None)
        if public:
            session.perform(PublicReply(comment_id, public), state, facts.conversation_id)
    session.drive(state, StartRun(match.trigger, comment_id=comment_id), facts.conversation_id)
    return session.followups


def _resume_from_button(
    session: _Session, facts: InboundFacts, view: ContactView, active: RunState | None,
    run_id: int, click: Click,
) -> bool:
    found = store.get_run(session.db, run_id, view)
    if found is None or found[1] != facts.contact_id or store.is_deleted(session.db, found[0].flow_id):
        return False
    state, _ = found
    if state.status != "active":
        if active is not None:
            return False  # another flow is running now; let triggers decide
        # The button of an ended run still works: the run resumes at the button's target.
        state = state.evolve(status="active", waiting="reply", step=click.step)
        session.db.execute("UPDATE flow_runs SET status = 'active', ended_at = NULL WHERE id = ?", [run_id])
    elif active is not None and active.run_id != run_id:
        return False
    session.drive(state, click, facts.conversation_id)
    return True


def fire_timer(
    db: Database, token: str, now: str, *, seed: int, executors: CallExecutors = frozenset(),
    due_before: str | None = None,
) -> Followups:
    """A timer is due (by ``due_before``, default ``now``): give it to its run if the run still
    waits for it."""
    session = _Session(db, now, seed, Snapshot(db), executors)
    timer = store.take_timer(db, token, now, due_before)
    if timer is None:
        return session.followups
    contact_id = _contact_of(db, timer["run_id"])
    view, row = store.contact_view(db, contact_id)
    found = store.get_run(db, timer["run_id"], view)
    if found is None or found[0].status != "active" or found[0].timer != token or row["bot_paused"]:
        return session.followups
    session.drive(found[0], TimerFired(token), row["conversation_id"])
    return session.followups


def on_call_result(
    db: Database, run_id: int, result: CallResult, now: str, *, seed: int,
    executors: CallExecutors = frozenset(),
) -> Followups:
    session = _Session(db, now, seed, Snapshot(db), executors)
    contact_id = _contact_of(db, run_id)
    view, row = store.contact_view(db, contact_id)
    found = store.get_run(db, run_id, view)
    if found is None or found[0].status != "active":
        return session.followups
    session.drive(found[0], result, row["conversation_id"])
    return session.followups

