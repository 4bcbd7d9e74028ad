"""A stand-in for the Anthropic Messages API (``POST /v1/messages``, non-streaming): the key in
``x-api-key`` or ``Authorization: Bearer``, ``{"type": "message", "content": [{"type":
"text", ...}]}`` out, ``{"type": "error", "error": {"type", "message"}}`` on failure (401
``authentication_error``, 429 ``rate_limit_error``, 500 ``api_error``, 529
``overloaded_error``). Point the SDK at :attr:`base_url`."""

from __future__ import annotations

from typing import Any

from tests.standins.llm_server import LlmStandIn

__all__ = ["AnthropicStandIn"]

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


class AnthropicStandIn(LlmStandIn):
    path = "/v1/messages"

    def key_of(self, headers: dict[str, str]) -> str | None:
        # API keys travel as x-api-key; current SDKs send them as a Bearer token.
        auth = headers.get("authorization", "")
        return headers.get("x-api-key") or (auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None)

    def check(self, request: Any) -> str | None:
        if not isinstance(request, dict):
            return "invalid_request_error"
        messages = request.get("messages")
        if not request.get("model") or not isinstance(request.get("max_tokens"), int):
            return "invalid_request_error"
        if not isinstance(messages, list) or not messages or messages[0].get("role") != "user":
            return "invalid_request_error"
        if any(m.get("role") not in ("user", "assistant") for m in messages):
            return "invalid_request_error"
        return None

    def success_body(self, request: Any, text: str, n: int, extra: dict[str, Any]) -> dict[str, Any]:
        body = {
            "id": f"msg_standin{n}", "type": "message", "role": "assistant", "model": request["model"],
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": max(1, len(text) // 4)},
        }
        body.update(extra)
        return body

    def error_body(self, status: int, error_type: str | None) -> dict[str, Any]:
        kind = error_type or _ERROR_TYPES.get(status, "api_error")
        message = "invalid x-api-key" if status == 401 else kind.replace("_", " ")
        return {"type": "error", "error": {"type": kind, "message": message}}
