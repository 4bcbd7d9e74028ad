"""The shared machinery of the AI provider stand-ins: a real HTTP server on loopback that
records every request exactly as received and answers from a script.

Subclasses (:mod:`tests.standins.anthropic_api`, :mod:`tests.standins.openai_api`) speak one
provider's wire format: where requests go, which header carries the key, what a reply and an
error look like. Tests queue answers with :meth:`LlmStandIn.reply` (texts) and
:meth:`LlmStandIn.fail` (an HTTP error in the provider's format), or set ``default_reply``;
a request whose key is not ``api_key`` (when set) gets the provider's 401.
"""

from __future__ import annotations

import itertools
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.standins.loopback import LoopbackStandIn, StandInHandler, json_or_none

__all__ = ["LlmStandIn", "Recorded", "Scripted"]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    raw: bytes
    at: float


@dataclass
class Scripted:
    """One answer: a reply text (``status`` 200), or an error ``status`` with ``error_type``."""

    status: int = 200
    text: str | None = None
    error_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # merged into a 200 body's message


class LlmStandIn(LoopbackStandIn, ABC):
    path: str = "/"  # the endpoint this provider serves (POST)

    def __init__(self, *, api_key: str | None = None, default_reply: str = "Hello from the stand-in.") -> None:
        self.api_key = api_key
        self.default_reply = default_reply
        self.requests: list[Recorded] = []
        self._script: deque[Scripted] = deque()
        self._ids = itertools.count(1)
        super().__init__()

    # --- scripting ------------------------------------------------------------------------------
    def reply(self, *texts: str, **extra: Any) -> None:
        with self._lock:
            self._script.extend(Scripted(text=t, extra=dict(extra)) for t in texts)

    def fail(self, status: int, error_type: str | None = None, *, headers: dict[str, str] | None = None,
             times: int = 1) -> None:
        # retry-after-ms keeps the SDKs' retries quick in tests.
        answer = Scripted(status=status, error_type=error_type, headers={"retry-after-ms": "5", **(headers or {})})
        with self._lock:
            self._script.extend(answer for _ in range(times))

    def delay_next(self, seconds: float, text: str = "late") -> None:
        with self._lock:
            self._script.append(Scripted(text=text, delay=seconds))

    @property
    def last(self) -> Recorded:
        assert self.requests, "the stand-in received no request"
        return self.requests[-1]

    # --- provider specifics (subclasses) --------------------------------------------------------
    @abstractmethod
    def key_of(self, headers: dict[str, str]) -> str | None:
        """The API key the request carries, in this provider's header."""

    @abstractmethod
    def success_body(self, request: Any, text: str, n: int, extra: dict[str, Any]) -> dict[str, Any]:
        """This provider's 200 answer carrying ``text``."""

    @abstractmethod
    def error_body(self, status: int, error_type: str | None) -> dict[str, Any]:
        """This provider's error answer."""

    def check(self, request: Any) -> str | None:
        """What is wrong with a request body (answered 400), or None."""
        return None

    # --- the server -----------------------------------------------------------------------------
    def _answer(self, record: Recorded) -> tuple[int, dict[str, Any], dict[str, str], float]:
        with self._lock:
            self.requests.append(record)
            n = next(self._ids)
            if record.method != "POST" or record.path != self.path:
                return 404, self.error_body(404, "not_found_error"), {}, 0.0
            if self.api_key is not None and self.key_of(record.headers) != self.api_key:
                return 401, self.error_body(401, None), {}, 0.0
            problem = self.check(record.json)
            if problem:
                return 400, self.error_body(400, problem), {}, 0.0
            scripted = self._script.popleft() if self._script else Scripted(text=self.default_reply)
        if scripted.status != 200:
            return scripted.status, self.error_body(scripted.status, scripted.error_type), scripted.headers, scripted.delay
        body = self.success_body(record.json, scripted.text or "", n, scripted.extra)
        return 200, body, scripted.headers, scripted.delay

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(StandInHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                self.do_POST("GET")

            def do_POST(self, method: str = "POST") -> None:  # noqa: N802 - http.server API
                raw = self.read_body()
                record = Recorded(method, self.path.partition("?")[0], self.lower_headers(), json_or_none(raw),
                                  raw, time.monotonic())
                status, payload, headers, delay = standin._answer(record)
                if delay:
                    time.sleep(delay)
                self.send_json(status, payload, headers=headers)

        return Handler
