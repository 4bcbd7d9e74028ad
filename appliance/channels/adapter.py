"""The one adapter type: a channel's name, its webhook ``object`` and its four module functions.

Each channel module (``messenger``, ``instagram``, ``whatsapp``) writes its behaviour as plain
module functions and exposes them as ``ADAPTER = ModuleAdapter(...)``; the contract
those functions keep is drawn in :mod:`appliance.channels.base`. This module imports no channel,
so the channels can import it without loading the registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from appliance.channels.events import ParsedWebhook
from appliance.channels.outbound import ChannelAccount, Outbound, SendResult
from appliance.settings import Settings

if TYPE_CHECKING:
    from appliance.channels.wire import GraphWire

__all__ = ["ModuleAdapter"]


@dataclass(frozen=True, slots=True)
class ModuleAdapter:
    """A channel adapter (:class:`appliance.channels.base.ChannelAdapter`) whose operations are
    the given functions, called as they are: ``ADAPTER.send(...)`` is ``send(...)``."""

    name: str
    webhook_object: str
    parse_webhook: Callable[[dict[str, Any]], ParsedWebhook]
    render: Callable[[Outbound], list[dict[str, Any]]]
    send: Callable[[GraphWire, Settings, ChannelAccount, dict[str, Any]], Awaitable[SendResult]]
    reply_to_comment: Callable[
        [GraphWire, Settings, ChannelAccount, str, str], Awaitable[SendResult]
    ]
