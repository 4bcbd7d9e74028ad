"""What ``/webhooks/meta`` does with a request, without a web framework: the full app's route
(``appliance.ingest.routes``) and the front door that answers while the app is being built
(``appliance.web.front``) both call one :class:`WebhookReceiver`, so a delivery is received the
same way before and after.

POST order of work, and why: read the raw bytes (413 over 1 MiB) -> verify
``X-Hub-Signature-256`` on those exact bytes (403; nothing stored, a counter counts it) ->
check the body is a JSON object (400) -> commit it to the journal -> 200. Parsing and
everything else happens after, from the journal (appliance.ingest.processor).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from appliance.channels import signature, webhook_route
from appliance.errors import BadRequest, Forbidden
from appliance.ingest import journal
from appliance.metrics import WEBHOOK_OBJECTS, Metrics
from appliance.settings import Settings
from appliance.store.gateway import Gateway
from appliance.timeutil import iso_now

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

__all__ = ["WebhookReceiver"]


class _Envelope(msgspec.Struct):
    # Any: a JSON object whose ``object`` is not a string is still journaled (the processor
    # records it as a problem); only a body that is not a JSON object at all is refused.
    object: Any = ""


class WebhookReceiver:
    """Answers one request to ``/webhooks/meta`` (``webhook_route.serve``'s contract): ``GET``
    the handshake, ``POST`` a delivery verified, journaled durably, counted, and handed to
    ``journaled(journal_id, body)`` (the journal processor's hand-off; the front door's receiver
    has none, the processor reads what is pending when it starts); ``OPTIONS`` 204 with
    ``Allow: GET, OPTIONS``.
    Refusals are raised as :mod:`appliance.errors` for the caller to render."""

    def __init__(
        self, *, settings: Settings, db: Gateway, metrics: Metrics,
        journaled: Callable[[int, bytes], None] = lambda journal_id, body: None,
    ) -> None:
        self._settings = settings
        self._db = db
        self._metrics = metrics
        self._journaled = journaled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await webhook_route.serve(
            scope, receive, send, accept=self.accept, verify_token=self._settings.meta_verify_token,
            on_too_large=self._too_large, options_allow=b"GET, OPTIONS",
        )

    def _too_large(self) -> None:
        self._metrics.webhooks_rejected.labels(reason="too_large").inc()

    async def accept(self, scope: Scope, body: bytes) -> None:
        """Verify the raw body's signature, check it is a JSON object, and journal it durably."""
        metrics = self._metrics
        secrets = self._settings.app_secrets()
        if not signature.verify(body, webhook_route.header(scope, b"x-hub-signature-256"), secrets):
            metrics.webhooks_rejected.labels(reason="signature").inc()
            raise Forbidden(
                "X-Hub-Signature-256 is missing or does not match the body"
                + ("" if secrets else " (AAT_META_APP_SECRET is not set)"),
                code="invalid_signature",
            )
        try:
            envelope = msgspec.json.decode(body, type=_Envelope)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            metrics.webhooks_rejected.labels(reason="not_json").inc()
            raise BadRequest("the body is not a JSON object", code="invalid_json") from exc
        journal_id = await self._db.write(journal.append, body, iso_now())
        metrics.webhooks_received.labels(
            object=envelope.object if isinstance(envelope.object, str) and envelope.object in WEBHOOK_OBJECTS
            else "other"
        ).inc()
        self._journaled(journal_id, body)
