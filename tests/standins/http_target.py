"""A scriptable HTTP server on loopback: the far end of ``http_request`` steps and the receiver
of outbound webhooks.

By default it answers 200 with :attr:`HttpTarget.answer` (JSON). Tests queue other answers
with :meth:`HttpTarget.script` (a status and body, a redirect, a body of N bytes, a gzip bomb,
a delay before answering, a slow drip of the body) and read :attr:`requests`. With
:attr:`secret` set it checks ``X-AAT-Signature`` like a webhook receiver should (answering
401 when it does not match) and records the verdict on each request.
"""

from __future__ import annotations

import gzip
import json
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from appliance.integrations.webhooks.payload import SIGNATURE_HEADER, verify
from tests.standins.loopback import LoopbackStandIn, StandInHandler

__all__ = ["HttpTarget", "Answer", "Received"]


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Answer:
    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # before the status line
    drip: float = 0.0  # seconds between body bytes
    size: int | None = None  # a body of this many bytes (no Content-Length when chunked=True)
    chunked: bool = False
    gzip_bomb: int | None = None  # a gzip body that inflates to this many bytes

    @staticmethod
    def redirect(location: str, status: int = 302) -> Answer:
        return Answer(status=status, body=b"", headers={"Location": location})


class HttpTarget(LoopbackStandIn):
    quiet_errors = True  # a client closing a kept-alive connection is normal here, not a traceback

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.answer: Any = {"ok": True}
        self.secret: str | None = None
        self._script: deque[Answer] = deque()
        super().__init__()

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._script.extend(answers)

    def clear_script(self) -> None:
        with self._lock:
            self._script.clear()

    def _next(self) -> Answer:
        with self._lock:
            return self._script.popleft() if self._script else Answer(json=self.answer)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        target = self

        class Handler(StandInHandler):
            def _any(self) -> None:
                body = self.read_body()
                path, _, query = self.path.partition("?")
                headers = self.lower_headers()
                verdict = None
                if target.secret is not None:
                    verdict = verify(target.secret, headers.get(SIGNATURE_HEADER.lower(), ""), body,
                                     now=int(time.time()))
                with target._lock:
                    target.requests.append(Received(self.command, path, query, headers, body, verdict))
                answer = Answer(status=401, json={"error": "bad signature"}) if verdict is False else target._next()
                try:
                    self._send(answer)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _send(self, answer: Answer) -> None:
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.gzip_bomb is not None:
                    data = gzip.compress(b"\0" * answer.gzip_bomb)
                    answer.headers.setdefault("Content-Encoding", "gzip")
                elif answer.size is not None:
                    data = b"x" * answer.size
                elif answer.body is not None:
                    data = answer.body
                else:
                    data = json.dumps(answer.json).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                if answer.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for start in range(0, len(data), 65536):
                        piece = data[start:start + 65536]
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if answer.drip:
                    for byte in data:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(answer.drip)
                    return
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any  # noqa: N815 - http.server API

        return Handler
