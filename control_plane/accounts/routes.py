"""``GET /auth/google/login`` (``?age_confirmed=true`` at sign-up; ``/auth/google/start`` is the same route),
``GET /auth/google/callback``, the same two for ``/auth/meta``,
``POST /auth/logout`` (X-CSRF-Token) and ``GET /api/me``."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.params import Parameter
from litestar.response import Redirect

from appliance.errors import BadRequest, Forbidden
from control_plane.accounts.sessions import COOKIE
from control_plane.web import CpDep

__all__ = ["google_start", "google_callback", "meta_start", "meta_callback", "logout", "me"]


def _cookie(value: str, max_age: int) -> Cookie:
    return Cookie(key=COOKIE, value=value, httponly=True, secure=True, samesite="lax", path="/", max_age=max_age)


@get(["/auth/google/login", "/auth/google/start"])
async def google_start(cp: CpDep, age_confirmed: bool = False) -> Redirect:
    return Redirect(path=await cp.google.start(age_confirmed=age_confirmed), status_code=302)


@get("/auth/google/callback")
async def google_callback(cp: CpDep, oauth_state: Annotated[str, Parameter(query="state")] = "", code: str = "",
                          error: str = "") -> Redirect:
    if error:
        raise Forbidden(f"the provider ended the sign-in: {error[:100]}", code="sign_in_denied")
    if not oauth_state or not code:
        raise BadRequest("the callback needs state and code", code="bad_callback")
    claims, age_confirmed = await cp.google.finish(code=code, state=oauth_state)
    token = await cp.sessions.sign_in("google", claims, age_confirmed=age_confirmed)
    max_age = int(cp.settings.session_days * 86400)
    return Redirect(path="/", status_code=302, cookies=[_cookie(token, max_age)])


@get(["/auth/meta/login", "/auth/meta/start"])
async def meta_start(cp: CpDep, age_confirmed: bool = False) -> Redirect:
    return Redirect(path=await cp.meta_sign_in.start(age_confirmed=age_confirmed), status_code=302)


@get("/auth/meta/callback")
async def meta_callback(cp: CpDep, oauth_state: Annotated[str, Parameter(query="state")] = "", code: str = "",
                        error: str = "") -> Redirect:
    if error:
        raise Forbidden(f"the sign-in was not completed: {error[:100]}", code="sign_in_denied")
    if not oauth_state or not code:
        raise BadRequest("the callback needs state and code", code="bad_callback")
    claims, age_confirmed = await cp.meta_sign_in.finish(code=code, state=oauth_state)
    token = await cp.sessions.sign_in("meta", claims, age_confirmed=age_confirmed)
    return Redirect(path="/", status_code=302, cookies=[_cookie(token, int(cp.settings.session_days * 86400))])


@post("/auth/logout", status_code=204)
async def logout(request: Request[Any, Any, Any], cp: CpDep) -> Response[None]:
    token = request.cookies.get(COOKIE)
    await cp.sessions.unsafe(token, request.headers.get("x-csrf-token"))
    await cp.sessions.sign_out(token)  # type: ignore[arg-type]
    return Response(None, status_code=204, cookies=[_cookie("", 0)])


@get("/api/me")
async def me(request: Request[Any, Any, Any], cp: CpDep) -> dict[str, Any]:
    return await cp.sessions.me(request.cookies.get(COOKIE))
