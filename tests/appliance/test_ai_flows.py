"""``ai_reply`` flows through the real stack: signed WhatsApp/Messenger webhooks in, the real
Anthropic/OpenAI SDKs out to the loopback stand-ins, the answer out through the Graph stand-in,
and what the inbox shows (passages on the bot message, notes, the handed-off conversation)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.store.rows import many, one
from appliance.store.workspace import Workspace
from tests.appliance.ai_helpers import (  # noqa: F401 - fixtures
    ANTHROPIC_KEY,
    ANTHROPIC_MODEL,
    DOCUMENTS,
    OPENAI_KEY,
    OPENAI_MODEL,
    add_documents,
    ai_flow,
    anthropic_api,
    configure_ai,
    notes,
    openai_api,
    plan_token,
    settings,
    system_of,
    turns_of,
)
from tests.appliance.flow_run_helpers import ASSETS, publish_flow, say, sent, texts_of
from tests.helpers import connect_channel, make_token, wait_until
from tests.standins.anthropic_api import AnthropicStandIn
from tests.standins.graph_api import GraphStandIn
from tests.standins.openai_api import OpenAIStandIn


@pytest.fixture
def admin(workspace: Workspace) -> dict[str, str]:
    for channel, asset in ASSETS.items():
        connect_channel(workspace, channel, asset)
    return make_token(workspace, "admin")


def _passage_texts(kind: str) -> tuple[str, ...]:
    """Sentences that appear only in one document's passages."""
    return {"hours": ("On Sundays the shop is closed.",), "shipping": ("DHL Express",),
            "returns": ("full refund",)}[kind]


async def _bot_messages(client: AsyncTestClient, admin: dict[str, str]) -> list[dict[str, Any]]:
    conversation = (await client.get("/api/v1/conversations", headers=admin)).json()["items"][0]
    messages = (await client.get(f"/api/v1/conversations/{conversation['id']}/messages", headers=admin)).json()
    return [m for m in messages["items"] if m["sent_by"] == "bot"]


def _run(workspace: Workspace) -> dict[str, Any]:
    row = workspace.gateway.read_sync(lambda db: one(db, "SELECT * FROM flow_runs ORDER BY id DESC LIMIT 1"))
    assert row is not None
    return row


async def _run_status(workspace: Workspace, status: str) -> None:
    async def reached() -> bool:
        return _run(workspace)["status"] == status

    await wait_until(reached)


# --- answering from the knowledge base ------------------------------------------------------------

async def test_whatsapp_answer_from_the_knowledge_base_with_the_right_passages(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, anthropic_api: AnthropicStandIn,
    admin: dict[str, str],
) -> None:
    await configure_ai(client, admin)
    ids = await add_documents(client, admin)
    await publish_flow(client, admin, ai_flow())
    anthropic_api.reply("We are open Monday to Saturday, 10:00-19:00; closed on Sundays.")
    await say(client, "whatsapp", "What are your opening hours on Sunday?")
    assert texts_of(await sent(graph_api, 1)) == ["We are open Monday to Saturday, 10:00-19:00; closed on Sundays."]

    request = anthropic_api.last
    assert anthropic_api.key_of(request.headers) == ANTHROPIC_KEY
    assert request.json["model"] == ANTHROPIC_MODEL
    system = system_of(request)
    assert "You work for Velo Bikes" in system  # workspace instructions
    assert "Answer questions about the shop." in system  # step instructions
    assert "Answer only from the knowledge base passages" in system
    assert all(t in system for t in _passage_texts("hours"))
    assert not any(t in system for t in _passage_texts("shipping") + _passage_texts("returns"))
    assert turns_of(request) == [{"role": "user", "content": "What are your opening hours on Sunday?"}]
    # Only what a reply needs: no name or phone number of the contact.
    raw = request.raw.decode()
    assert "Giorgi" not in raw and "995555123456" not in raw

    bot = (await _bot_messages(client, admin))[0]
    meta = bot["payload"]["meta"]
    assert (meta["provider"], meta["model"]) == ("anthropic", ANTHROPIC_MODEL)
    assert {p["doc_id"] for p in meta["passages"]} == {ids["hours"]}
    assert all(set(p) == {"doc_id", "title", "heading", "chunk_id", "score"} for p in meta["passages"])
    assert meta["passages"][0]["title"] == "Opening hours" and 0 < meta["passages"][0]["score"] <= 1


