"""The forwarding client (``routing.wire``) against a raw local HTTP server scripted per test:
the exact bytes sent, framing of the answers, keep-alive reuse, stale connections, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from control_plane.routing.wire import Wire, WireError

Answer = Callable[[int], bytes | None]  # request number -> raw answer, None: never answer


class Server:
    def __init__(self, answer: Answer, *, close_after_answer: bool = False) -> None:
        self.answer = answer
        self.close_after_answer = close_after_answer
        self.requests: list[bytes] = []
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                self.requests.append(head + await reader.readexactly(length))
                raw = self.answer(len(self.requests))
                if raw is None:
                    await asyncio.sleep(3600)
                writer.write(raw)  # type: ignore[arg-type]
                await writer.drain()
                if self.close_after_answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\nEVENT_RECEIVED"


async def test_the_request_is_exactly_a_signed_post_and_the_connection_is_kept() -> None:
    server = Server(lambda n: OK)
    async with server as url:
        wire = Wire(user_agent="aat-control-plane/test")
        for _ in range(3):
            assert await wire.post(url, "/webhooks/meta", b'{"object":"page"}',
                                   {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=ab"}, 5) == 200
        await wire.aclose()
    port = url.rsplit(":", 1)[1]
    assert server.requests[0] == (
        f"POST /webhooks/meta HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: aat-control-plane/test\r\n"
        "Content-Length: 17\r\nContent-Type: application/json\r\nX-Hub-Signature-256: sha256=ab\r\n\r\n"
        '{"object":"page"}').encode()
    assert len(server.requests) == 3 and server.connections == 1


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n4;x=1\r\noops\r\n0\r\nX-T: 1\r\n\r\n",
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops",
])
async def test_framed_answers_are_read_whole_and_the_next_request_reuses_the_connection(answer: bytes) -> None:
    server = Server(lambda n: answer if n == 1 else OK)
    async with server as url:
        wire = Wire(user_agent="t")
        assert await wire.post(url, "/p", b"x", {}, 5) == 500
        assert await wire.post(url, "/p", b"x", {}, 5) == 200
        await wire.aclose()
    assert server.connections == 1


async def test_an_answer_without_length_or_with_close_ends_the_connection() -> None:
    answers = {1: b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
               2: b"HTTP/1.0 200 OK\r\n\r\nbody until close"}
    server = Server(lambda n: answers.get(n, OK), close_after_answer=True)
    async with server as url:
        wire = Wire(user_agent="t")
        assert [await wire.post(url, "/p", b"x", {}, 5) for _ in range(3)] == [202, 200, 200]
        await wire.aclose()
    assert server.connections == 3


async def test_a_kept_connection_the_server_closed_is_replaced_once() -> None:
    server = Server(lambda n: OK, close_after_answer=True)  # answers with keep-alive, then hangs up
    async with server as url:
        wire = Wire(user_agent="t")
        assert await wire.post(url, "/p", b"1", {}, 5) == 200
        await asyncio.sleep(0.05)
        assert await wire.post(url, "/p", b"2", {}, 5) == 200
        await wire.aclose()
    assert [r[-1:] for r in server.requests] == [b"1", b"2"] and server.connections == 2


async def test_failures_are_short_reasons() -> None:
    wire = Wire(user_agent="t")
    server = Server(lambda n: None)
    async with server as url:
        with pytest.raises(WireError, match="^timeout$"):
            await wire.post(url, "/p", b"x", {}, 0.3)
    with pytest.raises(WireError, match="^ConnectionRefusedError$"):
        await wire.post(url, "/p", b"x", {}, 2)
    garbage = Server(lambda n: b"SMTP ready\r\n\r\n")
    async with garbage as url:
        with pytest.raises(WireError, match="^ValueError$"):
            await wire.post(url, "/p", b"x", {}, 2)
    with pytest.raises(WireError, match="unusable tenant URL"):
        await wire.post("ftp://example", "/p", b"x", {}, 2)
    await wire.aclose()


async def test_forgetting_an_origin_closes_its_idle_connections() -> None:
    server = Server(lambda n: OK)
    async with server as url:
        wire = Wire(user_agent="t")
        assert await wire.post(url, "/p", b"x", {}, 5) == 200
        wire.forget(url)
        assert await wire.post(url, "/p", b"x", {}, 5) == 200
        await wire.aclose()
    assert server.connections == 2
