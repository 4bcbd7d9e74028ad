"""``POST /billing/checkout`` (a signed-in account picks a plan), ``POST /billing/portal`` (the
signed-in account's own Customer Portal; an admin token with ``tenant_id`` opens any tenant's)
and ``POST /webhooks/stripe``.

Customer requests are authenticated by the ``aat-session`` cookie and need ``X-CSRF-Token``
(401 not signed in, 403 wrong token); nothing reaches Stripe before that passed.

Webhook order of work: raw bytes (413 over 1 MiB) -> ``Stripe-Signature`` on those exact bytes
with 300 s tolerance (403, nothing stored) -> idempotency by event id -> the subscription's
current state from Stripe -> 200. A Stripe outage while handling is 503: Stripe redelivers.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, post
from litestar.exceptions import ClientException
from litestar.params import JSONBody
from pydantic import BaseModel, ConfigDict, StringConstraints

from appliance.errors import Forbidden, PayloadTooLarge, Unprocessable
from control_plane.accounts.sessions import COOKIE
from control_plane.web import CpDep, admin_guard

__all__ = ["checkout", "portal", "stripe_webhook"]

MAX_BODY_BYTES = 1024 * 1024


class Checkout(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=254,
                                            pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None


class Portal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant_id: Annotated[str, StringConstraints(pattern=r"^t[0-9a-f]{12}$")] | None = None


@post("/billing/checkout", status_code=201)
async def checkout(request: Request[Any, Any, Any], data: JSONBody[Checkout], cp: CpDep) -> dict[str, str]:
    """Signed in only (``aat-session`` + ``X-CSRF-Token``; 401 before sign-in): the Checkout
    Session's ``client_reference_id`` is the account, whose tenant the paid checkout creates; the
    account's email is Stripe's customer email unless one is given."""
    account = await cp.sessions.unsafe(request.cookies.get(COOKIE), request.headers.get("x-csrf-token"))
    return await cp.billing.checkout(plan_id=data.plan, name=data.name, email=data.email or account["email"],
                                     account_id=account["id"])


@post("/billing/portal", status_code=201)
async def portal(request: Request[Any, Any, Any], cp: CpDep, data: Portal | None = None) -> dict[str, str]:
    """With ``Authorization: Bearer <admin token>``: ``tenant_id``'s customer (required). Else
    the signed-in account's own customer (``tenant_id`` optional, one of its own)."""
    if "authorization" in request.headers:
        await admin_guard(request, None)  # type: ignore[arg-type]
        if data is None or data.tenant_id is None:
            raise Unprocessable("an admin opens the portal of a tenant: send {\"tenant_id\": ...}",
                                code="invalid_request")
        return await cp.billing.portal(data.tenant_id)
    account = await cp.sessions.unsafe(request.cookies.get(COOKIE), request.headers.get("x-csrf-token"))
    return await cp.billing.account_portal(account["id"], data.tenant_id if data else None)


@post("/webhooks/stripe", request_max_body_size=MAX_BODY_BYTES, status_code=200)
async def stripe_webhook(request: Request[Any, Any, Any], cp: CpDep) -> dict[str, str]:
    try:
        body = await request.body()
    except ClientException as exc:
        if exc.status_code == 413:
            raise PayloadTooLarge("the event is larger than 1 MiB") from exc
        raise
    try:
        event = cp.billing.verify(body, request.headers.get("stripe-signature"))
    except Forbidden:
        cp.metrics.webhooks_rejected.labels(reason="stripe_signature").inc()  # the only trace a bad event leaves
        raise
    return await cp.billing.handle(event)
