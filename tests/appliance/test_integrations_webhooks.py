"""Outbound webhook delivery: signed bodies built from domain events, retries with backoff for
24 hours and then dead, the address judged again at every attempt.

These tests drive a :class:`Dispatcher` of their own on a workspace (no app) with a clock they
move by hand; ``test_integrations_webhooks_api`` goes through the app."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from appliance import events
from appliance.channels.events import ContactRef
from appliance.contacts import store as contacts
from appliance.contacts.routes import public_contact
from appliance.integrations.webhooks import Dispatcher, RetryPolicy, backoff_seconds
from appliance.integrations.webhooks import store as hooks
from appliance.integrations.webhooks.payload import new_secret, sign, verify
from appliance.store.workspace import Workspace
from appliance.timeutil import from_iso, to_iso
from tests.appliance.api_helpers import rows
from tests.appliance.integrations_helpers import Clock
from tests.helpers import connect_channel
from tests.standins.http_target import Answer, HttpTarget

PAGE = "112233445566778"


@pytest.fixture
def receiver() -> Iterator[HttpTarget]:
    server = HttpTarget().start()
    yield server
    server.stop()




def subscribe(workspace: Workspace, url: str, types: list[str], clock: Clock, *, active: bool = True) -> tuple[int, str]:
    """A subscription made the way the API makes it (sealed URL and secret)."""
    secret = new_secret()

    def seal(sub_id: int) -> tuple[str, str]:
        return (workspace.fields.encrypt(url, hooks.url_context(sub_id)),
                workspace.fields.encrypt(secret, hooks.secret_context(sub_id)))

    row = workspace.gateway.write_sync(lambda db: hooks.create_subscription(
        db, events_=types, description=None, active=active, seal=seal, now=to_iso(clock())))
    return int(row["id"]), secret


def emit(workspace: Workspace, type_: str, clock: Clock, **ids: int) -> None:
    workspace.gateway.write_sync(lambda db: events.emit(db, type_, now=to_iso(clock()), **ids))


def deliveries(workspace: Workspace) -> list[dict[str, Any]]:
    return rows(workspace, "SELECT * FROM webhook_deliveries ORDER BY id")


def attempts(workspace: Workspace) -> list[dict[str, Any]]:
    return rows(workspace, "SELECT * FROM webhook_attempts ORDER BY id")


def dispatcher(workspace: Workspace, clock: Clock, *, allow_private: bool = True, **policy: Any) -> Dispatcher:
    return Dispatcher(db=workspace.gateway, fields=workspace.fields, allow_private=allow_private,
                      policy=RetryPolicy(**{"base_seconds": 10.0, "attempt_timeout": 2.0, **policy}),
                      clock=clock, rng=random.Random(7))


# --- signing -----------------------------------------------------------------------------------

def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"id":"evt_1"}'
    header = sign("whsec_test", 1764184687, body)
    expected = hmac.new(b"whsec_test", b"1764184687." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1764184687,v1={expected}"
    assert verify("whsec_test", header, body, now=1764184687 + 10)
    assert not verify("whsec_other", header, body, now=1764184687)
    assert not verify("whsec_test", header, body + b" ", now=1764184687)
    assert not verify("whsec_test", header, body, now=1764184687 + 301)  # too old: a replay


def test_backoff_doubles_with_equal_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(base_seconds=10, cap_seconds=3600)
    rng = random.Random(1)
    for attempt in range(1, 40):
        ceiling = min(3600, 10 * 2 ** (attempt - 1))
        assert ceiling / 2 <= backoff_seconds(attempt, policy, rng) <= ceiling


# --- delivery, retries, give-up (a dispatcher of the test's own) ----------------------------------

async def test_a_failing_receiver_gets_the_event_again_with_backoff_until_it_answers_2xx(
    workspace: Workspace, receiver: HttpTarget
) -> None:
    clock = Clock()
    sub_id, secret = subscribe(workspace, f"{receiver.base_url}/hook", ["contact.updated"], clock)
    receiver.secret = secret
    receiver.script(Answer(status=503), Answer(status=500), Answer(delay=1.0), Answer(status=204, body=b""))
    emit(workspace, "contact.updated", clock, contact_id=999)
    worker = dispatcher(workspace, clock, attempt_timeout=0.3)
    waits = []
    for _ in range(4):
        await worker.run_once()
        delivery = deliveries(workspace)[0]
        if delivery["status"] != "pending":
            break
        waits.append((from_iso(delivery["next_attempt_at"]) - clock()).total_seconds())
        clock.set(from_iso(delivery["next_attempt_at"]))
    await worker.aclose()
    assert delivery["status"] == "delivered" and delivery["attempts"] == 4
    assert [(a["status"], a["error"]) for a in attempts(workspace)] == [
        (503, "http_503"), (500, "http_500"), (None, "timeout"), (204, None)]
    for n, wait in enumerate(waits, start=1):
        assert 10 * 2 ** (n - 1) / 2 <= wait <= 10 * 2 ** (n - 1)
    assert all(r.signature_ok for r in receiver.requests)
    ids = {r.json["id"] for r in receiver.requests if r.body}
    assert len(ids) == 1  # the same event id every time: receivers dedupe on it
    assert [r.headers["x-aat-attempt"] for r in receiver.requests] == ["1", "2", "3", "4"]


async def test_after_24_hours_the_last_failure_makes_the_delivery_dead(workspace: Workspace, receiver: HttpTarget) -> None:
    clock = Clock()
    subscribe(workspace, f"{receiver.base_url}/hook", ["flow.completed"], clock)
    receiver.script(*[Answer(status=500) for _ in range(100)])
    emit(workspace, "flow.completed", clock, flow_id=1, run_id=2)
    event_at = clock()
    worker = dispatcher(workspace, clock, base_seconds=60, cap_seconds=3600)
    while True:
        await worker.run_once()
        delivery = deliveries(workspace)[0]
        if delivery["status"] != "pending":
            break
        assert from_iso(delivery["next_attempt_at"]) <= event_at + timedelta(hours=24)
        clock.set(from_iso(delivery["next_attempt_at"]))
    assert delivery["status"] == "dead"
    log = attempts(workspace)
    assert from_iso(log[-1]["at"]) == event_at + timedelta(hours=24)  # a last try at the mark
    assert 25 <= len(log) <= 60  # about 30-45 with these settings
    clock.advance(days=2)
    assert (await worker.run_once())[1] == 0  # dead stays dead
    await worker.aclose()


async def test_a_receiver_with_another_secret_refuses_and_the_delivery_is_retried(
    workspace: Workspace, receiver: HttpTarget
) -> None:
    clock = Clock()
    subscribe(workspace, f"{receiver.base_url}/hook", ["contact.deleted"], clock)
    receiver.secret = new_secret()
    emit(workspace, "contact.deleted", clock, contact_id=5)
    worker = dispatcher(workspace, clock)
    await worker.run_once()
    await worker.aclose()
    assert [r.signature_ok for r in receiver.requests] == [False]
    assert (deliveries(workspace)[0]["status"], deliveries(workspace)[0]["last_status"]) == ("pending", 401)


async def test_redirects_are_failures_not_followed(workspace: Workspace, receiver: HttpTarget) -> None:
    clock = Clock()
    subscribe(workspace, f"{receiver.base_url}/hook", ["contact.deleted"], clock)
    receiver.script(Answer.redirect(f"{receiver.base_url}/elsewhere"))
    emit(workspace, "contact.deleted", clock, contact_id=5)
    worker = dispatcher(workspace, clock)
    await worker.run_once()
    await worker.aclose()
    assert [r.path for r in receiver.requests] == ["/hook"]
    assert attempts(workspace)[0]["error"] == "http_302"


async def test_only_subscribed_events_after_the_subscription_are_delivered_in_order(
    workspace: Workspace, receiver: HttpTarget
) -> None:
    clock = Clock()
    emit(workspace, "contact.updated", clock, contact_id=1)  # before anyone subscribed
    clock.advance(seconds=1)
    subscribe(workspace, f"{receiver.base_url}/hook", ["contact.updated", "contact.deleted"], clock)
    for n, type_ in enumerate(["contact.updated", "message.created", "contact.deleted", "contact.updated"]):
        emit(workspace, type_, clock, contact_id=10 + n, message_id=20 + n)
    worker = dispatcher(workspace, clock, concurrency=1)
    for _ in range(4):
        await worker.run_once()
    await worker.aclose()
    bodies = [r.json for r in receiver.requests]
    assert [(b["type"], b["data"]["contact_id"]) for b in bodies] == [
        ("contact.updated", "10"), ("contact.deleted", "12"), ("contact.updated", "13")]
    # Fanning out again (a crash before the cursor moved) creates nothing twice.
    workspace.gateway.write_sync(lambda db: db.execute("UPDATE webhook_dispatch SET last_event_id = 0"))
    created = workspace.gateway.write_sync(lambda db: hooks.fan_out(db, now=to_iso(clock()), lifetime=timedelta(hours=24)))
    assert created == 0 and len(deliveries(workspace)) == 3


async def test_the_body_is_the_resource_as_the_api_shows_it_and_just_ids_once_it_is_gone(
    workspace: Workspace, receiver: HttpTarget
) -> None:
    clock = Clock()
    channel = connect_channel(workspace, "messenger", PAGE)
    subscribe(workspace, f"{receiver.base_url}/hook", ["contact.created", "contact.updated"], clock)
    contact_id, _ = workspace.gateway.write_sync(
        lambda db: contacts.upsert_contact(db, channel, ContactRef(external_id="2460001", name="Ana Lima"), to_iso(clock())))
    emit(workspace, "contact.updated", clock, contact_id=contact_id + 1000)  # no such contact
    worker = dispatcher(workspace, clock)
    await worker.run_once()
    await worker.aclose()
    created, gone = sorted((r.json for r in receiver.requests), key=lambda b: b["id"])
    expected = public_contact(workspace.gateway.read_sync(contacts.get_contact, contact_id))
    assert created["type"] == "contact.created"
    assert created["data"] == {"contact_id": str(contact_id), "contact": json.loads(json.dumps(expected))}
    assert gone["data"] == {"contact_id": str(contact_id + 1000)}
    assert set(created) == {"id", "type", "created_at", "delivery_id", "data"}


async def test_a_paused_subscription_gets_nothing_and_its_pending_deliveries_expire(
    workspace: Workspace, receiver: HttpTarget
) -> None:
    clock = Clock()
    sub_id, _ = subscribe(workspace, f"{receiver.base_url}/hook", ["contact.deleted"], clock)
    receiver.script(Answer(status=500))
    emit(workspace, "contact.deleted", clock, contact_id=1)
    worker = dispatcher(workspace, clock)
    await worker.run_once()
    workspace.gateway.write_sync(lambda db: hooks.update_subscription(db, sub_id, {"active": False}, to_iso(clock())))
    emit(workspace, "contact.deleted", clock, contact_id=2)
    clock.advance(hours=1)
    assert (await worker.run_once()) == (0, 0)
    clock.advance(hours=25)
    expired = workspace.gateway.write_sync(lambda db: hooks.expire(db, to_iso(clock() - timedelta(hours=1)), to_iso(clock())))
    await worker.aclose()
    assert expired == 1
    assert [(d["status"], d["last_error"]) for d in deliveries(workspace)] == [("dead", "http_500")]
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/hook", "http://2130706433:{port}/hook",
                                 "http://[::ffff:127.0.0.1]:{port}/hook", "http://hooks.example.test:{port}/hook"])
async def test_the_address_is_judged_again_at_every_delivery(workspace: Workspace, receiver: HttpTarget, url: str) -> None:
    """A URL saved while allowed (or a name that later resolves to loopback: DNS rebinding)
    is refused when it is delivered to."""
    clock = Clock()
    subscribe(workspace, url.format(port=receiver.port), ["contact.deleted"], clock)
    emit(workspace, "contact.deleted", clock, contact_id=1)

    async def rebinding(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return [ipaddress.ip_address("127.0.0.1")]

    worker = dispatcher(workspace, clock, allow_private=False)
    worker.resolver = rebinding
    await worker.run_once()
    await worker.aclose()
    assert receiver.requests == []
    assert [(a["status"], a["error"]) for a in attempts(workspace)] == [(None, "blocked_address")]
    assert deliveries(workspace)[0]["status"] == "pending"  # retried: the address may be fixed


def test_finished_deliveries_are_purged_after_the_retention_and_pending_ones_kept(workspace: Workspace) -> None:
    clock = Clock()
    subscribe(workspace, "https://hooks.example.com/x", ["contact.deleted"], clock)
    for n in range(3):
        emit(workspace, "contact.deleted", clock, contact_id=n)
    workspace.gateway.write_sync(lambda db: hooks.fan_out(db, now=to_iso(clock()), lifetime=timedelta(hours=24)))
    first, second, _ = [d["id"] for d in deliveries(workspace)]
    for delivery_id, outcome in ((first, "delivered"), (second, "dead")):
        workspace.gateway.write_sync(lambda db, d=delivery_id, o=outcome: hooks.record_attempt(
            db, d, at=to_iso(clock()), status=200, error=None, duration_ms=5, outcome=o, retry_at=None,
            now=to_iso(clock())))
    purged = workspace.gateway.write_sync(lambda db: hooks.purge(db, to_iso(clock() + timedelta(days=31))))
    assert purged == 2
    assert [d["status"] for d in deliveries(workspace)] == ["pending"]
    assert attempts(workspace) == []
