"""What every signed-in page shares: who is asking, the layout's context, the error pages and
the security headers.

A page handler starts with ``principal = await signed_in(request)``: a missing or expired
session gets a redirect to ``/signin?next=<this page>`` (a fragment request, made by the page's
scripts, gets a 401 instead: the script sends the browser to sign in). A role below the page's
gets the 403 page. Pages never wait on Meta or an AI provider: they read the database only.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.datastructures import ResponseHeader
from litestar.response import Redirect, Template

from appliance.entitlements.service import describe as describe_entitlements
from appliance.entitlements.store import usage as entitlement_usage
from appliance.team.auth import Principal, session_principal
from appliance.team.store import ROLE_RANK
from appliance.timeutil import utcnow
from appliance.web.pages import store
from appliance.web.pages.session import page_context

__all__ = ["SECURITY_HEADERS", "CSP", "Denied", "signed_in", "layout", "denied_page", "is_fragment"]

# No inline scripts or styles anywhere: every script is a file under /static (ES modules), so
# a message that smuggles markup past the templates' escaping still cannot run. Images may come
# from Meta's CDN (https) and data: URLs (QR codes).
CSP = ("default-src 'self'; img-src 'self' https: data:; media-src 'self' https:; style-src 'self'; "
       "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS = [
    ResponseHeader(name="Content-Security-Policy", value=CSP),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
    ResponseHeader(name="Referrer-Policy", value="same-origin"),
    ResponseHeader(name="Cache-Control", value="no-store"),
]


class Denied(Exception):
    """Raised by :func:`signed_in`; carries the response to send instead of the page."""

    def __init__(self, response: Response[Any]) -> None:
        super().__init__("denied")
        self.response = response


def is_fragment(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith(("/inbox/fragments/", "/contacts/fragments/"))


def _this_page(request: Request[Any, Any, Any]) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def signed_in(request: Request[Any, Any, Any], role: str = "agent") -> Principal:
    """The signed-in user, or :class:`Denied` with the sign-in redirect or the 403 page."""
    principal = await session_principal(request)
    if principal is None:
        if is_fragment(request):
            raise Denied(Response("sign in again", status_code=401, media_type="text/plain"))
        raise Denied(Redirect(f"/signin?next={quote(_this_page(request), safe='/')}", status_code=303))
    if ROLE_RANK[principal.role] < ROLE_RANK[role]:
        if is_fragment(request):
            raise Denied(Response("forbidden", status_code=403, media_type="text/plain"))
        raise Denied(await denied_page(request, principal, role))
    return principal


async def layout(request: Request[Any, Any, Any], principal: Principal, active: str, **values: Any) -> dict[str, Any]:
    """The context of ``app.html``: the user, the CSRF token for scripts, the nav's state, the
    banner for channels that need reconnecting and, when the plan has limits, the plan's state
    (``plan``: :func:`appliance.entitlements.service.describe`) for the banner of reached limits."""
    runtime = request.app.state.runtime

    limited = bool(runtime.entitlements["limits"])

    def read(db: Any) -> tuple[list[dict[str, Any]], int, dict[str, int] | None]:
        usage = entitlement_usage(db, utcnow().strftime("%Y-%m")) if limited else None
        return store.broken_channels(db), store.unread_total(db), usage

    broken, unread, usage = await runtime.db.read(read)
    plan = describe_entitlements(runtime.entitlements, usage) if usage is not None else None
    return page_context(
        request, user=principal, role=principal.role, is_admin=ROLE_RANK[principal.role] >= ROLE_RANK["admin"],
        csrf_token=principal.csrf_token, active=active, broken_channels=broken, unread_total=unread,
        plan=plan, **values)


async def denied_page(request: Request[Any, Any, Any], principal: Principal, role: str) -> Template:
    context = await layout(request, principal, active="", needed=role)
    return Template("error.html", status_code=403, context={
        **context, "heading": "You don't have access to this page",
        "message": f"This page is for the {role} role and above; you are signed in as {principal.role}. "
                   "Ask an admin of your workspace if you need it."})


def not_found_page(context: dict[str, Any], what: str) -> Template:
    return Template("error.html", status_code=404, context={
        **context, "heading": f"This {what} does not exist",
        "message": f"It may have been deleted or erased. Go back to the list and pick another {what}."})
