"""appliance.outbox.policy: every window case per channel, as plain function calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from appliance.outbox.policy import Decision, decide

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NEVER = None

RESPONSE = ("allowed", "RESPONSE", None)
HUMAN_AGENT = ("allowed", "MESSAGE_TAG", "HUMAN_AGENT")
OUTSIDE = ("refused", "outside_window")
TEMPLATE_REQUIRED = ("refused", "template_required")
NOT_SUPPORTED = ("refused", "template_not_supported")
WHATSAPP_OK = ("allowed", None, None)


def outcome(decision: Decision) -> tuple[str, str | None] | tuple[str, str | None, str | None]:
    """A decision as one comparable value; a refusal must always say why."""
    if decision.allowed:
        assert decision.code is None
        return ("allowed", decision.messaging_type, decision.tag)
    assert decision.reason
    assert decision.messaging_type is None and decision.tag is None
    return ("refused", decision.code)


def last_inbound(age: timedelta | None) -> datetime | None:
    return None if age is None else NOW - age


# --- Messenger and Instagram: the window, human agents, bots ------------------------------

# (age of the last inbound event, sent_by, expected)
MESSAGING_WINDOW = [
    pytest.param(timedelta(minutes=1), "bot", RESPONSE, id="1min-bot"),
    pytest.param(timedelta(minutes=1), "user", RESPONSE, id="1min-human"),
    pytest.param(timedelta(0), "bot", RESPONSE, id="same-instant-bot"),
    pytest.param(-5 * SECOND, "bot", RESPONSE, id="meta-clock-ahead-bot"),
    pytest.param(24 * HOUR - SECOND, "bot", RESPONSE, id="24h-minus-1s-bot"),
    pytest.param(24 * HOUR - SECOND, "user", RESPONSE, id="24h-minus-1s-human"),
    pytest.param(24 * HOUR, "bot", OUTSIDE, id="exactly-24h-bot"),
    pytest.param(24 * HOUR, "user", HUMAN_AGENT, id="exactly-24h-human"),
    pytest.param(25 * HOUR, "bot", OUTSIDE, id="25h-bot"),
    pytest.param(30 * HOUR, "user", HUMAN_AGENT, id="30h-human"),
    pytest.param(3 * DAY, "bot", OUTSIDE, id="3d-bot"),
    pytest.param(7 * DAY - SECOND, "user", HUMAN_AGENT, id="7d-minus-1s-human"),
    pytest.param(7 * DAY - SECOND, "bot", OUTSIDE, id="7d-minus-1s-bot"),
    pytest.param(7 * DAY, "user", OUTSIDE, id="exactly-7d-human"),
    pytest.param(7 * DAY, "bot", OUTSIDE, id="exactly-7d-bot"),
    pytest.param(8 * DAY, "user", OUTSIDE, id="8d-human"),
    pytest.param(90 * DAY, "user", OUTSIDE, id="90d-human"),
    pytest.param(NEVER, "user", OUTSIDE, id="never-opened-human"),
    pytest.param(NEVER, "bot", OUTSIDE, id="never-opened-bot"),
]


@pytest.mark.parametrize("channel", ["messenger", "instagram"])
@pytest.mark.parametrize(("age", "sent_by", "expected"), MESSAGING_WINDOW)
def test_messaging_window(channel: str, age: timedelta | None, sent_by: str, expected: tuple) -> None:
    decision = decide(channel, sent_by=sent_by, is_template=False,  # type: ignore[arg-type]
                      last_inbound_at=last_inbound(age), now=NOW)
    assert outcome(decision) == expected


@pytest.mark.parametrize("channel", ["messenger", "instagram"])
@pytest.mark.parametrize("sent_by", ["bot", "user"])
@pytest.mark.parametrize("age", [timedelta(minutes=1), 30 * HOUR, NEVER], ids=["1min", "30h", "never"])
def test_whatsapp_template_on_messenger_or_instagram_is_refused(
    channel: str, sent_by: str, age: timedelta | None
) -> None:
    decision = decide(channel, sent_by=sent_by, is_template=True,  # type: ignore[arg-type]
                      last_inbound_at=last_inbound(age), now=NOW)
    assert outcome(decision) == NOT_SUPPORTED


# --- private replies to comments -------------------------------------------------------------

# (age of the comment, age of the contact's last message, sent_by, expected)
PRIVATE_REPLIES = [
    pytest.param(HOUR, NEVER, "bot", RESPONSE, id="1h-after-comment-never-wrote"),
    pytest.param(3 * DAY, NEVER, "bot", RESPONSE, id="3d-after-comment-bot"),
    pytest.param(3 * DAY, NEVER, "user", RESPONSE, id="3d-after-comment-human"),
    pytest.param(7 * DAY - SECOND, NEVER, "bot", RESPONSE, id="7d-minus-1s"),
    pytest.param(7 * DAY, NEVER, "bot", OUTSIDE, id="exactly-7d"),
    pytest.param(8 * DAY, NEVER, "user", OUTSIDE, id="8d-human"),
    # The comment's own 7 days rule a private reply, whatever the DM window says.
    pytest.param(8 * DAY, HOUR, "bot", OUTSIDE, id="8d-but-wrote-1h-ago"),
    pytest.param(HOUR, 10 * DAY, "bot", RESPONSE, id="1h-window-long-closed"),
]


@pytest.mark.parametrize("channel", ["messenger", "instagram"])
@pytest.mark.parametrize(("comment_age", "age", "sent_by", "expected"), PRIVATE_REPLIES)
def test_private_reply_to_a_comment(
    channel: str, comment_age: timedelta, age: timedelta | None, sent_by: str, expected: tuple
) -> None:
    decision = decide(channel, sent_by=sent_by, is_template=False,  # type: ignore[arg-type]
                      last_inbound_at=last_inbound(age), now=NOW,
                      comment_created_at=NOW - comment_age)
    assert outcome(decision) == expected


# --- WhatsApp: the customer service window and templates ------------------------------------

WHATSAPP_FREE_FORM = [
    pytest.param(timedelta(minutes=1), "bot", WHATSAPP_OK, id="1min-bot"),
    pytest.param(timedelta(minutes=1), "user", WHATSAPP_OK, id="1min-human"),
    pytest.param(-5 * SECOND, "bot", WHATSAPP_OK, id="meta-clock-ahead"),
    pytest.param(24 * HOUR - SECOND, "bot", WHATSAPP_OK, id="24h-minus-1s"),
    pytest.param(24 * HOUR, "bot", TEMPLATE_REQUIRED, id="exactly-24h-bot"),
    pytest.param(24 * HOUR, "user", TEMPLATE_REQUIRED, id="exactly-24h-human"),
    # No human-agent extension on WhatsApp.
    pytest.param(30 * HOUR, "user", TEMPLATE_REQUIRED, id="30h-human"),
    pytest.param(25 * HOUR, "bot", TEMPLATE_REQUIRED, id="25h-bot"),
    pytest.param(8 * DAY, "user", TEMPLATE_REQUIRED, id="8d-human"),
    pytest.param(NEVER, "bot", TEMPLATE_REQUIRED, id="never-opened-bot"),
    pytest.param(NEVER, "user", TEMPLATE_REQUIRED, id="never-opened-human"),
]


@pytest.mark.parametrize(("age", "sent_by", "expected"), WHATSAPP_FREE_FORM)
def test_whatsapp_free_form(age: timedelta | None, sent_by: str, expected: tuple) -> None:
    decision = decide("whatsapp", sent_by=sent_by, is_template=False,  # type: ignore[arg-type]
                      last_inbound_at=last_inbound(age), now=NOW)
    assert outcome(decision) == expected


@pytest.mark.parametrize("sent_by", ["bot", "user"])
@pytest.mark.parametrize(
    "age", [timedelta(minutes=1), 24 * HOUR, 30 * HOUR, 7 * DAY, 400 * DAY, NEVER],
    ids=["1min", "24h", "30h", "7d", "400d", "never"],
)
def test_whatsapp_template_goes_out_at_any_time(sent_by: str, age: timedelta | None) -> None:
    decision = decide("whatsapp", sent_by=sent_by, is_template=True,  # type: ignore[arg-type]
                      last_inbound_at=last_inbound(age), now=NOW)
    assert outcome(decision) == WHATSAPP_OK
