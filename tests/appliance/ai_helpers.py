"""Fixtures and helpers for the AI tests: the provider stand-ins (real HTTP servers speaking
the Anthropic Messages and OpenAI Chat Completions wire formats, driven by the real SDKs), the
settings pointing at them, a knowledge base, and an ``ai_reply`` flow.

Import the fixtures into a test module (``from tests.appliance.ai_helpers import ...  # noqa:
F401``); ``settings`` here extends the conftest's with the stand-ins' base URLs.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from litestar.testing import AsyncTestClient

from appliance.entitlements.token import sign
from appliance.settings import Settings
from appliance.store.rows import many
from appliance.store.workspace import Workspace
from tests.standins.anthropic_api import AnthropicStandIn
from tests.standins.openai_api import OpenAIStandIn

ANTHROPIC_KEY = "sk-ant-api03-TESTKEY-4f1e9a7c2b"
OPENAI_KEY = "sk-proj-TESTKEY-9c3d5e7f1a"
ANTHROPIC_MODEL = "claude-sonnet-5"
OPENAI_MODEL = "gpt-5.5"
# The control plane's entitlement signing key, as the tests' control plane (see plan_token).
PLAN_KEY = Ed25519PrivateKey.generate()
TENANT = "t_ai_tests"

DOCUMENTS = {
    "hours": ("Opening hours", "# Opening hours\n\nOur Tbilisi shop is open Monday to Saturday from 10:00 to "
                               "19:00. On Sundays the shop is closed.\n\n## Holidays\n\nOn public holidays we "
                               "open from 12:00 to 16:00."),
    "shipping": ("Shipping", "# Shipping\n\nParcels leave our warehouse within two working days. Delivery "
                             "inside Georgia costs 5 GEL and is free above 100 GEL.\n\n## Abroad\n\nWe ship to "
                             "the EU with DHL Express; customs fees are paid by the recipient."),
    "returns": ("Returns", "# Returns\n\nUnused bicycles can be returned within 30 days for a full refund. "
                           "Bring the receipt; refunds reach your card within 5 banking days."),
}


def _import_sdks() -> None:
    """Import the SDKs before the first test that uses them (once per process): importing
    ``anthropic`` alone takes seconds, which would otherwise land inside that test's waits."""
    import anthropic  # noqa: F401, PLC0415
    import openai  # noqa: F401, PLC0415


@pytest.fixture
def anthropic_api() -> Iterator[AnthropicStandIn]:
    _import_sdks()
    standin = AnthropicStandIn(api_key=ANTHROPIC_KEY).start()
    yield standin
    standin.stop()


@pytest.fixture
def openai_api() -> Iterator[OpenAIStandIn]:
    _import_sdks()
    standin = OpenAIStandIn(api_key=OPENAI_KEY).start()
    yield standin
    standin.stop()


@pytest.fixture
def settings(settings: Settings, anthropic_api: AnthropicStandIn, openai_api: OpenAIStandIn) -> Settings:
    return settings.model_copy(update={
        "anthropic_base_url": anthropic_api.base_url, "openai_base_url": openai_api.base_url,
        "ai_max_retries": 0, "ai_timeout_seconds": 5.0,
        "entitlements_public_key": base64.b64encode(
            PLAN_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode(),
        "tenant_id": TENANT,
    })


def plan_token(limits: dict[str, int]) -> str:
    """An entitlement token for ``PUT /entitlements``, signed as the control plane signs it."""
    now = datetime.now(UTC).replace(microsecond=0)
    return sign(PLAN_KEY, tenant=TENANT, plan="starter", limits=limits, issued_at=now,
                expires_at=now + timedelta(days=30))


async def configure_ai(client: AsyncTestClient, headers: dict[str, str], provider: str = "anthropic",
                       **changes: Any) -> dict[str, Any]:
    body = {"provider": provider, "model": ANTHROPIC_MODEL if provider == "anthropic" else OPENAI_MODEL,
            "instructions": "You work for Velo Bikes, a bicycle shop in Tbilisi.",
            "api_key": ANTHROPIC_KEY if provider == "anthropic" else OPENAI_KEY, **changes}
    response = await client.put("/api/v1/settings/ai", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def add_documents(client: AsyncTestClient, headers: dict[str, str], *names: str) -> dict[str, str]:
    """Add the named DOCUMENTS through the API; returns name -> document id."""
    ids = {}
    for name in names or tuple(DOCUMENTS):
        title, text = DOCUMENTS[name]
        response = await client.post("/api/v1/knowledge", json={"title": title, "text": text}, headers=headers)
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    return ids


def ai_flow(**step: Any) -> dict[str, Any]:
    """Every message nobody else handles goes to an AI conversation."""
    ai = {"type": "ai_reply", "instructions": "Answer questions about the shop.", "use_knowledge_base": True,
          "max_turns": 3, "handoff_keywords": ["human", "operator"], "next": "bye", "on_error": "sorry", **step}
    return {
        "schema": "aat.flow/v1", "name": "AI answers", "triggers": [{"type": "default"}], "start": "ai",
        "steps": {
            "ai": ai,
            "bye": {"type": "message", "text": "Thanks for chatting with Velo Bikes!"},
            "sorry": {"type": "message", "text": "Our assistant is unavailable; a person will answer soon."},
        },
    }


def notes(workspace: Workspace) -> list[str]:
    return workspace.gateway.read_sync(lambda db: [r["text"] for r in many(db, "SELECT text FROM notifications ORDER BY id")])


def system_of(request: Any) -> str:
    """The system prompt of a recorded provider request, whichever provider."""
    body = request.json
    if "system" in body:
        return body["system"]
    return next(m["content"] for m in body["messages"] if m["role"] == "system")


def turns_of(request: Any) -> list[dict[str, str]]:
    return [m for m in request.json["messages"] if m["role"] != "system"]


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Everything logged during the test, as the JSON lines production writes (extras too)."""
    from appliance.logs import JsonFormatter

    formatter = JsonFormatter()
    return "\n".join(formatter.format(record) for record in caplog.records)
