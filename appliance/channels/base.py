"""The contract every channel adapter keeps, and the registry that maps names to adapters.

An adapter is a module-level object (``ADAPTER``, a :class:`appliance.channels.adapter.ModuleAdapter`
of the channel module's functions) with:

``name``            ``"messenger" | "instagram" | "whatsapp"``
``webhook_object``  the ``object`` field of the deliveries it parses (``page``, ``instagram``,
                    ``whatsapp_business_account``)
``parse_webhook(payload) -> ParsedWebhook``
                    pure: a decoded delivery (one ``object``, any number of entries and events)
                    to events, problems and an ignored count. Never raises on bad shapes; a part
                    it cannot read becomes a :class:`ParseProblem` and the rest still parses.
``render(outbound) -> list[dict]``
                    pure: one message as the Graph API request bodies that send it, in order.
                    Raises :class:`RenderError` when the channel cannot express it.
``async send(wire, settings, account, body) -> SendResult``
                    posts one body with the account's token through the sender's
                    :class:`appliance.channels.wire.GraphWire`; never raises for HTTP, Graph or
                    transport errors (they come back as ``SendResult.error``).
``async reply_to_comment(wire, settings, account, comment_id, text) -> SendResult``
                    a public reply under a comment (Facebook ``/comments``, Instagram
                    ``/replies``); WhatsApp answers that it has no comments.

Adapters know Meta, not the database: nothing here imports inbox, flows or outbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from appliance.channels.events import ParsedWebhook, ParseProblem
from appliance.channels.outbound import ChannelAccount, Outbound, SendResult
from appliance.settings import Settings

if TYPE_CHECKING:
    from appliance.channels.wire import GraphWire

__all__ = ["ChannelAdapter", "ADAPTERS", "adapter_for", "adapter_for_object", "parse_delivery"]


class ChannelAdapter(Protocol):
    name: str
    webhook_object: str

    def parse_webhook(self, payload: dict[str, Any]) -> ParsedWebhook: ...

    def render(self, outbound: Outbound) -> list[dict[str, Any]]: ...

    async def send(
        self,
        wire: GraphWire,
        settings: Settings,
        account: ChannelAccount,
        body: dict[str, Any],
    ) -> SendResult: ...

    async def reply_to_comment(
        self,
        wire: GraphWire,
        settings: Settings,
        account: ChannelAccount,
        comment_id: str,
        text: str,
    ) -> SendResult: ...


def _load() -> dict[str, ChannelAdapter]:
    from appliance.channels import instagram, messenger, whatsapp

    return {a.ADAPTER.name: a.ADAPTER for a in (messenger, instagram, whatsapp)}


ADAPTERS: dict[str, ChannelAdapter] = _load()
_BY_OBJECT = {adapter.webhook_object: adapter for adapter in ADAPTERS.values()}


def adapter_for(channel_type: str) -> ChannelAdapter:
    return ADAPTERS[channel_type]


def adapter_for_object(webhook_object: str) -> ChannelAdapter | None:
    return _BY_OBJECT.get(webhook_object)


def parse_delivery(payload: Any) -> ParsedWebhook:
    """Parse a whole decoded delivery, whatever its ``object``."""
    if not isinstance(payload, dict):
        return ParsedWebhook(problems=[ParseProblem("$", "the body is not a JSON object")])
    webhook_object = payload.get("object")
    adapter = adapter_for_object(webhook_object) if isinstance(webhook_object, str) else None
    if adapter is None:
        return ParsedWebhook(
            problems=[ParseProblem("object", "unknown or missing webhook object")]
        )
    return adapter.parse_webhook(payload)
