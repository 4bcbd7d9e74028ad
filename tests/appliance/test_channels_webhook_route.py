"""``appliance.channels.webhook_route`` called as plain ASGI: what an HTTP server in front of it
never lets through (a Content-Length that is not a number) and a client that goes away."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.channels import webhook_route
from appliance.errors import BadRequest, MethodNotAllowed


def _scope(method: str, headers: list[tuple[bytes, bytes]] | None = None, query: bytes = b"") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": "/webhooks/meta", "headers": headers or [], "query_string": query}


async def _serve(scope: dict[str, Any], messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[bytes]]:
    sent: list[dict[str, Any]] = []
    accepted: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def accept(_: Any, body: bytes) -> None:
        accepted.append(body)

    await webhook_route.serve(scope, receive, send, accept=accept, verify_token=None,  # type: ignore[arg-type]
                              on_too_large=lambda: None)
    return sent, accepted


async def test_a_content_length_that_is_not_a_number_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="Content-Length header is not a number"):
        await _serve(_scope("POST", [(b"content-length", b"many")]), [])


async def test_a_client_gone_before_its_body_is_in_gets_no_answer_and_nothing_is_accepted() -> None:
    sent, accepted = await _serve(_scope("POST"), [
        {"type": "http.request", "body": b'{"object":', "more_body": True}, {"type": "http.disconnect"}])
    assert (sent, accepted) == ([], [])


async def test_a_body_in_chunks_is_accepted_whole_and_answered() -> None:
    sent, accepted = await _serve(_scope("POST"), [
        {"type": "http.request", "body": b'{"object":', "more_body": True},
        {"type": "http.request", "body": b'"page"}', "more_body": False}])
    assert accepted == [b'{"object":"page"}']
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"EVENT_RECEIVED"


async def test_other_methods_name_the_allowed_ones() -> None:
    with pytest.raises(MethodNotAllowed) as refused:
        await _serve(_scope("PATCH"), [])
    assert refused.value.headers() == {"Allow": "GET, OPTIONS, POST"} and refused.value.status_code == 405


async def test_the_handshake_takes_the_first_of_repeated_query_parameters() -> None:
    from pydantic import SecretStr

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    query = b"hub.mode=subscribe&hub.verify_token=t%C3%B6ken&hub.challenge=42&hub.challenge=43"
    await webhook_route.serve(_scope("GET", query=query), None, send, accept=None,  # type: ignore[arg-type]
                              verify_token=SecretStr("t\u00f6ken"), on_too_large=lambda: None)
    assert sent[1]["body"] == b"42"
