"""One JSON line per request: method, path, status, duration.

The path is the matched route with its integer parameters filled in
(``/api/v1/conversations/12/messages``); any other parameter stays a placeholder
(``/data-deletion/{code}``) and the query string is never logged: both can carry what a client
typed (the verify handshake sends the verify token in its query). The middleware runs only for
requests that matched a route (Litestar applies app middleware per route handler), and for the
webhooks the front door answers before the app is built (``appliance.web.front``): it is plain
ASGI and imports no Litestar at run time.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AccessLogMiddleware", "loggable_path"]

log = logging.getLogger("aat.access")

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def loggable_path(scope: Scope) -> str:
    """The route template with integer path parameters (ids) filled in."""
    template = scope.get("path_template")  # type: ignore[call-overload]
    if not template:
        return "(unmatched)"
    params: dict[str, Any] = scope.get("path_params") or {}  # type: ignore[call-overload]

    def fill(match: re.Match[str]) -> str:
        value = params.get(match.group(1))
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return "{" + match.group(1) + "}"

    return _PARAM.sub(fill, template)


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: dict[str, Any] = {"code": None}

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        except Exception as exc:
            # Raised inside (an auth middleware's 401, a handler's error): the exception
            # handler outside this middleware writes the response, with the error's status.
            if status["code"] is None:
                code = getattr(exc, "status_code", None)
                status["code"] = code if isinstance(code, int) else 500
            raise
        finally:
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": loggable_path(scope),
                    "status": status["code"] if status["code"] is not None else 500,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
