"""``/api/v1/settings/ai``: the provider, model and instructions AI replies use, and the
customer's own API key.

The key is write-only: no response carries it (``has_api_key`` says whether one is stored),
it is AES-256-GCM encrypted before it reaches the store, and it is never logged. PUT replaces
the settings; its ``api_key`` is the key of the ``provider`` sent: a string stores it, ``null``
removes it, leaving it out keeps the stored one. DELETE forgets the settings and every key.
"""

import asyncio
import re
from collections.abc import Coroutine
from typing import Annotated, Any, Literal

from litestar import delete, get, put
from litestar.params import JSONBody
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from appliance.ai import store
from appliance.ai.providers import warm_up
from appliance.team.auth import requires
from appliance.timeutil import iso_now
from appliance.web.api import RuntimeDep

__all__ = ["AiSettingsInput", "get_ai_settings", "put_ai_settings", "delete_ai_settings"]

_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")
_KEY = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII: it travels in an HTTP header


class AiSettingsInput(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request

    provider: Literal["anthropic", "openai"]
    model: Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)] = Field(
        description="The provider's model name, e.g. claude-sonnet-5 or gpt-5.5")
    instructions: Annotated[str, StringConstraints(max_length=10000)] = Field(
        "", description="Workspace-wide instructions every AI reply follows (tone, what the business does)")
    api_key: Annotated[str, StringConstraints(max_length=512, strip_whitespace=True)] | None = Field(
        None, description="The provider's API key (write-only); null removes it, absent keeps it")

    @field_validator("model")
    @classmethod
    def _model(cls, value: str, info: ValidationInfo) -> str:
        if not _MODEL.match(value):
            raise ValueError("not a model name: letters, digits and . _ : / @ + - only")
        provider = info.data.get("provider")
        if provider == "anthropic" and not value.startswith("claude"):
            raise ValueError("Anthropic model names start with claude-, e.g. claude-sonnet-5")
        if provider == "openai" and value.startswith("claude"):
            raise ValueError("this is an Anthropic model: set provider to anthropic")
        return value

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, value: str | None) -> str | None:
        # The message must never quote the value.
        if value is not None and (len(value) < 8 or not _KEY.match(value)):
            raise ValueError("not an API key: printable ASCII without spaces, at least 8 characters")
        return value


_warming: set[asyncio.Task[None]] = set()


def _background(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(work)
    _warming.add(task)
    task.add_done_callback(_warming.discard)


@get("/settings/ai", guards=[requires("admin")])
async def get_ai_settings(runtime: RuntimeDep) -> dict[str, Any]:
    """``{provider, model, instructions, has_api_key, api_keys: {anthropic, openai}, updated_at}``."""
    return store.public_settings(await runtime.db.read(store.read))


@put("/settings/ai", guards=[requires("admin")])
async def put_ai_settings(data: JSONBody[AiSettingsInput], runtime: RuntimeDep) -> dict[str, Any]:
    """Replace the settings (and the provider's key when ``api_key`` is sent)."""
    key: Any = store.KEEP
    if "api_key" in data.model_fields_set:
        key = None if data.api_key is None else runtime.fields.encrypt(data.api_key, store.key_context(data.provider))
    state = await runtime.db.write(
        store.write, provider=data.provider, model=data.model, instructions=data.instructions, api_key_enc=key,
        now=iso_now(),
    )
    _background(warm_up(data.provider))
    return store.public_settings(state)


@delete("/settings/ai", status_code=204, guards=[requires("admin")])
async def delete_ai_settings(runtime: RuntimeDep) -> None:
    """Forget the AI settings and erase every stored key at once."""
    await runtime.db.write(store.clear)
