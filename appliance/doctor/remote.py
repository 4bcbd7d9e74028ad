"""The doctor's checks over the network: the webhook handshake through the public URL, channel
tokens against the Graph API, and the clock against the Graph API's ``Date`` header."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from appliance.connections.store import token_context
from appliance.doctor.local import Context, Result
from appliance.settings import Settings
from appliance.store.keys import KeyMaterialError

__all__ = ["remote_checks", "webhook_check", "channel_checks", "clock_check", "SKEW_WARN_SECONDS", "SKEW_FAIL_SECONDS"]

SKEW_WARN_SECONDS = 30.0
# Meta's signed requests and token expiries are checked against our clock; minutes off breaks them.
SKEW_FAIL_SECONDS = 300.0


def _why(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError) and "CERTIFICATE" in str(exc).upper():
        return "its TLS certificate is not trusted (Meta requires a valid certificate)"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def webhook_check(settings: Settings, client: httpx.Client) -> Result:
    token = settings.meta_verify_token.get_secret_value() if settings.meta_verify_token else ""
    if not token:
        return Result("webhook", "fail", "not checked: AAT_META_VERIFY_TOKEN is not set")
    challenge = secrets.token_hex(8)
    url = f"{settings.public_url}/webhooks/meta"
    try:
        response = client.get(url, params={"hub.mode": "subscribe", "hub.verify_token": token,
                                           "hub.challenge": challenge})
    except httpx.HTTPError as exc:
        return Result("webhook", "fail", f"{url} is not reachable: {_why(exc)}")
    if response.status_code == 200 and response.text == challenge:
        return Result("webhook", "ok", f"{url} answers Meta's handshake with this verify token")
    if response.status_code == 403:
        return Result("webhook", "fail", f"{url} refused this verify token: the public URL reaches an "
                      "appliance with another AAT_META_VERIFY_TOKEN")
    return Result("webhook", "fail", f"{url} answered HTTP {response.status_code} to the handshake instead "
                  "of echoing the challenge: the public URL does not reach this appliance's webhook")


def _graph_error(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
        return f"{error.get('message', 'error')} (code {error.get('code', '?')})"
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}"


def channel_checks(settings: Settings, client: httpx.Client, ctx: Context,
                   dates: list[datetime]) -> list[Result]:
    if ctx.fields is None or ctx.data_key is None:
        return []
    if not ctx.channels:
        return [Result("channels", "ok", "no channel connected yet")]
    out = []
    for ch in ctx.channels:
        name = f"{ch['type']} channel {ch['id']}"
        try:
            token = ctx.fields.decrypt(ch["token_enc"], token_context(ch["type"], ch["external_id"]))
        except KeyMaterialError:
            out.append(Result(name, "fail", "its token does not decrypt with this master key: connect it again"))
            continue
        instagram_login = ch["type"] == "instagram" and not ch["page_id"]
        path = f"{ch['external_id']}"
        url = settings.instagram_url(path) if instagram_login else settings.graph_url(path)
        try:
            response = client.get(url, params={"fields": "id"}, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            out.append(Result(name, "fail", f"the Graph API is not reachable: {_why(exc)}"))
            continue
        _note_date(response, dates)
        if response.status_code == 200:
            out.append(Result(name, "ok", "the Graph API accepts its token"))
        else:
            out.append(Result(name, "fail", f"the Graph API refused its token: {_graph_error(response)}; "
                              "reconnect the channel"))
    return out


def _note_date(response: httpx.Response, dates: list[datetime]) -> None:
    try:
        dates.append(parsedate_to_datetime(response.headers["date"]))
    except (KeyError, TypeError, ValueError):
        pass


def clock_check(settings: Settings, client: httpx.Client, dates: list[datetime]) -> Result:
    if not dates:
        try:
            _note_date(client.get(settings.graph_url("me")), dates)
        except httpx.HTTPError as exc:
            return Result("clock", "warn", f"not checked: the Graph API is not reachable ({_why(exc)})")
    if not dates:
        return Result("clock", "warn", "not checked: the Graph API sent no Date header")
    skew = (datetime.now(UTC) - dates[-1]).total_seconds()
    text = f"{abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the Graph API's clock"
    if abs(skew) > SKEW_FAIL_SECONDS:
        return Result("clock", "fail", text + ": synchronise it (NTP); signatures and expiries are checked against it")
    if abs(skew) > SKEW_WARN_SECONDS:
        return Result("clock", "warn", text + ": enable NTP")
    return Result("clock", "ok", text)


def remote_checks(settings: Settings, client: httpx.Client, ctx: Context) -> list[Result]:
    dates: list[datetime] = []
    results = [webhook_check(settings, client), *channel_checks(settings, client, ctx, dates)]
    results.append(clock_check(settings, client, dates))
    return results
