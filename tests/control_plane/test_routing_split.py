"""Splitting Meta deliveries by asset (pure) and the retry schedule."""

from __future__ import annotations

import json

import msgspec
import pytest

from appliance.errors import BadRequest
from control_plane.routing.schedule import DAY, RetryPolicy
from control_plane.routing.service import RoutingTable
from control_plane.routing.split import body_of, inner_entries, split
from tests.control_plane.harness import page_body, page_entry, whatsapp_body


def test_page_entries_are_split_by_page_and_forwarded_byte_for_byte() -> None:
    raw = b'{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"u1"},"recipient":{"id":"1"},' \
          b'"message":{"mid":"m","text":"\\u00e4"}}]},{"id":"2","changes":[{"field":"feed","value":' \
          b'{"from":{"id":"u2"},"item":"comment"}}]}]}'
    delivery = split(raw)
    assert delivery.object == "page"
    assert [(p.kind, p.asset_id, p.events) for p in delivery.parts] == [("messenger", "1", 1), ("messenger", "2", 1)]
    # Meta's escaped bytes are kept as they were.
    assert delivery.parts[0].entry == raw[len(b'{"object":"page","entry":['):raw.index(b',{"id":"2"')]
    assert delivery.parts[0].users == {"u1"} and delivery.parts[1].users == {"u2"}


def test_instagram_entries_route_by_account_id() -> None:
    raw = json.dumps({"object": "instagram", "entry": [page_entry("1784", "igsid", "m1", "hi")]}).encode()
    assert [(p.kind, p.asset_id) for p in split(raw).parts] == [("instagram", "1784")]


def test_a_whatsapp_entry_naming_two_numbers_is_split_into_two_entries() -> None:
    raw = whatsapp_body("900", [("11", "4911", "w1", "one"), ("22", "4922", "w2", "two"), ("11", "4933", "w3", "three")])
    parts = split(raw).parts
    assert [(p.kind, p.asset_id, p.events) for p in parts] == [("whatsapp", "11", 2), ("whatsapp", "22", 1)]
    first = msgspec.json.decode(parts[0].entry)
    assert first["id"] == "900"
    assert [c["value"]["messages"][0]["id"] for c in first["changes"]] == ["w1", "w3"]
    assert parts[0].users == {"4911", "4933"} and parts[1].users == {"4922"}


def test_a_whatsapp_entry_for_one_number_is_forwarded_unchanged() -> None:
    raw = whatsapp_body("900", [("11", "4911", "w1", "one")])
    (part,) = split(raw).parts
    assert part.entry == raw[len(b'{"object":"whatsapp_business_account","entry":['):-2]


def test_whatsapp_changes_without_a_number_route_by_waba() -> None:
    raw = json.dumps({"object": "whatsapp_business_account", "entry": [
        {"id": "900", "changes": [{"field": "message_template_status_update", "value": {"event": "APPROVED"}}]}]}).encode()
    assert [(p.kind, p.asset_id) for p in split(raw).parts] == [("whatsapp_waba", "900")]


@pytest.mark.parametrize("body", [b"", b"[]", b"not json", b'{"object":"page","entry":{}}'])
def test_what_is_not_a_delivery_is_refused(body: bytes) -> None:
    with pytest.raises(BadRequest):
        split(body)


def test_unknown_objects_and_odd_entries_are_parts_nobody_routes() -> None:
    parts = split(b'{"object":"permissions","entry":[{"id":"5"},7]}').parts
    assert [(p.kind, p.asset_id) for p in parts] == [("unknown", "5"), ("unknown", None)]


def test_bodies_merge_without_parsing() -> None:
    a, b = page_entry("1", "u", "m1", "x"), page_entry("1", "u", "m2", "y")
    one, two = (body_of("page", [json.dumps(e).encode()]) for e in (a, b))
    merged = body_of("page", [inner_entries("page", one), inner_entries("page", two)])
    assert json.loads(merged) == json.loads(page_body(a, b))


def test_the_retry_schedule_then_hourly_then_dead_after_seven_days() -> None:
    policy = RetryPolicy()
    received = 1_000_000.0
    delays, now, attempts = [], received, 0
    while True:
        attempts += 1
        due = policy.next_attempt(attempts, received, now)
        if due is None:
            break
        delays.append(due - now)
        now = due
    assert delays[:7] == [5, 30, 120, 600, 1800, 3600, 3600]
    assert set(delays[6:]) == {3600}
    assert now <= received + 7 * DAY < now + 3600


def test_a_waba_routes_until_its_last_number_is_disconnected() -> None:
    table = RoutingTable()
    table.add("messenger", "page-1", "t1")
    table.add("whatsapp", "num-1", "t1", "waba-1")
    table.add("whatsapp", "num-2", "t1", "waba-1")
    table.remove("whatsapp", "num-1")
    assert table.lookup("whatsapp_waba", "waba-1") == "t1"
    table.remove("whatsapp", "num-2")
    # The tenant still has a Page, but its WABA no longer routes to it.
    assert table.lookup("whatsapp_waba", "waba-1") is None
    assert table.lookup("messenger", "page-1") == "t1"


@pytest.mark.parametrize(("raw", "expected"), [
    (b'{"id":12,"messaging":[{"sender":{"id":5},"recipient":{"id":"12"}}]}', ("12", 1, {"5"})),
    (b'{"id":true,"messaging":[1,{"sender":{"id":"x"}}]}', (None, 1, {"x"})),  # read the generic way
    (b'{"id":"7","messaging":[{"sender":{"id":"a","x":[1,2]},"recipient":{"id":"7"},"message":{"text":"hi"}}],'
     b'"changes":[{"value":"s"},{"value":{"statuses":[{"recipient_id":33}]}}]}', ("7", 3, {"a", "33"})),
    (b'{"id":"9","standby":[{"sender":{"id":""},"recipient":{"id":"9"}}],"changes":[{"value":{"from":{"id":"c"},'
     b'"contacts":[{"wa_id":"w","user_id":"US.1"}]}}],"messaging":null}', ("9", 2, {"c", "w", "US.1"})),
])
def test_entries_of_any_shape_give_the_same_routing_facts(raw: bytes, expected: tuple[object, int, set[str]]) -> None:
    """Typed decoding of the fields routing reads, with the generic reading for odd shapes."""
    (part,) = split(b'{"object":"page","entry":[' + raw + b"]}").parts
    assert (part.asset_id, part.events, part.users) == expected and part.entry == raw
