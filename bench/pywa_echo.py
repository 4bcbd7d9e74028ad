"""The comparison side of ``bench/reply.py``: pywa's echo bot on FastAPI + uvicorn.

    BENCH_APP_SECRET=... BENCH_ACCESS_TOKEN=... BENCH_GRAPH_BASE=http://127.0.0.1:8300 \\
        .venv/bin/python bench/pywa_echo.py --port 8200

The bot as pywa's documentation writes it (``pywa_async.WhatsApp`` with ``server=FastAPI()``),
with pywa's own defaults for everything the benchmark does not need to set:

- the webhook at ``POST /webhooks/meta`` is pywa's generated FastAPI route: it checks
  ``X-Hub-Signature-256`` against ``app_secret`` (``validate_updates`` is on by default), answers
  200, and handles the update in a FastAPI background task after the response;
- ``@wa.on_message(filters.text)`` replies through pywa's own client (``msg.reply_text``, which
  posts ``/{phone_id}/messages`` with pywa's ``httpx.AsyncClient``) the text the appliance's flow
  renders: ``Hi <first name>, you said something!`` (``there`` without a profile name). The first
  name is the profile name up to the first space, as the appliance splits it;
- nothing is stored: no journal, no contacts, no database. That is the difference the
  benchmark measures against the appliance, which commits every delivery before answering and
  every reply before and after sending it, encrypted.

Pointing pywa at the stand-in: pywa has no base-URL option. ``pywa.api.GraphAPI.__init__``
hard-codes ``session.base_url = f"https://graph.facebook.com/v{api_version}"`` on the httpx client
it is given (``api_version`` only changes the version). So the bot passes its own
``httpx.AsyncClient()`` as ``session`` (a documented option; created with httpx's defaults, which
is what pywa creates when given none) and, after pywa has configured it, sets that client's
``base_url`` to ``<BENCH_GRAPH_BASE>/v<api_version>``. Every request pywa makes is relative to
``base_url`` (``f"/{sender}/messages"``), so only the host changes.

``GET /readyz`` (added here, not pywa's) answers 200 once the app is serving.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from collections.abc import AsyncIterator

import httpx
import uvicorn
from fastapi import FastAPI
from pywa_async import WhatsApp, filters, types

PHONE_NUMBER_ID = "109876543210987"
WABA_ID = "203040506070809"
API_VERSION = "25.0"
VERIFY_TOKEN = "bench-verify-token"


def reply_text(profile_name: str | None) -> str:
    """``Hi {{contact.first_name|there}}, you said something!`` as the appliance renders it."""
    first = (profile_name or "").strip().partition(" ")[0]
    return f"Hi {first or 'there'}, you said something!"


def create_app(*, app_secret: str, access_token: str, graph_base: str) -> FastAPI:
    session = httpx.AsyncClient()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await session.aclose()

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)
    wa = WhatsApp(
        phone_id=PHONE_NUMBER_ID,
        token=access_token,
        session=session,
        server=app,
        webhook_endpoint="/webhooks/meta",
        verify_token=VERIFY_TOKEN,
        app_secret=app_secret,
        waba_id=WABA_ID,
        api_version=API_VERSION,
        # reply.py's deliveries alternate between two numbers of the WABA (reply_load.py); pywa
        # answers each from the number it was sent to, once it does not filter the other out.
        filter_updates=False,
    )
    # See the module docstring: pywa pins graph.facebook.com on the session it is given.
    session.base_url = f"{graph_base.rstrip('/')}/v{API_VERSION}"

    @wa.on_message(filters.text)
    async def echo(_: WhatsApp, msg: types.Message) -> None:
        await msg.reply_text(reply_text(msg.from_user.name))

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="pywa's echo bot (FastAPI + uvicorn) for bench/reply.py.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    app = create_app(
        app_secret=os.environ["BENCH_APP_SECRET"],
        access_token=os.environ["BENCH_ACCESS_TOKEN"],
        graph_base=os.environ["BENCH_GRAPH_BASE"],
    )
    # The options `aat-appliance serve` passes to uvicorn (same loop, same HTTP parser).
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False,
                server_header=False, timeout_graceful_shutdown=15)


if __name__ == "__main__":
    main()
