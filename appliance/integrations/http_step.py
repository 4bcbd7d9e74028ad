"""The ``http_request`` flow step: one outside HTTP call, made through the SSRF-safe client.

The engine hands over ``{method, url, headers, body, timeout_seconds}`` with templates already
rendered (values in the URL percent-encoded). The call gets at most 10 s in all (redirects and
reading the body included), follows at most 3 redirects (each hop's address judged again),
and reads at most 1 MiB. A 2xx answer comes back as ``data``: the decoded JSON, or the text
when the body is not JSON; the engine applies the step's ``save`` paths to it. Anything else is
an error reason the step's ``on_error`` branch is taken with:

``invalid_url`` ``invalid_header`` ``blocked_address`` ``dns_error`` ``connect_error`` ``timeout``
``response_too_large`` ``unsupported_encoding`` ``bad_redirect`` ``insecure_redirect``
``too_many_redirects`` ``http_<status>`` ``http_error``

Logs carry the run, the step, the outcome and the status: never the URL, headers or bodies,
which hold whatever the flow put there (a contact's e-mail in a query string, an API key).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from appliance.flows.effects import CallOut, CallResult
from appliance.integrations.safe_http import (
    BadRedirect,
    BlockedAddress,
    ResponseTooLarge,
    Resolver,
    UnresolvableHost,
    UnsupportedEncoding,
    fetch,
    safe_client,
    system_resolver,
)
from appliance.integrations.ssrf import allow_private_effective, host_refusal

if TYPE_CHECKING:
    from appliance.runtime import Runtime
    from appliance.settings import Settings

__all__ = ["execute", "perform", "private_allowed", "MAX_SECONDS"]

log = logging.getLogger("aat.integrations.http")

MAX_SECONDS = 10.0
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def private_allowed(settings: Settings) -> bool:
    """``AAT_HTTP_ALLOW_PRIVATE``, unless the appliance is served over https (then refused;
    :func:`appliance.integrations.install` logs the warning once)."""
    return allow_private_effective(settings.http_allow_private, settings.public_url)


def _body(body: Any, headers: dict[str, str]) -> bytes | None:
    has_type = any(k.lower() == "content-type" for k in headers)
    if body is None:
        return None
    if isinstance(body, str):
        if not has_type:
            headers["Content-Type"] = "text/plain; charset=utf-8"
        return body.encode("utf-8", errors="replace")
    if not has_type:
        headers["Content-Type"] = "application/json"
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8", errors="replace")


def _decoded(body: bytes, headers: httpx.Headers) -> Any:
    text = body.decode(_charset(headers), errors="replace")
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON (or absurdly nested): the text itself
        return text


def _charset(headers: httpx.Headers) -> str:
    for part in headers.get("content-type", "").split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            try:
                "".encode(value.strip('"'))
                return value.strip('"')
            except LookupError:
                break
    return "utf-8"


async def perform(
    request: Mapping[str, Any], *, allow_private: bool, resolver: Resolver = system_resolver
) -> tuple[bool, Any, str | None, int | None]:
    """``(ok, data, error, status)`` for one step's request; never raises for what the remote
    side or the network does."""
    try:
        url = httpx.URL(str(request.get("url") or ""))
    except (httpx.InvalidURL, TypeError):
        return False, None, "invalid_url", None
    if url.scheme not in ("http", "https") or not url.host:
        return False, None, "invalid_url", None
    if host_refusal(url.host, allow_private=allow_private) is not None:
        return False, None, "blocked_address", None
    headers = {str(k): str(v) for k, v in (request.get("headers") or {}).items()}
    if any(_CONTROL.search(v) for v in headers.values()):
        return False, None, "invalid_header", None  # a rendered value tried to add a header line
    content = _body(request.get("body"), headers)
    # Non-ASCII values (a contact's name) go out as UTF-8 bytes; httpx would refuse the str.
    wire: dict[str, str | bytes] = {k: v if v.isascii() else v.encode() for k, v in headers.items()}
    seconds = min(float(request.get("timeout_seconds") or MAX_SECONDS), MAX_SECONDS)
    try:
        async with safe_client(allow_private=allow_private, timeout=seconds, resolver=resolver) as client:
            fetched = await fetch(client, str(request.get("method") or "GET"), url, headers=wire,
                                  content=content, deadline=seconds)
    except BlockedAddress:
        return False, None, "blocked_address", None
    except UnresolvableHost:
        return False, None, "dns_error", None
    except ResponseTooLarge:
        return False, None, "response_too_large", None
    except UnsupportedEncoding:
        return False, None, "unsupported_encoding", None
    except BadRedirect as exc:
        return False, None, exc.reason, None
    except (TimeoutError, httpx.TimeoutException):
        return False, None, "timeout", None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        return False, None, "invalid_url", None
    except httpx.TransportError:
        return False, None, "connect_error", None
    except httpx.HTTPError:
        return False, None, "http_error", None
    if not 200 <= fetched.status < 300:
        return False, None, f"http_{fetched.status}", fetched.status
    return True, _decoded(fetched.body, fetched.headers), None, fetched.status


async def execute(runtime: Runtime, run_id: int, call: CallOut) -> CallResult:
    """The ``http_request`` executor registered in ``runtime.executors``."""
    started = time.perf_counter()
    ok, data, error, status = await perform(call.request, allow_private=private_allowed(runtime.settings))
    log.info(
        "http_request step",
        extra={"run_id": run_id, "step": call.step, "outcome": "ok" if ok else error, "status": status,
               "duration_ms": round((time.perf_counter() - started) * 1000, 1)},
    )
    return CallResult(step=call.step, ok=ok, data=data, error=error)
