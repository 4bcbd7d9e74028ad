"""The front door: what ``aat-appliance serve`` listens with, so that a restart takes Meta's
webhooks again before the full app is built.

Building the full app (importing Litestar and every feature, registering ~240 handlers) is most
of a restart's CPU. ``serve`` opens and migrates the workspace, then serves a :class:`FrontDoor`
at once; the door builds the full app in a thread and starts it (its lifespan: journal
processor, sender, task queue) on the event loop. Until the app is open the door answers, itself:

- ``/webhooks/meta``, every method: the full app's :class:`~appliance.ingest.receiver.WebhookReceiver`
  contract, same statuses, bodies and headers (deliveries verified and journaled durably; the
  journal processor applies them once it runs), with the app's access log line;
- ``GET /healthz``; ``GET /readyz``: 200 once the database opens, answers and is migrated (what
  the spec's readiness is; the door only exists after that).

Any other request waits for the app, then the app answers it (nothing is refused because it came
early). Once the app is open, every request goes to it, except ``/webhooks/meta`` when
``open_webhooks`` gives the app's own receiver: the door then answers it with that receiver
(which hands each delivery to the app's journal processor), as before, with no web framework in
the way: a delivery is a reply's hottest inbound path, and the wire answer is the same (tested).
If the app fails to build or start, the failure is logged and kept in :attr:`FrontDoor.failure`,
``on_failure`` is called (``serve`` stops the server and exits with the reason), waiting requests
get 503 ``unavailable``, and the door closes the workspace the app did not take. On shutdown the
door stops the app (which closes the workspace) or, when it never opened, closes the workspace
itself (a request still waiting then gets 503 too).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from appliance.errors import AatError, ServiceUnavailable, error_body
from appliance.ingest.receiver import WebhookReceiver
from appliance.store.workspace import Workspace
from appliance.web.access_log import AccessLogMiddleware
from appliance.web.readiness import readiness

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["FrontDoor", "AppFailed"]

log = logging.getLogger("aat.front")

_JSON = (b"content-type", b"application/json")
_WEBHOOKS = "/webhooks/meta"


class AppFailed(Exception):
    """The full app did not start; the message is its reason (one line)."""


class FrontDoor:
    """The ASGI app ``serve`` runs (see the module docstring).

    ``build`` runs in a thread and returns the full ASGI app; ``on_open(app)`` is called on the
    event loop once it has started (``serve`` wakes the journal processor there, for deliveries
    the door journaled while it started); ``on_failure()`` when it could not. ``open_webhooks(app)``
    gives the receiver that answers ``/webhooks/meta`` once the app is open (None: the app does)."""

    def __init__(
        self,
        *,
        workspace: Workspace,
        webhooks: WebhookReceiver,
        build: Callable[[], ASGIApp],
        on_open: Callable[[ASGIApp], None] = lambda app: None,
        on_failure: Callable[[], None] = lambda: None,
        open_webhooks: Callable[[ASGIApp], WebhookReceiver] | None = None,
    ) -> None:
        self._workspace = workspace
        # What answers /webhooks/meta here: the door's receiver, then (once the app is open) the
        # app's, or None: the app answers it.
        self._webhooks: ASGIApp | None = _answering(webhooks)
        self._open_webhooks = open_webhooks
        self._build = build
        self._on_open = on_open
        self.on_failure = on_failure
        self._app: ASGIApp | None = None
        self._opened = asyncio.Event()  # the app is open, or failed to
        self._stopping = asyncio.Event()
        self._running: asyncio.Task[None] | None = None
        self.failure: str | None = None

    @property
    def app(self) -> ASGIApp | None:
        """The full app, once it is open."""
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        webhooks = self._webhooks
        if webhooks is not None and scope["type"] == "http" and scope["path"] == _WEBHOOKS:
            scope["path_template"] = _WEBHOOKS  # type: ignore[typeddict-unknown-key]  # for the access log
            await webhooks(scope, receive, send)
            return
        app = self._app
        if app is not None:
            await app(scope, receive, send)
            return
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "http" and await self._answer_early(scope, receive, send):
            return
        await self._opened.wait()
        if self._app is not None:
            await self._app(scope, receive, send)
        elif scope["type"] == "http":
            reason = "failed to start; see its log" if self.failure is not None else "is shutting down"
            await _send_error(send, ServiceUnavailable(f"the appliance {reason}"))

    async def _answer_early(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer what the door answers itself; False for what waits for the app."""
        path = scope["path"]
        if scope["method"] != "GET":
            return False
        if path == "/readyz":
            status, body = await readiness(self._workspace.gateway, started=True)
            await _send_json(send, status, body)
            return True
        if path == "/healthz":
            await _send_json(send, 200, {"status": "ok"})
            return True
        return False

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup: the workspace is open, so the door is ready now
        log.info("front door open: webhooks are journaled, the app is starting")
        self._running = asyncio.create_task(self._run_app(), name="full-app")
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        self._stopping.set()
        await self._running
        await send({"type": "lifespan.shutdown.complete"})

    async def _run_app(self) -> None:
        """Build the app, start it, hand it the requests; stop it when the server stops."""
        lifespan = None
        try:
            app = await asyncio.to_thread(self._build)
            if not self._stopping.is_set():
                starting = _Lifespan(app)
                await starting.start()
                lifespan = starting
        except Exception as exc:  # noqa: BLE001 - any failure to start stops the server, plainly
            self.failure = str(exc) if isinstance(exc, AppFailed) else _reason(exc)
            log.error("the appliance failed to start", extra={"reason": self.failure})
        if lifespan is None:
            self._opened.set()
            await asyncio.to_thread(self._workspace.close)  # the app did not take it
            if self.failure is not None:
                self.on_failure()
            return
        self._webhooks = None if self._open_webhooks is None else _answering(self._open_webhooks(app))
        self._app = app
        self._opened.set()
        self._on_open(app)
        await self._stopping.wait()
        await lifespan.stop()


