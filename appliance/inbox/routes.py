"""``/api/v1/conversations``: the inbox read API and the agent reply endpoint."""

import re
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.params import FromQuery, JSONBody, QueryParameter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from appliance.errors import BadRequest
from appliance.inbox import store
from appliance.outbox.policy import WINDOW
from appliance.outbox.service import queue_agent_reply
from appliance.team.auth import Principal, requires
from appliance.timeutil import from_iso, to_iso
from appliance.web.api import MAX_ID, Cursor, IdPath, Limit, RuntimeDep, decode_cursor, is_id, page

__all__ = ["ConversationController", "public_conversation"]

ConversationId = Annotated[int, IdPath]
_USER_ID = re.compile(r"^[0-9]{1,19}$")


class TemplateRef(BaseModel):
    """A WhatsApp template, as Meta's send API takes it; ``language`` is the code (``en_US``)
    or Meta's own ``{"code": "en_US"}``."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,512}$")]
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")]
    components: list[dict[str, Any]] = Field(default_factory=list, max_length=20)

    @field_validator("language", mode="before")
    @classmethod
    def _language_code(cls, value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"code"}:
            return value["code"]
        return value


class AgentReply(BaseModel):
    """Exactly one of ``text`` or ``template``."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request
    text: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    template: TemplateRef | None = None

    @model_validator(mode="after")
    def _one_of(self) -> "AgentReply":
        if (self.text is None) == (self.template is None):
            raise ValueError("give exactly one of `text` or `template`")
        return self


def public_conversation(row: dict[str, Any]) -> dict[str, Any]:
    last = row["last_inbound_at"]
    return {
        "id": str(row["id"]),
        "contact": {
            "id": str(row["contact_id"]),
            "name": row["contact_name"],
            "username": row["contact_username"],
            "external_id": row["contact_external_id"],
        },
        "channel": row["channel"],
        "channel_id": str(row["channel_id"]),
        "status": row["status"],
        "assignee": str(row["assignee_id"]) if row["assignee_id"] else None,
        "bot_paused": bool(row["bot_paused"]),
        "unread_count": row["unread_count"],
        "last_message_at": row["last_message_at"],
        "last_inbound_at": last,
        "window_expires_at": to_iso(from_iso(last) + WINDOW) if last else None,
        "created_at": row["created_at"],
    }


def _conversation_cursor(position: Any) -> bool:
    return (isinstance(position, list) and len(position) == 2 and isinstance(position[0], str)
            and is_id(position[1]))


class ConversationController(Controller):
    path = "/conversations"
    guards = [requires("agent")]

    @get("/")
    async def list_conversations(
        self,
        request: Request[Principal, Any, Any],
        runtime: RuntimeDep,
        status: FromQuery[Literal["open", "closed"] | None] = None,
        assignee: Annotated[str | None, QueryParameter(description="a user id, `me`, or `none`")] = None,
        channel: FromQuery[Literal["messenger", "instagram", "whatsapp"] | None] = None,
        limit: Annotated[int, Limit] = 50,
        cursor: Annotated[str | None, Cursor] = None,
    ) -> dict[str, Any]:
        assignee_id, unassigned = None, False
        if assignee == "none":
            unassigned = True
        elif assignee == "me":
            assignee_id = request.user.user_id or -1
        elif assignee is not None:
            if not _USER_ID.match(assignee) or int(assignee) > MAX_ID:
                raise BadRequest("assignee must be a user id, `me` or `none`", code="invalid_query")
            assignee_id = int(assignee)
        before = decode_cursor(cursor, _conversation_cursor)
        rows = await runtime.db.read(
            store.list_conversations, status=status, assignee=assignee_id, unassigned=unassigned,
            channel=channel, before=tuple(before) if before else None, limit=limit + 1,
        )
        return page([public_conversation(r) for r in rows], limit,
                    lambda item: [item["last_message_at"] or "", int(item["id"])])

    @get("/{conversation_id:int}")
    async def get_conversation(self, conversation_id: ConversationId, runtime: RuntimeDep) -> dict[str, Any]:
        return public_conversation(await runtime.db.read(store.get_conversation, conversation_id))

    @get("/{conversation_id:int}/messages")
    async def list_messages(
        self,
        conversation_id: ConversationId,
        runtime: RuntimeDep,
        limit: Annotated[int, Limit] = 50,
        cursor: Annotated[str | None, Cursor] = None,
    ) -> dict[str, Any]:
        after = decode_cursor(cursor, is_id)
        rows = await runtime.db.read(store.list_messages, conversation_id, after_id=after, limit=limit + 1)
        return page([store.public_message(r) for r in rows], limit, lambda item: int(item["id"]))

    @post("/{conversation_id:int}/messages", status_code=202)
    async def reply(
        self,
        conversation_id: ConversationId,
        data: JSONBody[AgentReply],
        request: Request[Principal, Any, Any],
        runtime: RuntimeDep,
    ) -> dict[str, Any]:
        template = data.template.model_dump() if data.template is not None else None
        row = await queue_agent_reply(
            runtime, conversation_id, text=data.text, template=template, user_id=request.user.user_id
        )
        return store.public_message(row)


