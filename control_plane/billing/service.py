"""What billing does: checkout and portal sessions, and Stripe's events applied to tenants.

Webhook contract (:meth:`Billing.handle`, after :meth:`Billing.verify`):

- **Idempotent by event id**: an event id already in ``stripe_events`` is answered
  ``duplicate`` and changes nothing. Events are handled one at a time (a lock), and the id is
  recorded only after the handling succeeded, so a failure (Stripe unreachable) is retried by
  Stripe's redelivery.
- **Reorder-safe**: the event body only says *which* subscription changed; its current state
  is retrieved from Stripe before acting, so an old ``updated`` arriving after a newer one, or
  after ``deleted``, applies today's state, not the event's.
- ``checkout.session.completed``: the sign-up recorded for that Checkout Session, whose account
  is the session's ``client_reference_id`` (a mismatch is ignored), becomes a tenant of that
  account on the plan whose ``stripe_price`` the subscription has (one transaction: tenant,
  subscription, sign-up completed), then provisioned; the entitlement push follows its first
  convergence.
- ``customer.subscription.updated`` / ``.deleted``, ``invoice.paid`` / ``.payment_failed``: the
  subscription's state decides: ``active``/``trialing``: the plan of its price (pushed when it
  changed), and a tenant suspended for non-payment resumes; ``past_due``: a grace of
  ``AAT_CP_BILLING_GRACE_DAYS`` (the sweep suspends after it); ``unpaid``/``paused``: suspended;
  ``canceled``/``incomplete_expired``: stopped with ``delete_after`` = now + retention (the
  lifecycle's ``deleting``). Invoices are also kept in ``billing_history`` for 7 years. The
  tenant's owner is emailed (``AAT_CP_EMAIL``) a receipt, a payment failure, and on
  cancellation the date its data will be deleted.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import stripe

from appliance import audit
from appliance.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable, Unprocessable
from appliance.timeutil import iso_in, iso_now
from control_plane.billing import store
from control_plane.billing.stripe_api import BillingNotConfigured, SubscriptionState, make_client, subscription_state
from control_plane.db import Store
from control_plane.entitlements.push import EntitlementPusher
from control_plane.lifecycle import store as tenants
from control_plane.lifecycle.service import Lifecycle, new_tenant_row
from control_plane.notify import Email, Notifier
from control_plane.settings import ControlPlaneSettings

__all__ = ["Billing", "STRIPE", "HISTORY_SECONDS", "TOLERANCE_SECONDS"]

log = logging.getLogger("aat.cp.billing")

STRIPE = audit.Actor("system", label="stripe")
HISTORY_SECONDS = 7 * 366 * 86400  # billing records are kept 7 years
TOLERANCE_SECONDS = 300
LIVE = ("active", "trialing", "past_due")


class Billing:
    def __init__(self, settings: ControlPlaneSettings, cp_store: Store, lifecycle: Lifecycle,
                 entitlements: EntitlementPusher, notifier: Notifier) -> None:
        self.settings = settings
        self.notifier = notifier
        self.store = cp_store
        self.db = cp_store.gateway
        self.lifecycle = lifecycle
        self.entitlements = entitlements
        self.client = make_client(settings)
        self.by_price = {p.stripe_price: p for p in entitlements.plans.values() if p.stripe_price}
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()

    def _stripe(self) -> stripe.StripeClient:
        if self.client is None:
            raise BillingNotConfigured("billing is not configured: set AAT_CP_STRIPE_SECRET_KEY")
        return self.client

    # --- sessions ---------------------------------------------------------------------------------
    async def checkout(self, *, plan_id: str, name: str, email: str | None, account_id: str) -> dict[str, str]:
        """A Checkout Session (subscription mode) for a signed-in account: its
        ``client_reference_id`` is ``account_id``; a sign-up row keyed by the session's id
        remembers the name and plan, and the completed checkout turns it into a tenant of
        that account."""
        plan = self.entitlements.plans.get(plan_id)
        if plan is None:
            raise Unprocessable(f"no plan {plan_id!r}; the plans are {', '.join(self.entitlements.plans)}",
                                code="unknown_plan")
        if not plan.stripe_price:
            raise Unprocessable(f"plan {plan_id!r} has no stripe_price in AAT_CP_PLANS", code="plan_not_for_sale")
        client = self._stripe()
        signup_id = "su_" + secrets.token_hex(8)
        base = self.settings.public_url.rstrip("/")
        params: dict[str, Any] = {
            "mode": "subscription", "client_reference_id": account_id,
            "line_items": [{"price": plan.stripe_price, "quantity": 1}],
            "success_url": base + "/billing/done?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": base + "/billing/canceled", "metadata": {"plan": plan.id},
        }
        if email:
            params["customer_email"] = email
        session = await _call(client.v1.checkout.sessions.create_async(params))  # type: ignore[arg-type]
        await self.db.write(store.insert_signup, signup_id=signup_id, name=name, email=email, plan=plan.id,
                            checkout_session_id=session["id"], now=iso_now(), account_id=account_id)
        return {"id": session["id"], "url": session["url"]}

    async def portal(self, tenant_id: str) -> dict[str, str]:
        """An admin's Customer Portal session for the tenant's Stripe customer."""
        row = await self.db.read(store.get_subscription, tenant_id)
        if row is None:
            raise NotFound(f"tenant {tenant_id} has no Stripe subscription", code="no_subscription")
        return await self._portal(row)

    async def account_portal(self, account_id: str, tenant_id: str | None = None) -> dict[str, str]:
        """A Customer Portal session for the signed-in account's own Stripe customer: the
        subscription of a tenant its checkout created (``tenant_id`` when given, which must be
        one of them: 404 otherwise), else its latest. 409 when it has none yet."""
        rows = await self.db.read(store.subscriptions_of_account, account_id)
        if tenant_id is not None:
            rows = [r for r in rows if r["tenant_id"] == tenant_id]
            if not rows:
                raise NotFound(f"you have no workspace {tenant_id}", code="not_found")
        if not rows:
            raise Conflict("your account has no Stripe customer yet: choose a plan first (POST /billing/checkout)",
                           code="no_stripe_customer")
        return await self._portal(rows[0])

    async def _portal(self, row: dict[str, Any]) -> dict[str, str]:
        client = self._stripe()
        session = await _call(client.v1.billing_portal.sessions.create_async(  # type: ignore[arg-type]
            {"customer": row["customer_id"], "return_url": self.settings.public_url.rstrip("/") + "/"}))
        return {"url": session["url"]}

    # --- webhooks ---------------------------------------------------------------------------------
    def verify(self, payload: bytes, header: str | None) -> stripe.Event:
        """The event, if ``Stripe-Signature`` signs these exact bytes within 300 s (else 403)."""
        if self.settings.stripe_webhook_secret is None:
            raise BillingNotConfigured("billing is not configured: set AAT_CP_STRIPE_WEBHOOK_SECRET")
        try:
            return stripe.Webhook.construct_event(payload, header or "", self.settings.stripe_webhook_secret
                                                  .get_secret_value(), tolerance=TOLERANCE_SECONDS)
        except stripe.SignatureVerificationError:
            raise Forbidden("the Stripe-Signature does not sign this body within 300 s", code="invalid_signature") from None
        except ValueError:
            raise BadRequest("the body is not a JSON Stripe event", code="invalid_json") from None

    async def handle(self, event: stripe.Event) -> dict[str, str]:
        async with self._lock:
            if await self.db.read(store.event_seen, event["id"]):
                return {"status": "duplicate", "id": event["id"]}
            outcome = await self._dispatch(event["type"], event["data"]["object"].to_dict())
            await self.db.write(store.record_event, event["id"], event["type"], outcome, iso_now())
        log.info("stripe event handled", extra={"event": event["id"], "type": event["type"], "outcome": outcome})
        return {"status": "processed", "id": event["id"], "outcome": outcome}

    async def _dispatch(self, kind: str, obj: Any) -> str:
        if kind == "checkout.session.completed":
            return await self._checkout_completed(obj)
        if kind in ("customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted"):
            return await self._subscription_changed(obj["id"])
        if kind in ("invoice.paid", "invoice.payment_failed"):
            return await self._invoice(kind, obj)
        return "ignored"

    async def _retrieve(self, subscription_id: str) -> SubscriptionState:
        found = await _call(self._stripe().v1.subscriptions.retrieve_async(subscription_id))
        return subscription_state(found)

    async def _checkout_completed(self, session: Any) -> str:
        if session.get("mode") != "subscription" or not session.get("subscription"):
            return "ignored: not a subscription checkout"
        signup = await self.db.read(store.signup_by_session, session.get("id") or "")
        if signup is None:
            return "ignored: no sign-up started this checkout"
        if signup["account_id"] is None or signup["account_id"] != session.get("client_reference_id"):
            return "ignored: client_reference_id is not the account that started this checkout"
        if signup["completed_at"] is not None:
            return "ignored: sign-up already completed"
        sub_id = session["subscription"] if isinstance(session["subscription"], str) else session["subscription"]["id"]
        state = await self._retrieve(sub_id)
        plan = self.by_price.get(state.price_id)
        if plan is None:
            log.warning("checkout for a price no plan has", extra={"price": state.price_id})
            return f"ignored: price {state.price_id} matches no plan"
        if state.status not in LIVE:
            await self.db.write(store.complete_signup, signup["id"], None, iso_now())
            return f"not provisioned: the subscription is {state.status}"
        tenant_id = tenants.new_tenant_id()

        def create(db: Any) -> None:
            now = iso_now()
            new_tenant_row(db, self.store.fields, name=signup["name"], provisioner=self.lifecycle.provisioner.name,
                           owner_email=signup["email"], plan=plan.id, actor=STRIPE, tenant_id=tenant_id)
            store.upsert_subscription(db, tenant_id=tenant_id, customer_id=state.customer, subscription_id=state.id,
                                      status=state.status, price_id=state.price_id,
                                      past_due_since=now if state.status == "past_due" else None, canceled_at=None, now=now)
            store.complete_signup(db, signup["id"], tenant_id, now)

        await self.db.write(create)
        self._spawn(self.lifecycle.converge(tenant_id))
        return f"provisioned {tenant_id} on {plan.id}"

    async def _subscription_changed(self, subscription_id: str) -> str:
        row = await self.db.read(store.subscription_by_stripe_id, subscription_id)
        if row is None:
            return "ignored: unknown subscription"
        return await self.apply(row, await self._retrieve(subscription_id))

    async def _invoice(self, kind: str, invoice: Any) -> str:
        customer = invoice["customer"] if isinstance(invoice["customer"], str) else invoice["customer"]["id"]
        row = await self.db.read(store.subscription_by_customer, customer)
        amount = invoice.get("amount_paid" if kind == "invoice.paid" else "amount_due") or 0
        await self.db.write(store.add_history, tenant_id=row["tenant_id"] if row else None, customer_id=customer,
                            invoice_id=invoice["id"], event_type=kind, amount_cents=int(amount),
                            currency=str(invoice.get("currency") or ""), at=iso_now(), keep_until=iso_in(HISTORY_SECONDS))
        if row is None:
            return "recorded for an unknown customer"
        outcome = "recorded; " + await self.apply(row, await self._retrieve(row["subscription_id"]))
        tenant = await self.db.read(tenants.get_tenant, row["tenant_id"])
        money = f"{int(amount) / 100:.2f} {str(invoice.get('currency') or '').upper()}"
        if kind == "invoice.paid":
            self._email(tenant, f"Payment received for {tenant['name']}",
                        f"We received {money} for {tenant['name']} (invoice {invoice['id']}). Thank you.")
        else:
            self._email(tenant, f"Payment failed for {tenant['name']}",
                        f"The payment of {money} for {tenant['name']} failed. Update your payment method in the "
                        f"billing portal within {self.settings.billing_grace_days:g} days to keep the workspace running.")
        return outcome

    async def apply(self, row: dict[str, Any], state: SubscriptionState) -> str:
        """Make the tenant match the subscription's current state (see the module docstring)."""
        tenant_id = row["tenant_id"]
        tenant = await self.db.read(tenants.get_tenant, tenant_id)
        now = iso_now()
        past_due_since, canceled_at, outcome = row["past_due_since"], row["canceled_at"], state.status
        action: str | None = None
        if state.status in ("active", "trialing"):
            plan = self.by_price.get(state.price_id)
            if plan is not None and plan.id != tenant["plan"]:
                await self.entitlements.change_plan(tenant_id, plan.id, STRIPE)
                outcome += f", plan {plan.id}"
            if tenant["status"] == "suspended" and past_due_since is not None:
                action = "active"
            past_due_since = None
        elif state.status == "past_due":
            past_due_since = past_due_since or now
            outcome += f", grace since {past_due_since}"
        elif state.status in ("unpaid", "paused", "incomplete"):
            past_due_since = past_due_since or now
            action = "suspended" if tenant["status"] == "active" else None
        elif state.status in ("canceled", "incomplete_expired"):
            canceled_at = canceled_at or now
            action = "deleting" if tenant["status"] in ("active", "suspended", "provisioning") else None
        await self.db.write(store.upsert_subscription, tenant_id=tenant_id, customer_id=state.customer,
                            subscription_id=state.id, status=state.status, price_id=state.price_id,
                            past_due_since=past_due_since, canceled_at=canceled_at, now=now)
        if action is not None:
            changed = await self.lifecycle.transition(tenant_id, action, STRIPE)
            outcome += f", tenant {action}"
            if action == "deleting":
                self._email(changed, f"{changed['name']} will be deleted on {changed['delete_after'][:10]}",
                            f"The subscription of {changed['name']} was canceled. Its data is kept until "
                            f"{changed['delete_after'][:10]} and then deleted for good; subscribe again before "
                            f"then to keep it (an export is available until then).")
        return outcome

    def _email(self, tenant: dict[str, Any], subject: str, text: str) -> None:
        if tenant.get("owner_email"):
            self.notifier.send(Email(to=tenant["owner_email"], subject=subject, text=text))

    async def suspend_past_grace(self) -> int:
        """The sweep's part: suspend tenants past_due for longer than the grace; returns how many."""
        due = await self.db.read(store.past_grace, iso_in(-self.settings.billing_grace_days * 86400))
        for tenant_id in due:
            await self.lifecycle.transition(tenant_id, "suspended", STRIPE)
        return len(due)

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)


async def _call(awaitable: Any) -> Any:
    """A Stripe call; its failures become 503 (retryable: Stripe redelivers webhooks)."""
    try:
        return await awaitable
    except stripe.StripeError as exc:
        log.warning("stripe call failed", extra={"error": type(exc).__name__, "status": exc.http_status})
        raise ServiceUnavailable(f"Stripe answered {exc.http_status or 'nothing'}: {type(exc).__name__}",
                                 code="stripe_unavailable") from None
