"""``/webhooks/meta`` in the full app: the handshake, and deliveries verified, journaled,
acknowledged, by the runtime's :class:`~appliance.ingest.receiver.WebhookReceiver` (the order of
work and why is there).

The path is one raw ASGI route (``appliance.channels.webhook_route``, shared with the control
plane's router: every reply starts with a delivery here). The wire behaviour of every method is
what the two regular handlers before it gave: GET the handshake, POST a delivery, OPTIONS 204
(``Allow: GET, OPTIONS``), anything else 405 with ``Allow: GET, OPTIONS, POST``. The route is not
listed in ``/schema`` (raw ASGI routes are not).
"""

from litestar import asgi
from litestar.types import Receive, Scope, Send

from appliance.channels import webhook_route

__all__ = ["MAX_BODY_BYTES", "webhooks_meta"]

MAX_BODY_BYTES = webhook_route.MAX_BODY_BYTES


@asgi("/webhooks/meta", copy_scope=False)
async def webhooks_meta(scope: Scope, receive: Receive, send: Send) -> None:
    """``GET`` the handshake, ``POST`` a delivery (see the module docstring)."""
    await scope["litestar_app"].state.runtime.webhooks(scope, receive, send)  # type: ignore[typeddict-item]
