"""AI replies grounded in the workspace's knowledge base.

- ``/api/v1/settings/ai`` (:mod:`appliance.ai.routes`): provider, model, instructions and the
  customer's own API key (write-only, AES-256-GCM in the store);
- ``/api/v1/knowledge`` (:mod:`appliance.ai.knowledge.routes`): documents, their passages in
  an FTS5 index inside the encrypted database, search;
- the ``ai_reply`` flow step's executor (:mod:`appliance.ai.executor`), through the official
  Anthropic and OpenAI SDKs (:mod:`appliance.ai.providers`, imported on first use).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Coroutine
from typing import Any

from appliance.ai.executor import AiReplyExecutor
from appliance.ai.knowledge.routes import KnowledgeController
from appliance.ai import store as ai_store
from appliance.ai.providers import Providers, warm_up
from appliance.ai.routes import delete_ai_settings, get_ai_settings, put_ai_settings
from appliance.features import Feature

__all__ = ["FEATURE"]

_providers: weakref.WeakKeyDictionary[Any, Providers] = weakref.WeakKeyDictionary()


def _install(runtime: Any) -> None:
    providers = _providers[runtime] = Providers(runtime.settings)
    runtime.executors["ai_reply"] = AiReplyExecutor(providers)


async def _lifetime(runtime: Any) -> None:
    """Lives as long as the app: imports the configured provider's SDK in the background at
    start (the first reply then does not wait for it), closes the SDK clients at shutdown."""
    try:
        settings = await runtime.db.read(ai_store.read)
        await warm_up(settings["provider"])
        await asyncio.Event().wait()
    finally:
        providers = _providers.pop(runtime, None)
        if providers is not None:
            await providers.aclose()


def _workers(runtime: Any) -> list[Coroutine[Any, Any, None]]:
    return [_lifetime(runtime)]


FEATURE = Feature(
    name="ai",
    routes=[get_ai_settings, put_ai_settings, delete_ai_settings, KnowledgeController],
    install=_install,
    workers=_workers,
)
