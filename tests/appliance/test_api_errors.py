"""Bad input gets a clear JSON error of the right 4xx and changes nothing: malformed JSON,
unknown routes, wrong methods, oversized bodies; never a 5xx or a stack trace."""

from __future__ import annotations

from typing import Any

import pytest

from tests.appliance.api_helpers import (  # noqa: F401 - shared is a fixture
    Shared,
    error_of,
    messenger_text,
    on_shared_app,
    shared,
    snapshot,
)
from tests.helpers import ingest, make_token

TABLES = ("channels", "contacts", "contact_tags", "conversations", "messages", "outbox", "users")
WRITES = [
    ("POST", "/api/v1/channels"),
    ("POST", "/api/v1/users"),
    ("PATCH", "/api/v1/contacts/1"),
    ("POST", "/api/v1/contacts/1/tags"),
    ("POST", "/api/v1/conversations/1/messages"),
]
MALFORMED = {
    "truncated": b'{"text": "hi"',
    "not json": b"hello",
    "trailing comma": b'{"text": "hi",}',
    "single quotes": b"{'text': 'hi'}",
    "not utf-8": b'{"text": "\xff\xfe"}',
    "two documents": b'{"text": "a"} {"text": "b"}',
    "blank": b"   ",
}


async def _contact(app: Shared) -> None:
    """Contact 1 and conversation 1 exist, so the body is the only thing wrong."""
    if not snapshot(app.workspace, "contacts")["contacts"]:
        await ingest(app.client, messenger_text("2460001112223334", "m_errors_1"))


def _json_headers(app: Shared) -> dict[str, str]:
    return {**make_token(app.workspace, "owner"), "content-type": "application/json"}


@on_shared_app
@pytest.mark.parametrize("case", sorted(MALFORMED))
@pytest.mark.parametrize(("method", "url"), WRITES)
async def test_malformed_json_is_400_invalid_json(shared: Shared, method: str, url: str, case: str) -> None:
    await _contact(shared)
    before = snapshot(shared.workspace, *TABLES)
    response = await shared.client.request(method, url, content=MALFORMED[case], headers=_json_headers(shared))
    error = error_of(response, 400)
    assert error["code"] == "invalid_json"
    assert "JSON" in error["message"]
    assert snapshot(shared.workspace, *TABLES) == before


@on_shared_app
@pytest.mark.parametrize(("method", "url"), WRITES)
async def test_empty_body_is_400_and_says_so(shared: Shared, method: str, url: str) -> None:
    await _contact(shared)
    response = await shared.client.request(method, url, content=b"", headers=_json_headers(shared))
    assert error_of(response, 400) == {"code": "invalid_json", "message": "the request body is empty: send a JSON object"}


@on_shared_app
@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null", b"true"])
@pytest.mark.parametrize(("method", "url"), WRITES)
async def test_json_that_is_not_an_object_is_422(shared: Shared, method: str, url: str, body: bytes) -> None:
    await _contact(shared)
    before = snapshot(shared.workspace, *TABLES)
    response = await shared.client.request(method, url, content=body, headers=_json_headers(shared))
    error = error_of(response, 422)
    assert error["code"] == "invalid_request"
    assert [d["path"] for d in error["details"]] == ["body"]
    assert snapshot(shared.workspace, *TABLES) == before


@on_shared_app
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer aat_x"}, "token"])
@pytest.mark.parametrize("url", ["/api/v1/nothing", "/api/v1/contacts/1/nothing", "/nothing", "/api/v2/contacts"])
async def test_unknown_route_is_404_json(shared: Shared, url: str, headers: Any) -> None:
    if headers == "token":
        headers = make_token(shared.workspace, "owner")
    response = await shared.client.get(url, headers=headers)
    assert error_of(response, 404) == {"code": "not_found", "message": "no such resource or route"}


@on_shared_app
@pytest.mark.parametrize(("method", "url"), [
    ("PUT", "/api/v1/contacts"), ("DELETE", "/api/v1/users"), ("PATCH", "/api/v1/channels"),
    ("POST", "/healthz"), ("PUT", "/webhooks/meta"), ("POST", "/api/v1/conversations/1"),
])
async def test_wrong_method_is_405_json(shared: Shared, method: str, url: str) -> None:
    response = await shared.client.request(method, url, headers=make_token(shared.workspace, "owner"))
    assert error_of(response, 405)["code"] == "method_not_allowed"
    assert response.headers["allow"]


@on_shared_app
async def test_body_over_the_limit_is_413_and_writes_nothing(shared: Shared) -> None:
    before = snapshot(shared.workspace, *TABLES)
    response = await shared.client.post("/api/v1/users", content=b'{"name": "' + b"x" * (3 * 1024 * 1024) + b'"}',
                                        headers=_json_headers(shared))
    assert error_of(response, 413)["code"] == "payload_too_large"
    assert snapshot(shared.workspace, *TABLES) == before


