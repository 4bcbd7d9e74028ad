"""Calls to the AI providers through their official SDKs: Anthropic Messages
(``messages.create``) and OpenAI Chat Completions (``chat.completions.create``).

- The SDKs are imported on the first call, never at start (``bench/footprint.py`` checks that
  a serving process has not loaded them), in a worker thread: importing ``anthropic`` takes
  seconds, which the event loop must not wait for.
- Each client gets the base URL from ``AAT_ANTHROPIC_BASE_URL`` / ``AAT_OPENAI_BASE_URL`` (the
  SDK's default when unset), ``timeout=AAT_AI_TIMEOUT_SECONDS`` and
  ``max_retries=AAT_AI_MAX_RETRIES`` (the SDKs retry connection errors, 408, 409, 429 and 5xx
  with backoff, honouring ``retry-after``). The SDKs bring their own HTTP client (``httpx2``),
  so these calls do not go through the app's shared ``httpx`` client.
- Clients are cached per (provider, key fingerprint) for the life of the app, so a changed key
  gets a new client; :meth:`Providers.aclose` closes them at shutdown.
- Retention: OpenAI gets ``store=False`` (the completion is not kept for distillation/evals);
  the Anthropic Messages API has no such flag (its retention is the account's policy). No user
  ids or metadata are sent.
- Privacy in logs: the SDKs log request options (the prompt) at DEBUG, and ``AAT_LOG_LEVEL=debug``
  would let them through; their loggers are held at WARNING.

Errors become :class:`ProviderError` with a short ``reason`` (``auth_failed``, ``rate_limited``,
``overloaded``, ``timeout``, ...) and never the provider's message, which can quote the prompt.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from appliance.settings import Settings

if TYPE_CHECKING:  # prompts are built by the first ai_reply step (executor), not at start
    from appliance.ai.prompt import Prompt

__all__ = ["Completion", "ProviderError", "Providers", "MAX_OUTPUT_TOKENS", "REASONS", "warm_up"]

MAX_OUTPUT_TOKENS = 1024
_OPENAI_MAX_COMPLETION_TOKENS = 4096  # reasoning models spend part of it before answering
_CACHE_SIZE = 8
_QUIET = ("anthropic", "openai", "httpx2", "httpcore2")

# reason -> what the inbox note says (no secrets, no content)
REASONS = {
    "not_configured": "AI replies are not set up: choose a provider and model and enter an API key in Settings > AI",
    "auth_failed": "the AI provider refused the API key (401): enter a valid key in Settings > AI",
    "permission_denied": "the API key may not use this model (403)",
    "model_not_found": "the AI provider does not know the model (404): check the model name in Settings > AI",
    "bad_request": "the AI provider refused the request (400)",
    "rate_limited": "the AI provider's rate limit or quota was reached (429)",
    "overloaded": "the AI provider is overloaded (529); try again later",
    "provider_error": "the AI provider had an internal error (5xx)",
    "timeout": "the AI provider did not answer in time",
    "unreachable": "the AI provider could not be reached",
    "empty_reply": "the AI provider returned an empty answer",
    "limit_reached": "this month's AI reply limit of the plan is reached",
}


@dataclass(frozen=True, slots=True)
class Completion:
    text: str | None
    refused: bool = False  # the model declined to answer (a safety refusal)


class ProviderError(Exception):
    """A provider call failed; ``reason`` is a key of :data:`REASONS` (or ``http_<status>``)."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def _status_reason(status: int) -> str:
    if status == 401:
        return "auth_failed"
    if status == 403:
        return "permission_denied"
    if status == 404:
        return "model_not_found"
    if status in (400, 413, 422):
        return "bad_request"
    if status == 429:
        return "rate_limited"
    if status == 529:
        return "overloaded"
    if status >= 500:
        return "provider_error"
    return f"http_{status}"


def _translate(exc: Exception, sdk: Any) -> ProviderError:
    if isinstance(exc, sdk.APIStatusError):
        return ProviderError(_status_reason(exc.status_code), exc.status_code)
    if isinstance(exc, sdk.APITimeoutError):
        return ProviderError("timeout")
    if isinstance(exc, sdk.APIConnectionError):
        return ProviderError("unreachable")
    return ProviderError("provider_error")


_SDKS = {"anthropic": "anthropic", "openai": "openai"}


async def warm_up(provider: str | None) -> None:
    """Import ``provider``'s SDK in a worker thread (seconds of work), so that the first AI
    reply does not wait for it. Called when AI settings are saved and at start when they exist;
    an appliance that never uses AI never imports an SDK."""
    if provider in _SDKS:
        await asyncio.to_thread(importlib.import_module, _SDKS[provider])


class Providers:
    """The SDK clients of one running appliance."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: OrderedDict[tuple[str, str], Any] = OrderedDict()

    def _make_client(self, provider: str, api_key: str) -> Any:
        """A new SDK client (synchronous: importing an SDK takes seconds, so callers run this in
        a worker thread rather than on the event loop)."""
        s = self._settings
        if provider == "anthropic":
            import anthropic  # noqa: PLC0415 - lazily, on the first AI reply

            client = anthropic.AsyncAnthropic(api_key=api_key, base_url=s.anthropic_base_url,
                                              timeout=s.ai_timeout_seconds, max_retries=s.ai_max_retries)
            _ = client.messages  # resources load lazily: load them here too, off the loop
        else:
            import openai  # noqa: PLC0415 - lazily, on the first AI reply

            client = openai.AsyncOpenAI(api_key=api_key, base_url=s.openai_base_url,
                                        timeout=s.ai_timeout_seconds, max_retries=s.ai_max_retries)
            _ = client.chat.completions
        for name in _QUIET:
            logging.getLogger(name).setLevel(logging.WARNING)
        return client

    async def _client(self, provider: str, api_key: str) -> Any:
        cache_key = (provider, hashlib.sha256(api_key.encode()).hexdigest())
        client = self._clients.get(cache_key)
        if client is None:
            client = await asyncio.to_thread(self._make_client, provider, api_key)
            self._clients[cache_key] = client
            while len(self._clients) > _CACHE_SIZE:
                # An evicted client may still serve a call in flight; its pool goes with it.
                self._clients.popitem(last=False)
        self._clients.move_to_end(cache_key)
        return client

    async def complete(self, provider: str, api_key: str, model: str, prompt: Prompt) -> Completion:
        """One answer to ``prompt``; raises :class:`ProviderError`."""
        client = await self._client(provider, api_key)
        if provider == "anthropic":
            import anthropic  # noqa: PLC0415

            try:
                response = await client.messages.create(
                    model=model, max_tokens=MAX_OUTPUT_TOKENS, system=prompt.system, messages=prompt.as_messages(),
                )
            except anthropic.AnthropicError as exc:
                raise _translate(exc, anthropic) from None
            text = "".join(getattr(block, "text", "") for block in response.content if block.type == "text")
            return Completion(text.strip() or None, refused=response.stop_reason == "refusal")
        import openai  # noqa: PLC0415

        try:
            response = await client.chat.completions.create(
                model=model, messages=[{"role": "system", "content": prompt.system}, *prompt.as_messages()],
                store=False, max_completion_tokens=_OPENAI_MAX_COMPLETION_TOKENS,
            )
        except openai.OpenAIError as exc:
            raise _translate(exc, openai) from None
        if not response.choices:
            return Completion(None)
        message = response.choices[0].message
        return Completion((message.content or "").strip() or None, refused=bool(getattr(message, "refusal", None)))

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            try:
                await client.close()
            except Exception:  # noqa: BLE001 - closing at shutdown: nothing left to do about it
                pass
