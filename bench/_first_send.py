"""The first Graph send at the instant a restart is ready, for ``bench/footprint.py``.

    python bench/_first_send.py        (AAT_MASTER_KEY in the environment)

In one fresh interpreter: the imports ``aat-appliance serve`` does, then what the lifespan does
once ready (``appliance.channels.transport.preload()``: aiohttp loaded in a thread), then at
once one POST through the appliance's own client (``appliance.app._http_client``) to a loopback
HTTP server, and a second one. Prints one JSON line: seconds for each. The first is the longest
a send can wait after a restart (aiohttp still loading); a send that comes later does not wait.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import tempfile
import threading
import time

import appliance.cli  # noqa: F401
from appliance.app import _http_client
from appliance.channels import transport
from appliance.settings import Settings

ANSWER = b'{"messaging_product":"whatsapp","messages":[{"id":"wamid.BENCH"}]}'


class _Graph(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, *args: object) -> None:
        pass


async def _main(url: str) -> dict[str, float]:
    client = _http_client(Settings(data_dir=tempfile.mkdtemp(prefix="aat-first-send-")))
    if hasattr(transport, "preload"):  # trees from before the lazy start imported aiohttp with the app
        transport.preload()
    try:
        seconds = []
        for _ in range(2):
            started = time.perf_counter()
            response = await client.post(url, json={"messaging_product": "whatsapp", "to": "15550001111"})
            seconds.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"the loopback server answered {response.status_code}")
    finally:
        await client.aclose()
    return {"first_send_s": round(seconds[0], 4), "second_send_s": round(seconds[1], 4)}


if __name__ == "__main__":
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Graph)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps(asyncio.run(_main(f"http://127.0.0.1:{server.server_address[1]}/v25.0/106/messages"))))
