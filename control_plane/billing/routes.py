"""``POST /billing/checkout`` (public: a new customer picks a plan), ``POST /billing/portal``
(admin token until customer sessions exist) and ``POST /webhooks/stripe``.

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

from appliance.errors import Forbidden, PayloadTooLarge
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
    tenant_id: Annotated[str, StringConstraints(pattern=r"^t[0-9a-f]{12}$")]


@post("/billing/checkout", status_code=201)
async def checkout(request: Request[Any, Any, Any], data: JSONBody[Checkout], cp: CpDep) -> dict[str, str]:
    """Signed in (``aat-session`` + ``X-CSRF-Token``): the tenant will be the account's, and the
    account's email is Stripe's customer email unless one is given."""
    account: dict[str, Any] | None = None
    if COOKIE in request.cookies:
        account = await cp.sessions.unsafe(request.cookies[COOKIE], request.headers.get("x-csrf-token"))
    return await cp.billing.checkout(plan_id=data.plan, name=data.name,
                                     email=data.email or (account["email"] if account else None),
                                     account_id=account["id"] if account else None)


@post("/billing/portal", status_code=201, guards=[admin_guard])
async def portal(data: JSONBody[Portal], cp: CpDep) -> dict[str, str]:
    return await cp.billing.portal(data.tenant_id)


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
