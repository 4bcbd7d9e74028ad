"""What every loopback stand-in shares: a real HTTP server on ``127.0.0.1`` at a free port, served
on a daemon thread, and the request-handler plumbing (reading a request, writing an answer).

A stand-in subclasses :class:`LoopbackStandIn`:

- its ``__init__`` calls ``super().__init__()``, which binds the port at once (so
  :attr:`~LoopbackStandIn.base_url` is known before :meth:`~LoopbackStandIn.start`) and creates
  ``self._lock`` for the state the handler threads share;
- it implements the abstract ``_handler_class()``, returning a :class:`StandInHandler`
  subclass (a closure over the stand-in) with its ``do_GET``/``do_POST``/... methods;
- ``start()`` serves and returns the stand-in (``standin = GraphStandIn().start()``);
  ``stop()`` shuts the server down and closes its socket, after which it cannot start again;
- ``quiet_errors = True`` drops the traceback ``http.server`` prints when a handler fails (for
  stand-ins whose clients close kept-alive connections mid-request as a matter of course).

What each stand-in records, and in what shape, is its own: its wire format is the point of it.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self

__all__ = ["LoopbackStandIn", "StandInHandler", "json_or_none"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver listens with a backlog of 5: a burst of new connections (a sender opening
    # 50 at once) overflowed it, the kernel dropped SYNs and clients retried them a second
    # later, so requests sat in the accept queue past their timeout. Meta accepts far more.
    request_queue_size = 128
    quiet_errors = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not self.quiet_errors:
            super().handle_error(request, client_address)


class LoopbackStandIn(ABC):
    """A stand-in's server on loopback; see the module docstring for the subclass contract."""

    quiet_errors: ClassVar[bool] = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._server.quiet_errors = self.quiet_errors
        # A short poll interval: stop() waits for it, once per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @abstractmethod
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class the server runs for each connection."""

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """Where clients are pointed: the origin, unless the stand-in adds a path prefix."""
        return self.origin

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class StandInHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 (kept-alive connections, like the real services), no access log."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        """Exactly the ``Content-Length`` bytes of the request body (``b""`` without one)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def lower_headers(self) -> dict[str, str]:
        """The request headers, keyed in lower case."""
        return {k.lower(): v for k, v in self.headers.items()}

    def send_body(self, status: int, data: bytes, *, content_type: str | None = "application/json",
                  headers: Mapping[str, str] | None = None) -> None:
        """Answer ``status`` with ``data``: ``Content-Type`` (unless None), ``Content-Length``,
        then ``headers``. A client that gave up first (a scripted delay beyond its timeout) is not
        an error: the connection is closed."""
        try:
            self.send_response(status)
            if content_type is not None:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def send_json(self, status: int, payload: Any, *, content_type: str = "application/json",
                  headers: Mapping[str, str] | None = None) -> None:
        """:meth:`send_body` of ``payload`` as JSON."""
        self.send_body(status, json.dumps(payload).encode(), content_type=content_type, headers=headers)


def json_or_none(raw: bytes) -> Any:
    """``raw`` decoded as JSON; None when it is empty or not JSON (recorded as such)."""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
