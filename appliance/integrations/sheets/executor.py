"""The ``google_sheets`` flow step: append one row with Sheets API v4 ``values.append``.

Access tokens are kept in memory only, per connection, until a minute before they expire;
then (or when Sheets answers 401) the refresh token is exchanged for a new one, once, under a
lock so concurrent steps share the refresh. A refused refresh (``invalid_grant``: the user
revoked access, or Google expired the grant) marks the connection ``needs_reauth`` and later
steps fail at once with ``google_needs_reauth`` instead of asking Google again.

Error reasons the step's ``on_error`` is taken with: ``not_configured``,
``google_needs_reauth``, ``google_auth_failed``, ``timeout``, ``connect_error``,
``http_<status>`` (403: the connected account may not edit the spreadsheet; 404: no such
spreadsheet; 400: no such sheet). A 5xx is not retried: ``values.append`` is not idempotent,
and a retry after a lost answer could add the row twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from appliance.flows.effects import CallOut, CallResult
from appliance.integrations.sheets import google, store
from appliance.timeutil import iso_now

if TYPE_CHECKING:
    from appliance.runtime import Runtime

__all__ = ["SheetsExecutor"]

log = logging.getLogger("aat.integrations.sheets")

_EARLY = 60.0  # refresh this many seconds before Google says the token expires


@dataclass(frozen=True, slots=True)
class _Cached:
    connection: str  # the connection's connected_at: a reconnect starts afresh
    token: str
    expires: float  # time.monotonic()


class _NeedsReauth(Exception):
    pass


class SheetsExecutor:
    """Registered as ``runtime.executors["google_sheets"]``; holds the access-token cache."""

    def __init__(self) -> None:
        self._cached: _Cached | None = None
        self._lock: asyncio.Lock | None = None

    async def __call__(self, runtime: Runtime, run_id: int, call: CallOut) -> CallResult:
        started = time.perf_counter()
        ok, data, error, status = await self._append(runtime, call.request)
        log.info(
            "google_sheets step",
            extra={"run_id": run_id, "step": call.step, "outcome": "ok" if ok else error, "status": status,
                   "duration_ms": round((time.perf_counter() - started) * 1000, 1)},
        )
        return CallResult(step=call.step, ok=ok, data=data, error=error)

    def forget(self) -> None:
        self._cached = None

    async def _append(self, runtime: Runtime, request: Any) -> tuple[bool, Any, str | None, int | None]:
        connection = await runtime.db.read(store.get_connection)
        if connection is None:
            return False, None, "not_configured", None
        if connection["status"] == "needs_reauth":
            return False, None, "google_needs_reauth", None
        try:
            for attempt in (1, 2):
                token = await self._access_token(runtime, connection, force=attempt == 2)
                status, body = await google.append_row(
                    runtime.http, runtime.settings, access_token=token, spreadsheet_id=request["spreadsheet_id"],
                    sheet=request["sheet"], values=[str(v) for v in request["values"]],
                )
                if status != 401:
                    break
                self._drop(token)
        except google.GoogleUnavailable as exc:
            return False, None, exc.reason, None
        except _NeedsReauth:
            return False, None, "google_auth_failed", None
        if status == 401:
            return False, None, "google_auth_failed", status
        if not 200 <= status < 300:
            return False, None, f"http_{status}", status
        updates = body.get("updates") if isinstance(body, dict) else None
        return True, {"updates": updates} if isinstance(updates, dict) else {}, None, status

    def _drop(self, token: str) -> None:
        if self._cached is not None and self._cached.token == token:
            self._cached = None

    def _fresh(self, connection: dict[str, Any]) -> str | None:
        cached = self._cached
        if cached and cached.connection == connection["connected_at"] and cached.expires > time.monotonic():
            return cached.token
        return None

    async def _access_token(self, runtime: Runtime, connection: dict[str, Any], *, force: bool) -> str:
        if not force and (token := self._fresh(connection)):
            return token
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            # Another step may have refreshed while this one waited for the lock.
            if not force and (token := self._fresh(connection)):
                return token
            return await self._refresh(runtime, connection)

    def _client(self, runtime: Runtime, connection: dict[str, Any]) -> tuple[str, str] | None:
        if connection["source"] == "manual":
            return connection["client_id"], runtime.fields.decrypt(connection["client_secret_enc"], store.SECRET_CONTEXT)
        secret = runtime.settings.google_client_secret
        if connection["client_id"] != runtime.settings.google_client_id or secret is None:
            return None  # the hosted client changed or is gone: its grants no longer apply
        return connection["client_id"], secret.get_secret_value()

    async def _refresh(self, runtime: Runtime, connection: dict[str, Any]) -> str:
        client = self._client(runtime, connection)
        if client is None:
            await self._needs_reauth(runtime, connection, "client_changed")
        refresh_token = runtime.fields.decrypt(connection["refresh_token_enc"], store.REFRESH_CONTEXT)
        try:
            tokens = await google.refresh(runtime.http, runtime.settings, client_id=client[0],
                                          client_secret=client[1], refresh_token=refresh_token)
        except google.GoogleAuthError as exc:
            await self._needs_reauth(runtime, connection, exc.reason)
        if tokens.refresh_token and tokens.refresh_token != refresh_token:
            await runtime.db.write(
                store.replace_refresh_token, runtime.fields.encrypt(tokens.refresh_token, store.REFRESH_CONTEXT),
                connected_at=connection["connected_at"], now=iso_now(),
            )
        lifetime = max(0.0, tokens.expires_in - _EARLY)
        self._cached = _Cached(connection["connected_at"], tokens.access_token, time.monotonic() + lifetime)
        log.info("google access token refreshed", extra={"expires_in": round(tokens.expires_in)})
        return tokens.access_token

    async def _needs_reauth(self, runtime: Runtime, connection: dict[str, Any], reason: str) -> NoReturn:
        self._cached = None
        await runtime.db.write(store.mark_needs_reauth, reason, connected_at=connection["connected_at"],
                               now=iso_now())
        log.warning("google connection needs to be connected again", extra={"reason": reason})
        raise _NeedsReauth(reason)
