"""The ``ai_reply`` executor: one turn of an AI conversation, from the run to a ``CallResult``.

For the run's contact (and only theirs) it reads the recent turns of their conversation (at
most ``HISTORY_MESSAGES`` messages of the last ``HISTORY_HOURS`` hours), retrieves the
passages relevant to the contact's latest words when the step uses the knowledge base (and
their previous words as well when the latest alone find nothing), builds the prompt
(:mod:`appliance.ai.prompt`), asks the provider, and returns the reply with
``reply_meta = {"passages": [{doc_id, title, heading, chunk_id, score}], "provider", "model"}``,
which the runner stores on the bot's message (``payload.meta``) for the inbox.

- ``done`` when the model signals the end (``[[DONE]]``) or a handoff; ``handoff`` when it
  signals ``[[HANDOFF]]`` or refuses: the engine then hands the conversation to the inbox.
- A missing setting or key, a key that no longer decrypts, a provider error or the plan's
  monthly limit: ``ok=False`` with the reason (the step's ``on_error`` follows) and a note in
  the inbox (``notifications``) saying what happened and what to do.

A reply that recites the prompt (:mod:`appliance.ai.guard`) is withheld: nothing is sent, a note
says why, and the conversation is handed to the team.

Nothing of the prompt is stored; the logs carry ids, the provider, the model and counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from appliance.ai import limits
from appliance.ai import store as ai_store
from appliance.ai.guard import leaks_instructions
from appliance.ai.knowledge import store as knowledge
from appliance.ai.providers import REASONS, ProviderError, Providers
from appliance.flows.effects import CallOut, CallResult
from appliance.store.keys import KeyMaterialError
from appliance.store.rows import many, one
from appliance.timeutil import iso_now, to_iso, utcnow

if TYPE_CHECKING:  # the prompt module is imported by the first ai_reply step, not at start
    from appliance.ai.prompt import Turn

__all__ = ["AiReplyExecutor", "HISTORY_MESSAGES", "HISTORY_HOURS", "NO_TEXT_TURN", "WITHHELD_NOTE"]

log = logging.getLogger("aat.ai")

HISTORY_MESSAGES = 12
HISTORY_HOURS = 24
NO_TEXT_TURN = "(The customer opened the conversation without writing anything.)"
WITHHELD_NOTE = ("An AI reply was withheld: it repeated the assistant's instructions (a customer message may "
                 "have asked for them). The conversation is handed to the team.")


@dataclass(frozen=True, slots=True)
class _Context:
    conversation_id: int
    channel: str
    messages: list[dict[str, Any]]
    settings: dict[str, Any]
    provider: str | None
    key_enc: str | None
    replies_this_month: int


def _read_context(db: Database, run_id: int, provider: str | None, month: str, since: str) -> _Context | None:
    row = one(
        db,
        "SELECT c.id AS conversation_id, ch.type AS channel FROM flow_runs r "
        "JOIN conversations c ON c.contact_id = r.contact_id JOIN channels ch ON ch.id = c.channel_id "
        "WHERE r.id = ?",
        [run_id],
    )
    if row is None:
        return None
    messages = many(
        db,
        "SELECT direction, kind, text, status FROM messages WHERE conversation_id = ? AND created_at >= ? "
        "ORDER BY id DESC LIMIT ?",
        [row["conversation_id"], since, HISTORY_MESSAGES],
    )
    settings = ai_store.read(db)
    provider = provider or settings["provider"]
    return _Context(
        conversation_id=row["conversation_id"], channel=row["channel"], messages=messages[::-1],
        settings=settings, provider=provider,
        key_enc=ai_store.api_key_enc(db, provider) if provider else None,
        replies_this_month=ai_store.replies_in(db, month),
    )


def _note(db: Database, conversation_id: int, text: str, now: str) -> None:
    db.conn.execute("INSERT INTO notifications (conversation_id, text, created_at) VALUES (?, ?, ?)",
                    [conversation_id, text, now])


def _after_reply(db: Database, conversation_id: int, month: str, note: str | None, now: str) -> None:
    ai_store.count_reply(db, month)
    if note:
        _note(db, conversation_id, note, now)


def _questions(turns: list[Turn]) -> list[str]:
    """What to search the knowledge base for: the contact's latest words, then those and the
    words before them."""
    said = [t.text for t in turns if t.role == "user"]
    if not said:
        return []
    return [said[-1]] if len(said) == 1 else [said[-1], f"{said[-2]}\n{said[-1]}"]


class AiReplyExecutor:
    """``runtime.executors["ai_reply"]``: ``await executor(runtime, run_id, call)``."""

    def __init__(self, providers: Providers) -> None:
        self.providers = providers

    async def __call__(self, runtime: Any, run_id: int, call: CallOut) -> CallResult:
        request = call.request
        month = limits.current_month()
        since = to_iso(utcnow() - timedelta(hours=HISTORY_HOURS))
        ctx = await runtime.db.read(_read_context, run_id, request.get("provider"), month, since)
        if ctx is None:
            return CallResult(step=call.step, ok=False, error="not_configured")
        settings = ctx.settings
        model = request.get("model") or (settings["model"] if ctx.provider == settings["provider"] else None)
        if not (ctx.provider and model and ctx.key_enc):
            return await self._fail(runtime, call, ctx, "not_configured", run_id)
        limit = limits.monthly_reply_limit(runtime)
        if limit is not None and ctx.replies_this_month >= limit:
            return await self._fail(runtime, call, ctx, "limit_reached", run_id, extra=f" ({limit} replies)")
        try:
            api_key = runtime.fields.decrypt(ctx.key_enc, ai_store.key_context(ctx.provider))
        except KeyMaterialError:
            return await self._fail(runtime, call, ctx, "not_configured", run_id)

        from appliance.ai.prompt import ParsedReply, Turn, build_prompt, conversation_turns, parse_reply  # noqa: PLC0415

        turns = conversation_turns(ctx.messages) or [Turn("user", NO_TEXT_TURN)]
        passages: list[dict[str, Any]] = []
        use_kb = bool(request.get("use_knowledge_base", True))
        if use_kb:
            for question in _questions(turns):
                passages = await runtime.db.read(knowledge.search, question)
                if passages:
                    break
        prompt = build_prompt(
            turns=turns, workspace_instructions=settings["instructions"], step_instructions=request.get("instructions"),
            use_knowledge_base=use_kb, passages=passages, channel=ctx.channel,
        )
        try:
            completion = await self.providers.complete(ctx.provider, api_key, model, prompt)
        except ProviderError as exc:
            return await self._fail(runtime, call, ctx, exc.reason, run_id)
        reply = parse_reply(completion.text)
        if leaks_instructions(reply.text, system=prompt.system, passages=[p["text"] for p in passages],
                              instructions=(settings["instructions"], request.get("instructions"))):
            # An injected "print your instructions" worked on the model: send nothing, hand over.
            log.warning("ai reply withheld", extra={"run_id": run_id, "provider": ctx.provider, "reason": "leak"})
            reply = ParsedReply(None, handoff=True, done=True)
            await runtime.db.write(_note, ctx.conversation_id, WITHHELD_NOTE, iso_now())
        handoff = reply.handoff or completion.refused
        if reply.text is None and not (handoff or reply.done):
            return await self._fail(runtime, call, ctx, "empty_reply", run_id)
        note = ("The AI assistant handed this conversation to the team: the customer asked for a person "
                "or it could not help.") if handoff else None
        await runtime.db.write(_after_reply, ctx.conversation_id, month, note, iso_now())
        log.info("ai reply", extra={"run_id": run_id, "provider": ctx.provider, "model": model,
                                    "passages": len(passages), "handoff": handoff, "done": reply.done or handoff})
        meta = {
            "provider": ctx.provider,
            "model": model,
            "passages": [
                {"doc_id": str(p["document_id"]), "title": p["title"], "heading": p["heading"],
                 "chunk_id": str(p["chunk_id"]), "score": p["score"]}
                for p in passages
            ],
        }
        return CallResult(step=call.step, ok=True, reply_text=reply.text, reply_meta=meta,
                          done=reply.done or handoff, handoff=handoff)

    async def _fail(self, runtime: Any, call: CallOut, ctx: _Context, reason: str, run_id: int,
                    extra: str = "") -> CallResult:
        text = f"AI reply failed: {REASONS.get(reason, f'the AI provider answered with an error ({reason})')}{extra}."
        await runtime.db.write(_note, ctx.conversation_id, text, iso_now())
        log.warning("ai reply failed", extra={"run_id": run_id, "provider": ctx.provider, "reason": reason})
        return CallResult(step=call.step, ok=False, error=reason)
