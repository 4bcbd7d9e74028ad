"""A keep-alive HTTP/1.1 server on loopback that counts the connections it accepts: for tests
that check a client's pool keeps connections across bursts instead of reopening them."""

from __future__ import annotations

import asyncio

__all__ = ["CountingServer"]


class CountingServer:
    """A keep-alive HTTP/1.1 server that answers every request ``200 {}`` a little later and
    counts the connections it accepted."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                     if line.lower().startswith(b"content-length:")), 0,
                )
                await reader.readexactly(length)
                self.requests += 1
                await asyncio.sleep(0.02)  # keep many requests in flight at once
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