async def test_a_question_the_knowledge_base_cannot_answer_gets_no_passages(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, anthropic_api: AnthropicStandIn,
    admin: dict[str, str],
) -> None:
    await configure_ai(client, admin)
    await add_documents(client, admin)
    await publish_flow(client, admin, ai_flow())
    anthropic_api.reply("I'm sorry, I don't know. Would you like me to connect you with a person from our team?")
    await say(client, "whatsapp", "Do you sell electric scooters from Xiaomi?")
    assert texts_of(await sent(graph_api, 1)) == [
        "I'm sorry, I don't know. Would you like me to connect you with a person from our team?"]
    system = system_of(anthropic_api.last)
    assert "No passage of the business's knowledge base matches" in system
    assert "say that you do not know and offer to connect them with a person" in system
    assert "<passage" not in system
    assert (await _bot_messages(client, admin))[0]["payload"]["meta"]["passages"] == []


async def test_without_the_knowledge_base_no_passages_are_searched(
    client: AsyncTestClient, graph_api: GraphStandIn, anthropic_api: AnthropicStandIn, admin: dict[str, str],
) -> None:
    await configure_ai(client, admin)
    await add_documents(client, admin)
    await publish_flow(client, admin, ai_flow(use_knowledge_base=False))
    await say(client, "whatsapp", "What are your opening hours on Sunday?")
    await sent(graph_api, 1)
    system = system_of(anthropic_api.last)
    assert "<passage" not in system and "knowledge base" not in system
    assert "offer to connect the customer with a person" in system


async def test_openai_flow_sends_store_false_and_the_passages(
    client: AsyncTestClient, graph_api: GraphStandIn, openai_api: OpenAIStandIn, admin: dict[str, str],
) -> None:
    await configure_ai(client, admin, provider="openai")
    await add_documents(client, admin)
    await publish_flow(client, admin, ai_flow())
    openai_api.reply("Returns are accepted within 30 days.")
    await say(client, "messenger", "Can I return my bicycle and get a refund?")
    assert texts_of(await sent(graph_api, 1)) == ["Returns are accepted within 30 days."]
    request = openai_api.last
    assert request.json["store"] is False and request.json["model"] == OPENAI_MODEL
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    system = system_of(request)
    assert "full refund" in system
    assert "DHL Express" not in system and "Sundays" not in system


async def test_the_step_may_override_the_provider_and_model(
    client: AsyncTestClient, graph_api: GraphStandIn, anthropic_api: AnthropicStandIn, openai_api: OpenAIStandIn,
    admin: dict[str, str],
) -> None:
    await configure_ai(client, admin, provider="openai")
    await configure_ai(client, admin, provider="anthropic")  # both keys stored; anthropic is the default
    await publish_flow(client, admin, ai_flow(provider="openai", model="gpt-5.5-mini"))
    await say(client, "whatsapp", "hello")
    await sent(graph_api, 1)
    assert anthropic_api.requests == []
    assert openai_api.last.json["model"] == "gpt-5.5-mini"


# --- the conversation --------------------------------------------------------------------------------

