"""``/api/v1/settings/ai``: the provider settings and the customer's API key, which is
write-only, AES-256-GCM encrypted in the store, and never readable at rest or in the logs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.ai import store as ai_store
from appliance.settings import Settings
from appliance.store.keys import KeyMaterialError
from appliance.store.workspace import Workspace
from tests.appliance.ai_helpers import (  # noqa: F401 - fixtures
    ANTHROPIC_KEY,
    ANTHROPIC_MODEL,
    OPENAI_KEY,
    OPENAI_MODEL,
    ai_flow,
    anthropic_api,
    configure_ai,
    logged,
    openai_api,
    settings,
)
from tests.appliance.api_helpers import detail_paths, error_of, rows, snapshot
from tests.appliance.flow_run_helpers import ASSETS, publish_flow, say, sent
from tests.helpers import connect_channel, make_token
from tests.standins.anthropic_api import AnthropicStandIn
from tests.standins.graph_api import GraphStandIn

URL = "/api/v1/settings/ai"
EMPTY = {"provider": None, "model": None, "instructions": "", "has_api_key": False,
         "api_keys": {"anthropic": False, "openai": False}, "updated_at": None}


@pytest.fixture
def admin(workspace: Workspace) -> dict[str, str]:
    return make_token(workspace, "admin")


async def test_nothing_configured(client: AsyncTestClient, admin: dict[str, str]) -> None:
    response = await client.get(URL, headers=admin)
    assert response.status_code == 200
    assert response.json() == EMPTY


async def test_put_then_get_never_returns_the_key(client: AsyncTestClient, admin: dict[str, str]) -> None:
    put = await client.put(URL, json={"provider": "anthropic", "model": ANTHROPIC_MODEL, "instructions": "Be kind.",
                                      "api_key": ANTHROPIC_KEY}, headers=admin)
    assert put.status_code == 200, put.text
    got = await client.get(URL, headers=admin)
    for response in (put, got):
        body = response.json()
        assert ANTHROPIC_KEY not in response.text
        assert {k: body[k] for k in ("provider", "model", "instructions", "has_api_key", "api_keys")} == {
            "provider": "anthropic", "model": ANTHROPIC_MODEL, "instructions": "Be kind.", "has_api_key": True,
            "api_keys": {"anthropic": True, "openai": False}}
        assert body["updated_at"].endswith("Z")


async def test_leaving_the_key_out_keeps_it_and_null_removes_it(
    client: AsyncTestClient, workspace: Workspace, admin: dict[str, str]
) -> None:
    await configure_ai(client, admin)
    kept = await client.put(URL, json={"provider": "anthropic", "model": "claude-opus-5"}, headers=admin)
    assert kept.json()["has_api_key"] is True and kept.json()["model"] == "claude-opus-5"
    assert kept.json()["instructions"] == ""  # PUT replaces
    removed = await client.put(URL, json={"provider": "anthropic", "model": "claude-opus-5", "api_key": None},
                               headers=admin)
    assert removed.json()["has_api_key"] is False
    assert rows(workspace, "SELECT * FROM ai_api_keys") == []


async def test_one_key_per_provider(client: AsyncTestClient, admin: dict[str, str]) -> None:
    await configure_ai(client, admin, provider="openai")
    body = await configure_ai(client, admin, provider="anthropic")
    assert body["provider"] == "anthropic"
    assert body["api_keys"] == {"anthropic": True, "openai": True}
    switched = await client.put(URL, json={"provider": "openai", "model": OPENAI_MODEL}, headers=admin)
    assert switched.json()["has_api_key"] is True


async def test_delete_forgets_everything(client: AsyncTestClient, workspace: Workspace, admin: dict[str, str]) -> None:
    await configure_ai(client, admin, provider="openai")
    await configure_ai(client, admin)
    response = await client.delete(URL, headers=admin)
    assert response.status_code == 204
    assert (await client.get(URL, headers=admin)).json() == EMPTY
    assert rows(workspace, "SELECT * FROM ai_api_keys") == rows(workspace, "SELECT * FROM ai_settings") == []


INVALID = {
    "unknown provider": ({"provider": "mistral", "model": "large", "api_key": ANTHROPIC_KEY}, ["provider"]),
    "no model": ({"provider": "openai"}, ["model"]),
    "empty model": ({"provider": "openai", "model": " "}, ["model"]),
    "model with spaces": ({"provider": "openai", "model": "gpt 5"}, ["model"]),
    "openai model on anthropic": ({"provider": "anthropic", "model": "gpt-5.5"}, ["model"]),
    "anthropic model on openai": ({"provider": "openai", "model": "claude-sonnet-5"}, ["model"]),
    "key with a space": ({"provider": "openai", "model": OPENAI_MODEL, "api_key": "sk-proj bad key"}, ["api_key"]),
    "key not ascii": ({"provider": "openai", "model": OPENAI_MODEL, "api_key": "sk-proj-ключ-123"}, ["api_key"]),
    "key too short": ({"provider": "openai", "model": OPENAI_MODEL, "api_key": "sk-1"}, ["api_key"]),
    "key not a string": ({"provider": "openai", "model": OPENAI_MODEL, "api_key": 12345678}, ["api_key"]),
    "unknown field": ({"provider": "openai", "model": OPENAI_MODEL, "temperature": 2}, ["temperature"]),
    "instructions too long": ({"provider": "openai", "model": OPENAI_MODEL, "instructions": "x" * 10001},
                              ["instructions"]),
}


@pytest.mark.parametrize("case", sorted(INVALID))
async def test_bad_input_is_422_with_paths_and_stores_nothing(
    client: AsyncTestClient, workspace: Workspace, admin: dict[str, str], case: str
) -> None:
    await configure_ai(client, admin)
    before = snapshot(workspace, "ai_settings", "ai_api_keys")
    body, paths = INVALID[case]
    response = await client.put(URL, json=body, headers=admin)
    assert detail_paths(response) == paths
    key = body.get("api_key")
    if isinstance(key, str):
        assert key not in response.text  # the message never quotes the key
    assert snapshot(workspace, "ai_settings", "ai_api_keys") == before


async def test_not_json_is_400(client: AsyncTestClient, admin: dict[str, str]) -> None:
    response = await client.put(URL, content=b"{", headers={**admin, "Content-Type": "application/json"})
    assert error_of(response, 400)["code"] == "invalid_json"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_agents_may_not_touch_ai_settings(
    client: AsyncTestClient, workspace: Workspace, method: str
) -> None:
    body = {"provider": "openai", "model": OPENAI_MODEL, "api_key": OPENAI_KEY} if method == "PUT" else None
    response = await client.request(method, URL, json=body, headers=make_token(workspace, "agent"))
    assert error_of(response, 403)["code"] == "forbidden"
    assert rows(workspace, "SELECT * FROM ai_api_keys") == []


# --- at rest ----------------------------------------------------------------------------------------

async def test_the_key_is_field_encrypted_and_bound_to_its_provider(
    client: AsyncTestClient, workspace: Workspace, admin: dict[str, str]
) -> None:
    await configure_ai(client, admin)
    stored = rows(workspace, "SELECT * FROM ai_api_keys")
    assert len(stored) == 1 and stored[0]["provider"] == "anthropic"
    ciphertext = stored[0]["api_key_enc"]
    assert ciphertext.startswith("v1:") and ANTHROPIC_KEY not in ciphertext
    assert all(ANTHROPIC_KEY not in str(v) for v in stored[0].values())
    assert workspace.fields.decrypt(ciphertext, ai_store.key_context("anthropic")) == ANTHROPIC_KEY
    with pytest.raises(KeyMaterialError):  # copied onto the other provider's row, it does not open
        workspace.fields.decrypt(ciphertext, ai_store.key_context("openai"))


def _files_containing(data_dir: Path, needle: bytes) -> list[str]:
    return [str(p) for p in data_dir.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def test_keys_are_not_readable_at_rest_or_in_the_logs(
    client: AsyncTestClient, workspace: Workspace, settings: Settings, graph_api: GraphStandIn,
    anthropic_api: AnthropicStandIn, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for channel, asset in ASSETS.items():
        connect_channel(workspace, channel, asset)
    admin = make_token(workspace, "admin")
    await configure_ai(client, admin, provider="openai")
    await configure_ai(client, admin)
    await publish_flow(client, admin, ai_flow())
    anthropic_api.reply("We open at 10:00 every day but Sunday.")
    await say(client, "whatsapp", "When do you open on Saturdays?")
    await sent(graph_api, 1)
    anthropic_api.fail(401)
    await say(client, "whatsapp", "and the address of the workshop?")
    await sent(graph_api, 2)  # the on_error message
    for needle in (ANTHROPIC_KEY, OPENAI_KEY, "When do you open on Saturdays?", "We open at 10:00 every day"):
        assert _files_containing(settings.data_dir, needle.encode()) == [], needle
        assert needle not in logged(caplog), needle
    assert "ai reply" in logged(caplog)  # the AI path did log: ids and counts only
