"""Whether one recipient gets the broadcast, decided just before its message is queued. Pure.

The first rule that applies names the skip reason (``skipped_reasons`` counts them)::

    no_channel         the contact's channel is not connected (disconnected, needs_reauth), or
                       cannot carry the message: a template goes only to WhatsApp numbers of
                       the account that owns it
    unsubscribed       the contact unsubscribed (contacts.subscribed)
    marketing_opt_out  a marketing message to a contact who stopped marketing (WhatsApp
                       ``user_preferences`` stop, error 131050, Messenger marketing opt-out).
                       Text broadcasts count as marketing; a template counts as its category says
    outside_window     Messenger and Instagram allow no broadcast outside the 24-hour window
                       (no message tag fits one); on WhatsApp outside it only a template

The window is checked :data:`WINDOW_MARGIN` ahead (the message waits a little in the queue);
the sender checks it again when it sends (appliance/outbox/policy.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from appliance.outbox import policy as outbox_policy

__all__ = ["Plan", "decide", "plan_of", "SKIP_REASONS", "WINDOW_MARGIN"]

SKIP_REASONS = ("no_channel", "unsubscribed", "marketing_opt_out", "outside_window", "cancelled")
WINDOW_MARGIN = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Plan:
    """What the policy needs to know about a broadcast's message."""

    is_template: bool
    marketing: bool
    waba_id: str | None = None  # the account owning the template


def plan_of(message: dict[str, Any]) -> Plan:
    """The plan of a stored message (see service.resolve_message)."""
    template = message.get("template")
    if template is None:
        return Plan(is_template=False, marketing=True)
    category = template.get("category")
    return Plan(is_template=True, marketing=category not in ("UTILITY", "AUTHENTICATION"),
                waba_id=template.get("waba_id"))


def decide(
    plan: Plan,
    *,
    channel_type: str,
    channel_status: str,
    channel_waba_id: str | None,
    subscribed: bool,
    marketing_opt_out: bool,
    last_inbound_at: datetime | None,
    now: datetime,
) -> str | None:
    """The skip reason for this recipient, or None to send (see the module docstring)."""
    if channel_status != "active":
        return "no_channel"
    if plan.is_template and (channel_type != "whatsapp" or channel_waba_id != plan.waba_id):
        return "no_channel"
    if not subscribed:
        return "unsubscribed"
    if plan.marketing and marketing_opt_out:
        return "marketing_opt_out"
    verdict = outbox_policy.decide(
        channel_type, sent_by="bot", is_template=plan.is_template, last_inbound_at=last_inbound_at,
        now=now + WINDOW_MARGIN,
    )
    return None if verdict.allowed else "outside_window"
