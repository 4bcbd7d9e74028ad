"""The provider calls through the real Anthropic and OpenAI SDKs against the loopback
stand-ins: what goes over the wire (model, system prompt, turns, key header, ``store: false``),
what comes back, and how failures are reported."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator

import pytest

from appliance.ai.prompt import Prompt, Turn
from appliance.ai.providers import Completion, ProviderError, Providers
from appliance.settings import Settings
from tests.appliance.ai_helpers import (  # noqa: F401 - fixtures
    ANTHROPIC_KEY,
    ANTHROPIC_MODEL,
    OPENAI_KEY,
    OPENAI_MODEL,
    anthropic_api,
    openai_api,
    settings,
)
from tests.standins.anthropic_api import AnthropicStandIn
from tests.standins.openai_api import OpenAIStandIn

PROMPT = Prompt("You are the shop's assistant.", (Turn("user", "Hi"), Turn("assistant", "Hello!"),
                                                  Turn("user", "When do you open?")))


@pytest.fixture
async def providers(settings: Settings) -> AsyncIterator[Providers]:
    p = Providers(settings)
    yield p
    await p.aclose()


async def test_anthropic_request_on_the_wire(providers: Providers, anthropic_api: AnthropicStandIn) -> None:
    anthropic_api.reply("We open at 10.")
    result = await providers.complete("anthropic", ANTHROPIC_KEY, ANTHROPIC_MODEL, PROMPT)
    assert result == Completion("We open at 10.")
    request = anthropic_api.last
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert anthropic_api.key_of(request.headers) == ANTHROPIC_KEY
    assert "anthropic-version" in request.headers
    assert request.json == {
        "model": ANTHROPIC_MODEL, "max_tokens": 1024, "system": "You are the shop's assistant.",
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                     {"role": "user", "content": "When do you open?"}],
    }


async def test_openai_request_on_the_wire_with_store_false(providers: Providers, openai_api: OpenAIStandIn) -> None:
    openai_api.reply("We open at 10.")
    result = await providers.complete("openai", OPENAI_KEY, OPENAI_MODEL, PROMPT)
    assert result == Completion("We open at 10.")
    request = openai_api.last
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert request.json["store"] is False
    assert request.json["model"] == OPENAI_MODEL
    assert request.json["messages"] == [
        {"role": "system", "content": "You are the shop's assistant."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "When do you open?"},
    ]
    assert set(request.json) <= {"model", "messages", "store", "max_completion_tokens"}


@pytest.mark.parametrize(("status", "error_type", "reason"), [
    (401, None, "auth_failed"),
    (403, "permission_error", "permission_denied"),
    (404, "not_found_error", "model_not_found"),
    (400, "invalid_request_error", "bad_request"),
    (429, "rate_limit_error", "rate_limited"),
    (500, "api_error", "provider_error"),
    (529, "overloaded_error", "overloaded"),
])
async def test_anthropic_errors_have_a_reason(
    providers: Providers, anthropic_api: AnthropicStandIn, status: int, error_type: str | None, reason: str
) -> None:
    anthropic_api.fail(status, error_type)
    with pytest.raises(ProviderError) as caught:
        await providers.complete("anthropic", ANTHROPIC_KEY, ANTHROPIC_MODEL, PROMPT)
    assert (caught.value.reason, caught.value.status) == (reason, status)
    assert caught.value.__suppress_context__  # the SDK's exception (and its message) is not chained
    assert str(caught.value) == reason  # never the provider's message


@pytest.mark.parametrize(("status", "reason"), [(401, "auth_failed"), (429, "rate_limited"), (500, "provider_error")])
async def test_openai_errors_have_a_reason(
    providers: Providers, openai_api: OpenAIStandIn, status: int, reason: str
) -> None:
    openai_api.fail(status)
    with pytest.raises(ProviderError) as caught:
        await providers.complete("openai", OPENAI_KEY, OPENAI_MODEL, PROMPT)
    assert caught.value.reason == reason


async def test_a_wrong_key_is_refused_by_the_provider(providers: Providers, anthropic_api: AnthropicStandIn) -> None:
    with pytest.raises(ProviderError) as caught:
        await providers.complete("anthropic", "sk-ant-wrong-key-000", ANTHROPIC_MODEL, PROMPT)
    assert caught.value.reason == "auth_failed"


async def test_retries_are_bounded_by_the_setting(settings: Settings, anthropic_api: AnthropicStandIn) -> None:
    providers = Providers(settings.model_copy(update={"ai_max_retries": 2}))
    try:
        anthropic_api.fail(529, "overloaded_error", times=2)
        assert (await providers.complete("anthropic", ANTHROPIC_KEY, ANTHROPIC_MODEL, PROMPT)).text
        assert len(anthropic_api.requests) == 3
        anthropic_api.fail(500, times=5)
        with pytest.raises(ProviderError):
            await providers.complete("anthropic", ANTHROPIC_KEY, ANTHROPIC_MODEL, PROMPT)
        assert len(anthropic_api.requests) == 3 + 3  # one call and two retries
    finally:
        await providers.aclose()


async def test_a_slow_provider_times_out(settings: Settings, openai_api: OpenAIStandIn) -> None:
    providers = Providers(settings.model_copy(update={"ai_timeout_seconds": 0.3}))
    try:
        openai_api.delay_next(1.5)
        with pytest.raises(ProviderError) as caught:
            await providers.complete("openai", OPENAI_KEY, OPENAI_MODEL, PROMPT)
        assert caught.value.reason == "timeout"
    finally:
        await providers.aclose()


async def test_unreachable_provider(settings: Settings) -> None:
    providers = Providers(settings.model_copy(update={"anthropic_base_url": "http://127.0.0.1:9"}))
    try:
        with pytest.raises(ProviderError) as caught:
            await providers.complete("anthropic", ANTHROPIC_KEY, ANTHROPIC_MODEL, PROMPT)
        assert caught.value.reason == "unreachable"
    finally:
        await providers.aclose()


async def test_refusals_are_reported(
    providers: Providers, anthropic_api: AnthropicStandIn, openai_api: OpenAIStandIn
) -> None:
    anthropic_api.reply("", stop_reason="refusal")
    openai_api.reply("", refusal="I can't help with that.")
    assert (await providers.complete("anthropic", ANTHROPIC_KEY, ANTHROPIC_MODEL, PROMPT)).refused
    assert (await providers.complete("openai", OPENAI_KEY, OPENAI_MODEL, PROMPT)).refused


async def test_a_changed_key_gets_a_new_client(providers: Providers, anthropic_api: AnthropicStandIn) -> None:
    await providers.complete("anthropic", ANTHROPIC_KEY, ANTHROPIC_MODEL, PROMPT)
    anthropic_api.api_key = "sk-ant-rotated-key-123"
    await providers.complete("anthropic", "sk-ant-rotated-key-123", ANTHROPIC_MODEL, PROMPT)
    assert [anthropic_api.key_of(r.headers) for r in anthropic_api.requests] == [ANTHROPIC_KEY, "sk-ant-rotated-key-123"]


async def test_sdk_debug_logs_stay_off_even_at_debug_level(
    providers: Providers, anthropic_api: AnthropicStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    logging.getLogger("anthropic").setLevel(logging.DEBUG)
    with caplog.at_level(logging.DEBUG):
        await providers.complete("anthropic", ANTHROPIC_KEY, "claude-haiku-5-5", PROMPT)
        await providers.complete("anthropic", ANTHROPIC_KEY, ANTHROPIC_MODEL, PROMPT)
    text = "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "When do you open?" not in text
    assert ANTHROPIC_KEY not in text


def test_the_sdks_are_not_imported_with_the_app() -> None:
    import subprocess

    code = "import sys, appliance.app, appliance.ai; print(sorted(m for m in sys.modules if m.split('.')[0] in ('anthropic', 'openai', 'pypdf')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