async def test_multi_turn_until_max_turns_then_next(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, anthropic_api: AnthropicStandIn,
    admin: dict[str, str],
) -> None:
    await configure_ai(client, admin)
    await add_documents(client, admin)
    await publish_flow(client, admin, ai_flow(max_turns=3))
    anthropic_api.reply("We open at 10:00.", "Delivery costs 5 GEL.", "Yes, within 30 days.")
    await say(client, "whatsapp", "When do you open?")
    await sent(graph_api, 1)
    await say(client, "whatsapp", "How much does delivery cost?")
    await sent(graph_api, 2)
    await say(client, "whatsapp", "Can I return a bicycle?")
    requests = await sent(graph_api, 4)
    assert texts_of(requests) == ["We open at 10:00.", "Delivery costs 5 GEL.", "Yes, within 30 days.",
                                  "Thanks for chatting with Velo Bikes!"]
    assert len(anthropic_api.requests) == 3
    # Each turn carries the conversation so far, and the passages for the latest question.
    assert turns_of(anthropic_api.requests[2]) == [
        {"role": "user", "content": "When do you open?"},
        {"role": "assistant", "content": "We open at 10:00."},
        {"role": "user", "content": "How much does delivery cost?"},
        {"role": "assistant", "content": "Delivery costs 5 GEL."},
        {"role": "user", "content": "Can I return a bicycle?"},
    ]
    second = system_of(anthropic_api.requests[1])
    assert "5 GEL" in second and "Sundays" not in second
    assert "full refund" in system_of(anthropic_api.requests[2])
    await _run_status(workspace, "completed")
    # The run is over: the next message starts a new AI conversation.
    await say(client, "whatsapp", "One more question")
    await sent(graph_api, 5)
    assert len(anthropic_api.requests) == 4


async def test_the_model_ends_the_conversation(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, anthropic_api: AnthropicStandIn,
    admin: dict[str, str],
) -> None:
    await configure_ai(client, admin)
    await publish_flow(client, admin, ai_flow(max_turns=5))
    anthropic_api.reply("You're welcome, goodbye! [[DONE]]")
    await say(client, "whatsapp", "thanks, bye")
    assert texts_of(await sent(graph_api, 2)) == ["You're welcome, goodbye!", "Thanks for chatting with Velo Bikes!"]
    await _run_status(workspace, "completed")


async def test_handoff_keyword_hands_the_conversation_to_the_inbox(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, anthropic_api: AnthropicStandIn,
    admin: dict[str, str],
) -> None:
    await configure_ai(client, admin)
    await publish_flow(client, admin, ai_flow())
    await say(client, "whatsapp", "Hi there")
    await sent(graph_api, 1)
    await say(client, "whatsapp", "I want to talk to a HUMAN")
    await _run_status(workspace, "handed_off")
    conversation = (await client.get("/api/v1/conversations", headers=admin)).json()["items"][0]
    assert conversation["bot_paused"] is True
    assert len(anthropic_api.requests) == 1  # the keyword never reached the model
    await say(client, "whatsapp", "hello?")
    await asyncio.sleep(0.3)
    assert len(graph_api.requests) == 1 and len(anthropic_api.requests) == 1


async def test_model_signalled_handoff_pauses_the_bot_and_leaves_a_note(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, anthropic_api: AnthropicStandIn,
    admin: dict[str, str],
) -> None:
    await configure_ai(client, admin)
    await add_documents(client, admin)
    await publish_flow(client, admin, ai_flow())
    anthropic_api.reply("I can't help with a damaged frame, I'll connect you with our team. [[HANDOFF]]")
    await say(client, "whatsapp", "My frame cracked, I want compensation")
    assert texts_of(await sent(graph_api, 1)) == ["I can't help with a damaged frame, I'll connect you with our team."]
    await _run_status(workspace, "handed_off")
    conversation = (await client.get("/api/v1/conversations", headers=admin)).json()["items"][0]
    assert conversation["bot_paused"] is True
    assert any("handed this conversation to the team" in n for n in notes(workspace))
    await say(client, "whatsapp", "hello?")
    await asyncio.sleep(0.3)
    assert len(anthropic_api.requests) == 1


async def test_the_prompt_never_holds_another_contacts_messages(
    client: AsyncTestClient, graph_api: GraphStandIn, anthropic_api: AnthropicStandIn, admin: dict[str, str],
) -> None:
    await configure_ai(client, admin)
    await publish_flow(client, admin, ai_flow())
    await say(client, "whatsapp", "My secret order number is 4711")
    await sent(graph_api, 1)
    await say(client, "whatsapp", "Hello from someone else", sender="995555000111")
    await sent(graph_api, 2)
    assert turns_of(anthropic_api.last) == [{"role": "user", "content": "Hello from someone else"}]
    assert "4711" not in anthropic_api.last.raw.decode()


