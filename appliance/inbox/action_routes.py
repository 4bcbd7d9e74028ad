"""Inbox actions: ``/api/v1/conversations/{id}/assign|close|reopen|pause-bot|resume-bot|read|notes``
and ``/api/v1/canned-replies``."""

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post, put
from litestar.params import JSONBody
from pydantic import BaseModel, ConfigDict, StringConstraints

from appliance.audit import audited
from appliance.inbox import actions, canned
from appliance.inbox.routes import public_conversation
from appliance.team.auth import Principal, actor_of, requires
from appliance.timeutil import iso_now
from appliance.web.api import IdPath, RuntimeDep

__all__ = ["ConversationActions", "CannedReplyController"]

ConversationId = Annotated[int, IdPath]


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request
    user_id: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,18}$")] | None


class NewNote(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request
    text: Annotated[str, StringConstraints(min_length=1, max_length=4000)]


class CannedReply(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request
    shortcut: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_\-]{1,32}$")]
    text: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class ConversationActions(Controller):
    path = "/conversations/{conversation_id:int}"
    guards = [requires("agent")]

    @post("/assign", status_code=200)
    async def assign(self, conversation_id: ConversationId, data: JSONBody[Assignment],
                     runtime: RuntimeDep) -> dict[str, Any]:
        """Assign to a user (``user_id``), or unassign (``null``)."""
        user_id = int(data.user_id) if data.user_id is not None else None
        return public_conversation(await runtime.db.write(actions.assign, conversation_id, user_id, iso_now()))

    @post("/close", status_code=200)
    async def close(self, conversation_id: ConversationId, runtime: RuntimeDep) -> dict[str, Any]:
        return public_conversation(await runtime.db.write(actions.set_status, conversation_id, "closed", iso_now()))

    @post("/reopen", status_code=200)
    async def reopen(self, conversation_id: ConversationId, runtime: RuntimeDep) -> dict[str, Any]:
        return public_conversation(await runtime.db.write(actions.set_status, conversation_id, "open", iso_now()))

    @post("/pause-bot", status_code=200)
    async def pause_bot(self, conversation_id: ConversationId, runtime: RuntimeDep) -> dict[str, Any]:
        """Stop automation for this contact (their running flow ends) until resumed."""
        return public_conversation(await runtime.db.write(actions.set_bot_paused, conversation_id, True, iso_now()))

    @post("/resume-bot", status_code=200)
    async def resume_bot(self, conversation_id: ConversationId, runtime: RuntimeDep) -> dict[str, Any]:
        return public_conversation(await runtime.db.write(actions.set_bot_paused, conversation_id, False, iso_now()))

    @post("/read", status_code=200)
    async def read(self, conversation_id: ConversationId, runtime: RuntimeDep) -> dict[str, Any]:
        """The agent has seen it: the unread count goes to zero."""
        return public_conversation(await runtime.db.write(actions.mark_read, conversation_id, iso_now()))

    @get("/notes")
    async def list_notes(self, conversation_id: ConversationId, runtime: RuntimeDep) -> dict[str, Any]:
        return {"items": await runtime.db.read(actions.list_notes, conversation_id), "next_cursor": None}

    @post("/notes", status_code=201)
    async def add_note(self, conversation_id: ConversationId, data: JSONBody[NewNote],
                       request: Request[Principal, Any, Any], runtime: RuntimeDep) -> dict[str, Any]:
        """A private note for the team; it is never sent to the contact."""
        return await runtime.db.write(actions.add_note, conversation_id, request.user.user_id, data.text, iso_now())


class CannedReplyController(Controller):
    path = "/canned-replies"

    @get("/", guards=[requires("agent")])
    async def list_replies(self, runtime: RuntimeDep) -> dict[str, Any]:
        return {"items": await runtime.db.read(canned.list_replies), "next_cursor": None}

    @post("/", status_code=201, guards=[requires("admin")])
    async def create(self, data: JSONBody[CannedReply], request: Request[Principal, Any, Any],
                     runtime: RuntimeDep) -> dict[str, Any]:
        return await runtime.db.write(audited, actor_of(request), "canned_reply.create", "canned_reply", canned.create,
                                      data.shortcut, data.text, iso_now(), target_of=lambda r: r["id"])

    @put("/{reply_id:int}", guards=[requires("admin")])
    async def update(self, reply_id: Annotated[int, IdPath], data: JSONBody[CannedReply],
                     request: Request[Principal, Any, Any], runtime: RuntimeDep) -> dict[str, Any]:
        return await runtime.db.write(audited, actor_of(request), "canned_reply.update", "canned_reply", canned.update,
                                      reply_id, data.shortcut, data.text, iso_now(), target_of=lambda r: r["id"])

    @delete("/{reply_id:int}", status_code=204, guards=[requires("admin")])
    async def remove(self, reply_id: Annotated[int, IdPath], request: Request[Principal, Any, Any],
                     runtime: RuntimeDep) -> None:
        await runtime.db.write(audited, actor_of(request), "canned_reply.delete", "canned_reply", canned.delete,
                               reply_id, target_of=lambda _: reply_id)
