"""Every adapter in the registry keeps the contract of appliance.channels.base."""

from __future__ import annotations

import inspect

import pytest

from appliance.channels import base
from appliance.channels.events import ParsedWebhook, ParseProblem
from tests.appliance.channel_helpers import load_fixture

EXPECTED = {
    "messenger": "page",
    "instagram": "instagram",
    "whatsapp": "whatsapp_business_account",
}


def test_the_registry_holds_the_three_channels():
    assert {name: a.webhook_object for name, a in base.ADAPTERS.items()} == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_adapter_implements_the_contract(name):
    adapter = base.adapter_for(name)
    assert adapter.name == name
    assert adapter.webhook_object == EXPECTED[name]
    assert base.adapter_for_object(EXPECTED[name]) is adapter
    assert callable(adapter.parse_webhook) and callable(adapter.render)
    assert not inspect.iscoroutinefunction(adapter.parse_webhook)
    assert not inspect.iscoroutinefunction(adapter.render)
    assert inspect.iscoroutinefunction(adapter.send)
    for method in ("parse_webhook", "render", "send"):
        contract = inspect.signature(getattr(base.ChannelAdapter, method))
        expected = [p for p in contract.parameters if p != "self"]
        assert list(inspect.signature(getattr(adapter, method)).parameters) == expected


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_adapters_never_raise_on_garbage(name):
    adapter = base.adapter_for(name)
    for payload in (None, [], "x", {}, {"entry": None}, {"entry": [None, 1, "x", {}]}):
        result = adapter.parse_webhook(payload)
        assert isinstance(result, ParsedWebhook)
        assert not result.events


@pytest.mark.parametrize(
    ("fixture", "channel"),
    [("messenger_text", "messenger"), ("instagram_text", "instagram"),
     ("whatsapp_text", "whatsapp")],
)
def test_parse_delivery_dispatches_by_object(fixture, channel):
    result = base.parse_delivery(load_fixture(fixture))
    assert result.problems == [] and result.ignored == 0
    assert [e.channel for e in result.events] == [channel]


@pytest.mark.parametrize("payload", [{"object": "user", "entry": []}, {"entry": []},
                                     {"object": 5}])
def test_parse_delivery_reports_an_unknown_object(payload):
    assert base.parse_delivery(payload) == ParsedWebhook(
        problems=[ParseProblem("object", "unknown or missing webhook object")]
    )


def test_parse_delivery_reports_a_body_that_is_not_an_object():
    assert base.parse_delivery([1]).problems == [
        ParseProblem("$", "the body is not a JSON object")
    ]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_an_adapter_refuses_another_channels_delivery(name):
    other = next(o for n, o in EXPECTED.items() if n != name)
    result = base.adapter_for(name).parse_webhook({"object": other, "entry": []})
    assert result.problems == [ParseProblem("object", f"not a {EXPECTED[name]} delivery")]
