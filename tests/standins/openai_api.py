"""A stand-in for the OpenAI Chat Completions API (``POST /v1/chat/completions``,
non-streaming): the key as ``Authorization: Bearer``, ``{"object": "chat.completion",
"choices": [{"message": {"role": "assistant", "content"}}]}`` out, ``{"error": {"message",
"type", "code"}}`` on failure. Point the SDK at :attr:`base_url` (it ends in ``/v1``, like the
SDK's default)."""

from __future__ import annotations

import time
from typing import Any

from tests.standins.llm_server import LlmStandIn

__all__ = ["OpenAIStandIn"]

_CODES = {401: ("invalid_request_error", "invalid_api_key"), 429: ("requests", "rate_limit_exceeded"),
          500: ("server_error", None), 404: ("invalid_request_error", "model_not_found")}


class OpenAIStandIn(LlmStandIn):
    path = "/v1/chat/completions"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def key_of(self, headers: dict[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None

    def check(self, request: Any) -> str | None:
        if not isinstance(request, dict) or not request.get("model"):
            return "invalid_request_error"
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            return "invalid_request_error"
        if any(m.get("role") not in ("system", "developer", "user", "assistant") for m in messages):
            return "invalid_request_error"
        return None

    def success_body(self, request: Any, text: str, n: int, extra: dict[str, Any]) -> dict[str, Any]:
        message = {"role": "assistant", "content": text, "refusal": None, **extra}
        return {
            "id": f"chatcmpl-standin{n}", "object": "chat.completion", "created": int(time.time()),
            "model": request["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 12, "completion_tokens": max(1, len(text) // 4),
                      "total_tokens": 12 + max(1, len(text) // 4)},
        }

    def error_body(self, status: int, error_type: str | None) -> dict[str, Any]:
        kind, code = _CODES.get(status, ("server_error", None))
        message = "Incorrect API key provided." if status == 401 else (error_type or kind)
        return {"error": {"message": message, "type": error_type or kind, "param": None, "code": code}}
