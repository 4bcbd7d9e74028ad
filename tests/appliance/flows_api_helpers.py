"""Helpers shared by the flows API tests: tokens, create/get/list, small documents."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.flows.models import FlowDocument
from appliance.store.workspace import Workspace
from tests.appliance.api_helpers import walk
from tests.appliance.flow_helpers import document, pricing_document
from tests.appliance.flow_run_helpers import ASSETS
from tests.helpers import connect_channel, make_token

FLOWS = "/api/v1/flows"


@pytest.fixture
def admin(workspace: Workspace) -> dict[str, str]:
    return make_token(workspace, "admin")


@pytest.fixture
def channels(workspace: Workspace) -> None:
    """The three channels of the Meta fixtures, connected (for tests where contacts write in)."""
    for channel, asset in ASSETS.items():
        connect_channel(workspace, channel, asset)


async def create(client: AsyncTestClient, headers: dict[str, str], doc: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(FLOWS, json=doc, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def get(client: AsyncTestClient, headers: dict[str, str], flow_id: str) -> dict[str, Any]:
    response = await client.get(f"{FLOWS}/{flow_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def listed(client: AsyncTestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    return [item for page in await walk(client, FLOWS, headers) for item in page]


def with_step(step_id: str, step: dict[str, Any], **top: Any) -> dict[str, Any]:
    raw = pricing_document()
    raw["steps"][step_id] = step
    raw.update(top)
    return raw


def same_flow(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal as ``aat.flow/v1`` documents (the API stores a normalised form: defaults left out)."""
    return FlowDocument.model_validate(a) == FlowDocument.model_validate(b)


def reminder(text_before: str = "See you in an hour.", seconds: int = 3600) -> dict[str, Any]:
    return document(
        {"ok": {"type": "message", "text": text_before, "next": "wait"},
         "wait": {"type": "delay", "seconds": seconds, "next": "ping"},
         "ping": {"type": "message", "text": "Here is your reminder."}},
        name="Reminder", triggers=[{"type": "keyword", "keywords": ["remind"]}],
    )