# Requests a client could send, each wrong in its own way: none may be a 5xx or leak a trace.
HOSTILE: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/api/v1/contacts?limit=-1", {}),
    ("GET", "/api/v1/contacts?limit=1e9", {}),
    ("GET", "/api/v1/contacts?cursor=%00%01", {}),
    ("GET", "/api/v1/contacts?cursor=" + "A" * 5000, {}),
    ("GET", "/api/v1/contacts?q=%00", {}),
    ("GET", "/api/v1/contacts?tag=%ff%fe", {}),
    ("GET", "/api/v1/contacts/18446744073709551616", {}),
    ("GET", "/api/v1/contacts/-1", {}),
    ("GET", "/api/v1/conversations?assignee=%F0%9F%98%80", {}),
    ("GET", "/api/v1/conversations?assignee=99999999999999999999", {}),
    ("GET", "/api/v1/conversations/1/messages?cursor=WzEsMl0", {}),
    ("DELETE", "/api/v1/contacts/1/tags/%00", {}),
    ("DELETE", "/api/v1/contacts/1/tags/" + "x" * 3000, {}),
    ("PATCH", "/api/v1/contacts/1", {"json": {"fields": {"a" * 65: 1}}}),
    ("PATCH", "/api/v1/contacts/1", {"json": {"fields": {f"f{n}": n for n in range(201)}}}),
    ("PATCH", "/api/v1/contacts/1", {"json": {"fields": {"n": 10**400}}}),
    ("PATCH", "/api/v1/contacts/1", {"content": b'{"fields": {"n": 1e999}}'}),
    ("PATCH", "/api/v1/contacts/1", {"content": b'{"name": "\\ud800"}'}),
    ("PATCH", "/api/v1/contacts/1", {"content": b'{"name": "a\\u0000b"}'}),
    ("POST", "/api/v1/contacts/1/tags", {"json": {"tag": {"nested": True}}}),
    ("POST", "/api/v1/conversations/1/messages", {"json": {"template": {"name": "x", "language": "en",
                                                                         "components": "all"}}}),
    ("POST", "/api/v1/conversations/1/messages", {"json": {"template": {"name": "x", "language": "en",
                                                                         "components": [1] * 21}}}),
    ("POST", "/api/v1/channels", {"json": {"type": "messenger", "external_id": "1" * 33, "access_token": "x"}}),
    ("POST", "/api/v1/channels", {"json": {"type": ["messenger"], "external_id": "1", "access_token": "x"}}),
    ("POST", "/api/v1/channels", {"content": b'{"type": "messenger"' + b"," * 10000 + b"}"}),
    ("POST", "/api/v1/channels", {"content": b"[" * 100000 + b"]" * 100000}),
    ("POST", "/api/v1/users", {"json": {"email": "a@b.co", "role": "agent", "password": "x" * 1025}}),
    ("POST", "/api/v1/users", {"json": {"email": "a@b.co" * 100, "role": "agent"}}),
    ("POST", "/api/v1/users", {"content": b'{"email": "a@b.co", "role": "agent"}',
                               "headers": {"content-type": "text/plain"}}),
    ("POST", "/api/v1/users", {"content": b"email=a@b.co&role=agent",
                               "headers": {"content-type": "application/x-www-form-urlencoded"}}),
]


# Inputs that once caused a 5xx in the flows routes.
KNOWN_5XX = [
    pytest.param("GET", "/api/v1/flows/18446744073709551616", {}, id="GET /api/v1/flows/<beyond sqlite>"),
    pytest.param("GET", "/api/v1/flows/1/export?version=18446744073709551616", {},
                 id="GET /api/v1/flows/1/export?version=<beyond sqlite>"),
    pytest.param("GET", "/api/v1/flows/1/stats?from=2026-11-01T00:00:00", {},
                 id="GET /api/v1/flows/1/stats?from=<no zone>"),
]


@on_shared_app
@pytest.mark.parametrize(("method", "url", "kwargs"), [
    *(pytest.param(m, u, k, id=f"{m} {u[:60]}") for m, u, k in HOSTILE), *KNOWN_5XX])
async def test_no_client_input_causes_a_5xx_or_a_trace(shared: Shared, method: str, url: str,
                                                       kwargs: dict[str, Any]) -> None:
    await _contact(shared)
    headers = {**make_token(shared.workspace, "owner"), **kwargs.pop("headers", {})}
    response = await shared.client.request(method, url, headers=headers, **kwargs)
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text and 'File "' not in response.text
    if response.status_code >= 400:
        error_of(response, response.status_code)
