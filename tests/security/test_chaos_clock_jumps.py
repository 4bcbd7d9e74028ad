"""Chaos: the wall clock jumps (an NTP step, a VM resumed from a snapshot, a wrong RTC).

Flow delays are ``flow_timers`` rows claimed once, by whichever of the scheduled huey task and
the minutely sweep comes first (appliance/flows/tasks.py). The clock seam is the one the
project uses for time passing: ``fire_due_timers(runtime, due_before)`` / ``fire_one(runtime,
token, due_before)`` take "now" as an argument. Through the real stack (signed webhooks in,
the Graph stand-in out):

- a jump forwards past several pending delays fires each once, even when the sweep and the
  scheduled tasks race for them after the jump, and nothing fires again later;
- a jump backwards fires nothing early: neither the sweep nor a scheduled task claims a timer
  before its due time, and it fires once when that time comes.

The messaging-window arithmetic (appliance/outbox/policy.py) takes ``now`` too: a clock that
went back behind the contact's last message (a negative age) still counts as inside the
24-hour window, and the send-window wake-up (appliance/flows/timing.py) is never earlier
than the delay asked for.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from litestar.testing import AsyncTestClient

from appliance.flows.models import Window
from appliance.flows.tasks import fire_due_timers, fire_one
from appliance.flows.timing import wake_time
from appliance.outbox.policy import decide
from appliance.store.rows import many
from appliance.store.workspace import Workspace
from appliance.timeutil import to_iso, utcnow
from tests.appliance.flow_run_helpers import ASSETS, publish_flow, say, sent, texts_of
from tests.helpers import connect_channel, make_token
from tests.standins.graph_api import GraphStandIn

FIRST = "I'll remind you in an hour."
REMINDER = "Here is your reminder."
CONTACTS = [f"24600020200000{i:02d}" for i in range(3)]
REMINDER_FLOW = {
    "schema": "aat.flow/v1", "name": "Remind in an hour",
    "triggers": [{"type": "keyword", "keywords": ["remind"]}],
    "start": "ok",
    "steps": {
        "ok": {"type": "message", "text": FIRST, "next": "wait"},
        "wait": {"type": "delay", "seconds": 3600, "next": "ping"},
        "ping": {"type": "message", "text": REMINDER},
    },
}


@pytest.fixture
async def reminders(client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn) -> list[str]:
    """Three Messenger contacts, each with a one-hour delay pending; returns the timer tokens."""
    connect_channel(workspace, "messenger", ASSETS["messenger"])
    await publish_flow(client, make_token(workspace, "admin"), REMINDER_FLOW)
    for contact in CONTACTS:
        await say(client, "messenger", "remind me", sender=contact)
    await sent(graph_api, len(CONTACTS))
    return _unfired(workspace)


def _unfired(workspace: Workspace) -> list[str]:
    return workspace.gateway.read_sync(lambda db: [r["token"] for r in many(
        db, "SELECT token FROM flow_timers WHERE fired_at IS NULL ORDER BY token")])


def _in(delta: timedelta) -> str:
    return to_iso(utcnow() + delta)


def _per_contact(graph_api: GraphStandIn) -> dict[str, list[str | None]]:
    result: dict[str, list[str | None]] = {contact: [] for contact in CONTACTS}
    for request in graph_api.requests:
        result[request.json["recipient"]["id"]] += texts_of([request])
    return result


async def _quiet(graph_api: GraphStandIn, count: int) -> None:
    """Let anything that would be sent twice reach the stand-in, then check the count."""
    await asyncio.sleep(0.3)
    assert len(graph_api.requests) == count


async def test_a_jump_forwards_fires_each_pending_delay_once_though_sweep_and_tasks_race(
    reminders: list[str], runtime: Any, graph_api: GraphStandIn, workspace: Workspace
) -> None:
    assert len(reminders) == len(CONTACTS)
    jumped = _in(timedelta(days=30))
    # After the jump the sweep and every scheduled task wake at once, on different threads.
    racers = [asyncio.to_thread(fire_due_timers, runtime, jumped),
              asyncio.to_thread(fire_due_timers, runtime, jumped),
              *(asyncio.to_thread(fire_one, runtime, token, jumped) for token in reminders)]
    await asyncio.gather(*racers)  # each sweep's "fired" counts the due rows it saw, not its claims
    await sent(graph_api, 2 * len(CONTACTS))
    assert _unfired(workspace) == []
    assert await asyncio.to_thread(fire_due_timers, runtime, _in(timedelta(days=60))) == {"fired": 0}
    await _quiet(graph_api, 2 * len(CONTACTS))
    assert _per_contact(graph_api) == {contact: [FIRST, REMINDER] for contact in CONTACTS}


async def test_a_jump_backwards_fires_nothing_early_and_the_delay_still_fires_once(
    reminders: list[str], runtime: Any, graph_api: GraphStandIn, workspace: Workspace
) -> None:
    back = _in(timedelta(days=-1))
    assert await asyncio.to_thread(fire_due_timers, runtime, back) == {"fired": 0}
    for token in reminders:  # a scheduled task woken while the clock is behind
        await asyncio.to_thread(fire_one, runtime, token, back)
    assert await asyncio.to_thread(fire_due_timers, runtime, _in(timedelta(minutes=59))) == {"fired": 0}
    await _quiet(graph_api, len(CONTACTS))
    assert _unfired(workspace) == reminders
    due = _in(timedelta(minutes=61))
    assert await asyncio.to_thread(fire_due_timers, runtime, due) == {"fired": len(CONTACTS)}
    await sent(graph_api, 2 * len(CONTACTS))
    assert await asyncio.to_thread(fire_due_timers, runtime, due) == {"fired": 0}
    await _quiet(graph_api, 2 * len(CONTACTS))
    assert _per_contact(graph_api) == {contact: [FIRST, REMINDER] for contact in CONTACTS}


@pytest.mark.parametrize("channel", ["whatsapp", "messenger", "instagram"])
@pytest.mark.parametrize("back", [timedelta(seconds=1), timedelta(hours=1), timedelta(days=2)])
def test_a_clock_behind_the_contacts_last_message_is_inside_the_window(channel: str, back: timedelta) -> None:
    last_inbound = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    decision = decide(channel, sent_by="bot", is_template=False, last_inbound_at=last_inbound,
                      now=last_inbound - back)
    assert decision.allowed, decision.reason


@pytest.mark.parametrize("back", [timedelta(minutes=5), timedelta(hours=3), timedelta(days=1)])
def test_a_send_window_wake_up_is_never_earlier_than_the_delay_after_a_jump_backwards(back: timedelta) -> None:
    window = Window.model_validate({"from": "09:00", "to": "17:00", "timezone": "Asia/Tbilisi"})
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC) - back
    wake = wake_time(now, 3600, window, contact_tz=None, default_tz="UTC")
    assert wake >= now + timedelta(seconds=3600)
    assert 9 <= wake.astimezone(ZoneInfo("Asia/Tbilisi")).hour < 17
