"""Who gets a broadcast, decided per recipient before its message is queued: every skip
reason, which rule wins, and what counts as marketing. Plain function calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from appliance.broadcasts.policy import WINDOW_MARGIN, Plan, decide, plan_of

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TEXT = Plan(is_template=False, marketing=True)
MARKETING_TEMPLATE = Plan(is_template=True, marketing=True, waba_id="W1")
UTILITY_TEMPLATE = Plan(is_template=True, marketing=False, waba_id="W1")


def recipient(**overrides: Any) -> dict[str, Any]:
    """A WhatsApp contact of account W1 who wrote an hour ago, subscribed, not opted out."""
    facts: dict[str, Any] = dict(
        channel_type="whatsapp", channel_status="active", channel_waba_id="W1", subscribed=True,
        marketing_opt_out=False, last_inbound_at=NOW - timedelta(hours=1), now=NOW,
    )
    facts.update(overrides)
    return facts


# (plan, facts, expected skip reason or None)
CASES = [
    pytest.param(TEXT, {}, None, id="whatsapp-text-inside-window"),
    pytest.param(TEXT, {"channel_status": "disconnected"}, "no_channel", id="channel-disconnected"),
    pytest.param(TEXT, {"channel_status": "needs_reauth"}, "no_channel", id="channel-needs-reauth"),
    pytest.param(MARKETING_TEMPLATE, {"channel_type": "messenger", "channel_waba_id": None}, "no_channel",
                 id="template-to-messenger"),
    pytest.param(MARKETING_TEMPLATE, {"channel_waba_id": "W2"}, "no_channel", id="template-of-another-account"),
    pytest.param(TEXT, {"subscribed": False}, "unsubscribed", id="unsubscribed"),
    pytest.param(TEXT, {"marketing_opt_out": True}, "marketing_opt_out", id="text-counts-as-marketing"),
    pytest.param(MARKETING_TEMPLATE, {"marketing_opt_out": True}, "marketing_opt_out", id="marketing-template"),
    pytest.param(UTILITY_TEMPLATE, {"marketing_opt_out": True}, None, id="utility-template-to-opted-out"),
    pytest.param(TEXT, {"last_inbound_at": NOW - timedelta(hours=25)}, "outside_window",
                 id="whatsapp-text-outside-window"),
    pytest.param(TEXT, {"last_inbound_at": None}, "outside_window", id="whatsapp-text-never-wrote"),
    pytest.param(MARKETING_TEMPLATE, {"last_inbound_at": NOW - timedelta(days=30)}, None,
                 id="whatsapp-template-outside-window"),
    pytest.param(MARKETING_TEMPLATE, {"last_inbound_at": None}, None, id="whatsapp-template-never-wrote"),
    pytest.param(TEXT, {"channel_type": "messenger", "channel_waba_id": None}, None, id="messenger-inside-window"),
    pytest.param(TEXT, {"channel_type": "messenger", "channel_waba_id": None,
                        "last_inbound_at": NOW - timedelta(hours=30)}, "outside_window",
                 id="messenger-no-broadcast-outside-window"),
    pytest.param(TEXT, {"channel_type": "instagram", "channel_waba_id": None,
                        "last_inbound_at": NOW - timedelta(days=3)}, "outside_window",
                 id="instagram-no-broadcast-outside-window"),
]


@pytest.mark.parametrize(("plan", "facts", "reason"), CASES)
def test_skip_reasons(plan: Plan, facts: dict[str, Any], reason: str | None) -> None:
    assert decide(plan, **recipient(**facts)) == reason


@pytest.mark.parametrize(("facts", "reason"), [
    ({"channel_status": "disconnected", "subscribed": False, "marketing_opt_out": True, "last_inbound_at": None},
     "no_channel"),
    ({"subscribed": False, "marketing_opt_out": True, "last_inbound_at": None}, "unsubscribed"),
    ({"marketing_opt_out": True, "last_inbound_at": None}, "marketing_opt_out"),
], ids=["no-channel-first", "then-unsubscribed", "then-opt-out"])
def test_the_first_rule_that_applies_names_the_reason(facts: dict[str, Any], reason: str) -> None:
    assert decide(TEXT, **recipient(**facts)) == reason


def test_a_window_about_to_close_counts_as_closed() -> None:
    closing = NOW - timedelta(hours=24) + WINDOW_MARGIN / 2
    assert decide(TEXT, **recipient(last_inbound_at=closing)) == "outside_window"


def test_a_window_open_beyond_the_margin_is_open() -> None:
    open_ = NOW - timedelta(hours=24) + WINDOW_MARGIN * 2
    assert decide(TEXT, **recipient(last_inbound_at=open_)) is None


@pytest.mark.parametrize(("category", "marketing"), [
    ("MARKETING", True), ("UTILITY", False), ("AUTHENTICATION", False), (None, True),
])
def test_a_template_is_marketing_unless_its_category_says_otherwise(category: str | None, marketing: bool) -> None:
    plan = plan_of({"template": {"name": "t", "language": "en", "waba_id": "W1", "category": category}})
    assert (plan.is_template, plan.marketing, plan.waba_id) == (True, marketing, "W1")


def test_a_text_broadcast_is_marketing() -> None:
    assert plan_of({"text": "Sale"}) == Plan(is_template=False, marketing=True)