# --- failures -----------------------------------------------------------------------------------------

async def test_provider_401_takes_on_error_and_leaves_a_note(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, anthropic_api: AnthropicStandIn,
    admin: dict[str, str],
) -> None:
    await configure_ai(client, admin, api_key="sk-ant-revoked-key-000")
    await publish_flow(client, admin, ai_flow())
    await say(client, "whatsapp", "When do you open?")
    assert texts_of(await sent(graph_api, 1)) == ["Our assistant is unavailable; a person will answer soon."]
    assert notes(workspace) == [
        "AI reply failed: the AI provider refused the API key (401): enter a valid key in Settings > AI."]
    events = workspace.gateway.read_sync(lambda db: many(db, "SELECT step, event, detail FROM flow_step_events "
                                                             "WHERE event = 'completed' ORDER BY id"))
    assert events[0] == {"step": "ai", "event": "completed", "detail": "error: auth_failed"}


@pytest.mark.parametrize(("status", "error_type", "reason"), [
    (429, "rate_limit_error", "rate limit"), (500, "api_error", "internal error"), (529, "overloaded_error", "overloaded"),
])
async def test_provider_errors_take_on_error(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, anthropic_api: AnthropicStandIn,
    admin: dict[str, str], status: int, error_type: str, reason: str,
) -> None:
    await configure_ai(client, admin)
    await publish_flow(client, admin, ai_flow())
    anthropic_api.fail(status, error_type)
    await say(client, "whatsapp", "When do you open?")
    assert texts_of(await sent(graph_api, 1)) == ["Our assistant is unavailable; a person will answer soon."]
    assert reason in notes(workspace)[0]


async def test_missing_key_takes_on_error_without_calling_anyone(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, anthropic_api: AnthropicStandIn,
    admin: dict[str, str],
) -> None:
    await configure_ai(client, admin, api_key=None)
    await publish_flow(client, admin, ai_flow())
    await say(client, "whatsapp", "When do you open?")
    assert texts_of(await sent(graph_api, 1)) == ["Our assistant is unavailable; a person will answer soon."]
    assert anthropic_api.requests == []
    assert notes(workspace) == ["AI reply failed: AI replies are not set up: choose a provider and model and enter "
                                "an API key in Settings > AI."]


async def test_no_settings_at_all_without_on_error_ends_the_run(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str],
) -> None:
    flow = ai_flow()
    del flow["steps"]["ai"]["on_error"]
    flow["steps"].pop("sorry")
    await publish_flow(client, admin, flow)
    await say(client, "whatsapp", "When do you open?")
    await _run_status(workspace, "error")
    assert graph_api.requests == []
    assert "not set up" in notes(workspace)[0]


async def test_the_monthly_limit_from_entitlements_is_enforced(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, anthropic_api: AnthropicStandIn,
    admin: dict[str, str],
) -> None:
    pushed = await client.put("/entitlements", json={"token": plan_token({"ai_replies_per_month": 1})})
    assert pushed.status_code == 200, pushed.text
    await configure_ai(client, admin)
    await publish_flow(client, admin, ai_flow(max_turns=1))
    anthropic_api.reply("We open at 10:00.")
    await say(client, "whatsapp", "When do you open?")
    await sent(graph_api, 2)  # the answer and the flow's next message
    await say(client, "whatsapp", "And on Sunday?")
    requests = await sent(graph_api, 3)
    assert texts_of(requests)[2] == "Our assistant is unavailable; a person will answer soon."
    assert len(anthropic_api.requests) == 1
    assert notes(workspace) == ["AI reply failed: this month's AI reply limit of the plan is reached (1 replies)."]
    used = (await client.get("/api/v1/entitlements", headers=admin)).json()
    assert used["usage"]["ai_replies_per_month"] == 1