class _Lifespan:
    """Runs an ASGI app's lifespan protocol in one task (``start``, later ``stop``)."""

    def __init__(self, app: ASGIApp) -> None:
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task = asyncio.create_task(
            app({"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}},  # type: ignore[arg-type]
                self._to_app.get, self._from_app.put),
            name="full-app-lifespan",
        )

    async def start(self) -> None:
        """Raises :class:`AppFailed` when the app reports (or dies of) a failed startup."""
        await self._to_app.put({"type": "lifespan.startup"})
        answer, error = await self._answer()
        if answer != "lifespan.startup.complete":
            raise AppFailed(_reason(error))

    async def stop(self) -> None:
        await self._to_app.put({"type": "lifespan.shutdown"})
        answer, error = await self._answer()
        if answer != "lifespan.shutdown.complete":
            log.error("the appliance did not stop cleanly", extra={"reason": _reason(error)})
        await asyncio.gather(self._task, return_exceptions=True)

    async def _answer(self) -> tuple[str, BaseException | None]:
        """The type of the app's next message, and the exception its lifespan ended with (an
        app reports a failure, then raises it)."""
        answer = asyncio.ensure_future(self._from_app.get())
        await asyncio.wait({answer, self._task}, return_when=asyncio.FIRST_COMPLETED)
        kind = answer.result()["type"] if answer.done() else "lifespan.ended"
        answer.cancel()
        if kind.endswith(".complete"):
            return kind, None
        (error,) = await asyncio.gather(self._task, return_exceptions=True)
        return kind, error if isinstance(error, BaseException) else None


def _reason(error: BaseException | None) -> str:
    """One line saying why: the first error that is not a group of errors, ``Type: text``."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    if error is None:
        return "its lifespan ended without saying why"
    return f"{type(error).__name__}: {error}".splitlines()[0]


def _answering(webhooks: WebhookReceiver) -> ASGIApp:
    """The receiver as the full app answers with it: our errors as JSON, the access log line."""
    return AccessLogMiddleware(_errors_as_json(webhooks))


def _errors_as_json(app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> ASGIApp:
    """``app`` with our errors rendered as the full app renders them (``appliance.web.errors``):
    the ``{"error": ...}`` body with the error's status and headers; anything else a logged 500."""

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, receive, tracked)
        except AatError as exc:
            if started:
                raise
            if exc.status_code >= 500:
                log.error("request failed", extra={"code": exc.code, "cause": type(exc.__cause__).__name__})
            await _send_error(send, exc)
        except Exception as exc:
            if started:
                raise
            log.error("unhandled error", exc_info=exc)
            await _send_json(send, 500, error_body("internal_error", "internal error; it has been logged"))

    return answer  # type: ignore[return-value]


async def _send_error(send: Send, exc: AatError) -> None:
    await _send_json(send, exc.status_code, exc.to_body(), exc.headers())


async def _send_json(send: Send, status: int, body: object, headers: dict[str, str] | None = None) -> None:
    payload = msgspec.json.encode(body)
    raw = [_JSON, (b"content-length", str(len(payload)).encode())]
    raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload, "more_body": False})
