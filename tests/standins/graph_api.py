"""A stand-in for Meta's Graph API send endpoints: a real HTTP server on loopback.

It speaks Meta's wire format (``POST /{version}/{id}/messages`` with a Bearer token, JSON in,
``{"recipient_id", "message_id"}`` / ``{"messaging_product", "contacts", "messages"}`` out,
``{"error": {...}}`` on failure), records every request exactly as received, and enforces
Meta's limits: per-asset sends per sliding second, counted on arrival like Meta counts them
(``rate_limits``; default 80 for a WhatsApp number, 300 for a Page or Instagram account,
§7), and the message-size limits of docs/spec/meta-platform.md §5. A request that breaks a
limit is answered the way Meta would (code 130429 / 613 / 100) and also recorded in
``violations``, which tests assert is empty.

Tests script failures with :meth:`GraphStandIn.fail_next` (Graph error bodies, bare HTTP
statuses, or a dropped connection) and read :attr:`requests`.

``GET /{waba-id}/message_templates`` answers from :attr:`GraphStandIn.templates` (account id
-> Meta's template objects), in pages of ``limit`` (default 25) with ``paging.cursors.after``
and ``paging.next`` while more follow, like Meta.

``fast=True`` (benchmarks: a hundred thousand sends) keeps only when each send arrived and to
whom (:meth:`GraphStandIn.arrivals`) instead of every request, and checks no body limits;
the rate limits are enforced the same way.
"""

from __future__ import annotations

import itertools
import time
import urllib.parse
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.standins.loopback import LoopbackStandIn, StandInHandler, json_or_none

__all__ = ["GraphStandIn", "RecordedRequest", "Scripted"]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    json: Any
    at: float


@dataclass
class Scripted:
    """One scripted answer: an HTTP status with a Graph error, a raw body, or a dropped
    connection (``drop=True``)."""

    status: int = 400
    error: dict[str, Any] | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    delay: float = 0.0


_WHATSAPP_LIMITS = {"text": 4096, "button_title": 20, "buttons": 3, "rows": 10, "row_title": 24, "body": 1024}


