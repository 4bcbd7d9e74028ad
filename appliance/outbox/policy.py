"""Meta's messaging policy, decided before anything is sent (docs/spec/meta-platform.md §6).

Pure: ``decide(...)`` looks only at its arguments. The window runs from Meta's timestamp on
the contact's last window-opening event (``contacts.last_inbound_at``). Every window is
half-open: a 24-hour window covers ages from 0 up to, but not including, exactly 24 h, so a
send exactly on a boundary is already outside: we never send what Meta could count as late.

Messenger and Instagram
    inside 24 h                       ``RESPONSE``
    24 h - 7 days, written by a human ``MESSAGE_TAG`` + ``HUMAN_AGENT``
    24 h - 7 days, automation         refused: ``outside_window``
    7 days or more, or never opened   refused: ``outside_window``
    a WhatsApp template               refused: ``template_not_supported``
    private reply to a comment        ``RESPONSE`` to the comment, within 7 days of the
                                      comment whatever the window (Meta accepts every
                                      messaging type on private replies); refused after
WhatsApp
    free-form inside 24 h             allowed
    free-form after 24 h, or never    refused: ``template_required``
    template                          allowed at any time
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

__all__ = ["Decision", "decide", "WINDOW", "HUMAN_AGENT_WINDOW", "PRIVATE_REPLY_WINDOW"]

WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
PRIVATE_REPLY_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    messaging_type: Literal["RESPONSE", "MESSAGE_TAG"] | None = None
    tag: str | None = None
    code: str | None = None
    reason: str | None = None


def _refuse(code: str, reason: str) -> Decision:
    return Decision(False, code=code, reason=reason)


def decide(
    channel_type: str,
    *,
    sent_by: Literal["bot", "user"],
    is_template: bool,
    last_inbound_at: datetime | None,
    now: datetime,
    comment_created_at: datetime | None = None,
) -> Decision:
    """May this message go out now, and how? See the module docstring for the table."""
    age = now - last_inbound_at if last_inbound_at is not None else None
    if channel_type == "whatsapp":
        if is_template:
            return Decision(True)
        if age is not None and age < WINDOW:
            return Decision(True)
        return _refuse(
            "template_required",
            "more than 24 hours since the contact's last message: only an approved WhatsApp "
            "template can be sent",
        )
    if is_template:
        return _refuse("template_not_supported", "message templates are a WhatsApp feature")
    if comment_created_at is not None:
        if now - comment_created_at < PRIVATE_REPLY_WINDOW:
            return Decision(True, messaging_type="RESPONSE")
        return _refuse("outside_window", "a private reply must be sent within 7 days of the comment")
    if age is not None and age < WINDOW:
        return Decision(True, messaging_type="RESPONSE")
    if age is not None and age < HUMAN_AGENT_WINDOW:
        if sent_by == "user":
            return Decision(True, messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
        return _refuse(
            "outside_window",
            "more than 24 hours since the contact's last message: only a human agent may "
            "reply (HUMAN_AGENT tag, up to 7 days)",
        )
    return _refuse(
        "outside_window",
        "the contact has not written in the last 7 days; Meta allows no message until they do",
    )
