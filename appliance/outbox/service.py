"""Queueing an agent's reply: policy and rendering are checked before anything is stored.

A reply that Meta's policy forbids is refused with 422 (``outside_window``,
``template_required``, ``template_not_supported``); one the channel cannot express (too long,
a template on Messenger) with 422 ``cannot_render``; one for a channel that is not connected
with 409. Otherwise it is queued (202) and the sender is woken. The sender checks the policy
again when it sends, since time passes in the queue.
"""

from __future__ import annotations

from typing import Any

from appliance.channels.base import adapter_for
from appliance.channels.outbound import RenderError
from appliance.errors import Conflict, PolicyViolation, Unprocessable
from appliance.inbox import store as inbox
from appliance.outbox import policy, store
from appliance.outbox.sender import build_outbound
from appliance.runtime import Runtime
from appliance.timeutil import from_iso, to_iso, utcnow

__all__ = ["queue_agent_reply"]


async def queue_agent_reply(
    runtime: Runtime,
    conversation_id: int,
    *,
    text: str | None,
    template: dict[str, Any] | None,
    user_id: int | None,
) -> dict[str, Any]:
    conversation = await runtime.db.read(inbox.get_conversation, conversation_id)
    if conversation["channel_status"] != "active":
        raise Conflict(
            f"the conversation's channel is {conversation['channel_status'].replace('_', ' ')}; "
            "reconnect it under /api/v1/channels first",
            code="channel_unavailable",
        )
    now = utcnow()
    last = conversation["last_inbound_at"]
    decision = policy.decide(
        conversation["channel"],
        sent_by="user",
        is_template=template is not None,
        last_inbound_at=from_iso(last) if last else None,
        now=now,
    )
    if not decision.allowed:
        raise PolicyViolation(decision.reason or "Meta's policy forbids this message", code=decision.code)
    payload: dict[str, Any] = {"template": template} if template else {}
    preview = {
        "payload": payload, "text": text, "reply_to": None, "message_id": 0,
        "contact_external_id": conversation["contact_external_id"],
        "wa_id": conversation["contact_wa_id"], "bsuid": conversation["contact_bsuid"],
    }
    try:
        adapter_for(conversation["channel"]).render(build_outbound(preview, decision))
    except RenderError as exc:
        raise Unprocessable(str(exc), code="cannot_render") from exc
    message_id = await runtime.db.write(
        store.enqueue,
        conversation_id=conversation_id,
        kind="template" if template else "text",
        text=text,
        payload=payload,
        sent_by="user",
        user_id=user_id,
        messaging_type=decision.messaging_type,
        tag=decision.tag,
        now=to_iso(now),
    )
    runtime.wake_sender()
    return await runtime.db.read(inbox.get_message, message_id)