class GraphStandIn(LoopbackStandIn):
    def __init__(self, *, rate_limits: dict[str, int] | None = None, fast: bool = False) -> None:
        self.fast = fast
        self._arrivals: dict[str, list[tuple[float, str, bool]]] = defaultdict(list)  # fast mode
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self.tokens: dict[str, str] = {}  # asset id -> the token it accepts (default: any)
        # Everything that is not a send (comment replies, profile settings, lookups) is
        # recorded here, so `requests` stays the list of messages sent.
        self.other_requests: list[RecordedRequest] = []
        self.objects: dict[str, dict[str, Any]] = {}  # GET /{id}?fields=... answers
        self.templates: dict[str, list[dict[str, Any]]] = {}  # GET /{waba-id}/message_templates
        self.rate_limits = dict(rate_limits or {})  # asset id -> sends per second (default 80/300)
        self._script: dict[str, deque[Scripted]] = defaultdict(deque)
        self._sent_at: dict[str, deque[float]] = defaultdict(deque)
        self._ids = itertools.count(1)
        super().__init__()

    # --- scripting ------------------------------------------------------------------------
    def fail_next(self, asset_id: str, *answers: Scripted) -> None:
        with self._lock:
            self._script[asset_id].extend(answers)

    @staticmethod
    def graph_error(code: int, *, subcode: int | None = None, status: int = 400,
                    message: str = "error", headers: dict[str, str] | None = None) -> Scripted:
        error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code,
                                 "fbtrace_id": f"trace{code}"}
        if subcode is not None:
            error["error_subcode"] = subcode
        return Scripted(status=status, error=error, headers=headers or {})

    def arrivals(self, asset_id: str) -> list[tuple[float, str, bool]]:
        """``(time.monotonic() on arrival, recipient, within the rate limit)`` of every send to
        ``asset_id``, in arrival order."""
        with self._lock:
            if self.fast:
                return list(self._arrivals[asset_id])
        # Replaying the rate check is not possible afterwards: outside fast mode, read violations.
        return [(r.at, self._recipient(r.json), True) for r in self.sends_to(asset_id)]

    @staticmethod
    def _recipient(body: Any) -> str:
        if not isinstance(body, dict):
            return ""
        if body.get("messaging_product") == "whatsapp":
            return str(body.get("to") or body.get("recipient"))
        recipient = body.get("recipient")
        return str(recipient.get("id") or recipient.get("comment_id")) if isinstance(recipient, dict) else ""

    def sends_to(self, asset_id: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.split("/")[2:3] == [asset_id]]

    # --- the server -------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(StandInHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                self.do_POST("GET")

            def do_DELETE(self) -> None:  # noqa: N802 - http.server API
                self.do_POST("DELETE")

            def do_POST(self, method: str = "POST") -> None:  # noqa: N802 - http.server API
                raw = self.read_body()
                path, _, query = self.path.partition("?")
                record = RecordedRequest(method, path, query, self.lower_headers(), json_or_none(raw),
                                         time.monotonic())
                status, payload, headers, drop, delay = standin._answer(record)
                if delay:
                    time.sleep(delay)
                if drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                if isinstance(payload, bytes):
                    self.send_body(status, payload, headers=headers)
                else:
                    self.send_json(status, payload, headers=headers)

        return Handler

    def _other(self, req: RecordedRequest, parts: list[str]) -> tuple[int, Any, dict[str, str], bool, float]:
        """Comment replies, conversation profiles and object lookups."""
        self.other_requests.append(req)
        if not req.headers.get("authorization", "").startswith("Bearer "):
            return 401, {"error": {"message": "Invalid OAuth access token.", "code": 190}}, {}, False, 0.0
        n = next(self._ids)
        if req.method == "GET" and len(parts) == 2:
            known = self.objects.get(parts[1])
            if known is None:
                return 404, {"error": {"message": "Unsupported get request.", "code": 100, "error_subcode": 33}}, {}, False, 0.0
            return 200, {"id": parts[1], **known}, {}, False, 0.0
        if len(parts) == 3 and parts[2] in ("comments", "replies") and req.method == "POST":
            if not isinstance(req.json, dict) or not req.json.get("message"):
                return 400, {"error": {"message": "(#100) message is required", "code": 100}}, {}, False, 0.0
            return 200, {"id": f"reply_{n}"}, {}, False, 0.0
        if len(parts) == 3 and self._script[parts[1]]:
            scripted = self._script[parts[1]].popleft()
            payload = scripted.body if scripted.body is not None else {"error": scripted.error or {"message": "error"}}
            return scripted.status, payload, scripted.headers, scripted.drop, scripted.delay
        if len(parts) == 3 and parts[2] == "message_templates" and req.method == "GET":
            return self._templates(req, parts[1])
        if len(parts) == 3 and parts[2] == "messenger_profile" and req.method in ("POST", "DELETE"):
            return 200, {"result": "success"}, {}, False, 0.0
        if len(parts) == 3 and parts[2] == "conversational_automation" and req.method == "POST":
            return 200, {"success": True}, {}, False, 0.0
        return 404, {"error": {"message": "Unknown path", "code": 803}}, {}, False, 0.0

    def _templates(self, req: RecordedRequest, waba_id: str) -> tuple[int, Any, dict[str, str], bool, float]:
        query = urllib.parse.parse_qs(req.query)
        limit = int(query.get("limit", ["25"])[0])
        start = int(query.get("after", ["0"])[0])
        items = self.templates.get(waba_id, [])
        chunk = items[start:start + limit]
        paging: dict[str, Any] = {"cursors": {"before": str(start), "after": str(start + len(chunk))}}
        if start + limit < len(items):
            paging["next"] = f"{self.base_url}{req.path}?limit={limit}&after={start + len(chunk)}"
        return 200, {"data": chunk, "paging": paging}, {}, False, 0.0

    def _answer(self, req: RecordedRequest) -> tuple[int, Any, dict[str, str], bool, float]:
        parts = req.path.strip("/").split("/")
        with self._lock:
            if len(parts) != 3 or parts[2] != "messages" or req.method != "POST":
                return self._other(req, parts)
            asset = parts[1]
            if not self.fast:
                self.requests.append(req)
            within = self._check_rate(asset, req.at, 80 if self._is_whatsapp(req) else 300)
            if self.fast:
                self._arrivals[asset].append((req.at, self._recipient(req.json), within))
            if not within:
                self.violations.append(f"rate limit exceeded for {asset}")
                return 400, {"error": {"message": "rate limit", "code": 130429 if self._is_whatsapp(req) else 613}}, {}, False, 0.0
            auth = req.headers.get("authorization", "")
            expected = self.tokens.get(asset)
            if not auth.startswith("Bearer ") or (expected is not None and auth != f"Bearer {expected}"):
                return 401, {"error": {"message": "Invalid OAuth access token.", "code": 190, "error_subcode": 463}}, {}, False, 0.0
            problem = None if self.fast else self._check_body(req.json)
            if problem:
                self.violations.append(f"{asset}: {problem}")
                return 400, {"error": {"message": f"(#100) {problem}", "code": 100}}, {}, False, 0.0
            if self._script[asset]:
                s = self._script[asset].popleft()
                payload = s.body if s.body is not None else {"error": s.error or {"message": "error"}}
                return s.status, payload, s.headers, s.drop, s.delay
            n = next(self._ids)
        if self._is_whatsapp(req):
            to = req.json.get("to") or req.json.get("recipient")
            return 200, {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                         "messages": [{"id": f"wamid.OUT{n}", "message_status": "accepted"}]}, {}, False, 0.0
        return 200, {"recipient_id": (req.json.get("recipient") or {}).get("id"), "message_id": f"m_OUT{n}"}, {}, False, 0.0

    @staticmethod
    def _is_whatsapp(req: RecordedRequest) -> bool:
        return isinstance(req.json, dict) and req.json.get("messaging_product") == "whatsapp"

    def _check_rate(self, asset: str, at: float, default: int) -> bool:
        limit = self.rate_limits.get(asset, default)
        window = self._sent_at[asset]
        while window and at - window[0] >= 1.0:
            window.popleft()
        if len(window) >= limit:
            return False
        window.append(at)
        return True

    @staticmethod
    def _check_body(body: Any) -> str | None:
        """Meta's documented limits; the first one broken, or None."""
        if not isinstance(body, dict):
            return "body is not a JSON object"
        if body.get("messaging_product") == "whatsapp":
            if not (body.get("to") or body.get("recipient")):
                return "missing recipient"
            kind = body.get("type")
            if kind == "text" and len(body["text"]["body"]) > _WHATSAPP_LIMITS["text"]:
                return "text too long"
            if kind == "interactive":
                inter = body["interactive"]
                if len(inter.get("body", {}).get("text", "")) > 4096:
                    return "interactive body too long"
                buttons = inter.get("action", {}).get("buttons", [])
                if len(buttons) > _WHATSAPP_LIMITS["buttons"]:
                    return "too many buttons"
                if any(len(b["reply"]["title"]) > _WHATSAPP_LIMITS["button_title"] for b in buttons):
                    return "button title too long"
                rows = [r for s in inter.get("action", {}).get("sections", []) for r in s.get("rows", [])]
                if len(rows) > _WHATSAPP_LIMITS["rows"]:
                    return "too many rows"
                if any(len(r["title"]) > _WHATSAPP_LIMITS["row_title"] for r in rows):
                    return "row title too long"
            return None
        recipient = body.get("recipient")
        if not isinstance(recipient, dict) or not (recipient.get("id") or recipient.get("comment_id")):
            return "missing recipient"
        message = body.get("message")
        if not isinstance(message, dict):
            return "missing message"
        if body.get("messaging_type") == "MESSAGE_TAG" and not body.get("tag"):
            return "MESSAGE_TAG without tag"
        if len(message.get("text", "")) > 2000:
            return "text too long"
        replies = message.get("quick_replies", [])
        if len(replies) > 13 or any(len(q.get("title", "")) > 20 for q in replies):
            return "quick replies over the limit"
        return None
