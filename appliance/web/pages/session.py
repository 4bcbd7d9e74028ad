"""Sign in, sign out, invitations, password resets: the pages around a session.

Forms post back to the same origin; a cross-site POST (an ``Origin`` or ``Referer`` of
another site) is refused, which stops login CSRF without a second cookie. The session cookie
is ``aat-session`` (HttpOnly, Secure, SameSite=Lax, Path=/, Max-Age = the absolute expiry).
"""

from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template

from appliance import email
from appliance.audit import Actor, record
from appliance.errors import AatError, Forbidden, TooManyRequests
from appliance.runtime import Runtime
from appliance.team import sessions, store
from appliance.team.auth import SESSION_COOKIE, THEME_COOKIE, session_principal
from appliance.team.signin import MIN_PASSWORD, RESET_VALID, sign_in, sign_out, use_link
from appliance.web.api import RuntimeDep

__all__ = ["SESSION_PAGES", "session_cookie", "same_origin", "page_context"]

Form = Body(media_type=RequestEncodingType.URL_ENCODED)


def session_cookie(token: str, max_age: timedelta) -> Cookie:
    return Cookie(key=SESSION_COOKIE, value=token, httponly=True, secure=True, samesite="lax", path="/",
                  max_age=int(max_age.total_seconds()))


def _clear_cookie() -> Cookie:
    return Cookie(key=SESSION_COOKIE, value="", httponly=True, secure=True, samesite="lax", path="/", max_age=0)


def same_origin(request: Request[Any, Any, Any]) -> None:
    """Refuse a form post that another site made the browser send."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return  # non-browser clients; the session (when there is one) still needs its CSRF token
    host = request.headers.get("host", "")
    if urlsplit(source).netloc != host:
        raise Forbidden("this form was sent from another site", code="cross_site")


def page_context(request: Request[Any, Any, Any], **values: Any) -> dict[str, Any]:
    theme = request.cookies.get(THEME_COOKIE)
    return {"theme": theme if theme in ("light", "dark") else "light", **values}


def _safe_next(value: str | None) -> str:
    # Only paths on this site: "/inbox", not "//evil.example" or "https://evil.example".
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


@get("/signin", sync_to_thread=False)
def signin_page(request: Request[Any, Any, Any]) -> Template:
    return Template("signin.html", context=page_context(request, next_url=_safe_next(request.query_params.get("next"))))


@post("/signin", status_code=303)
async def signin_submit(
    request: Request[Any, Any, Any], runtime: RuntimeDep, data: Annotated[dict[str, str], Form]
) -> Response[Any]:
    same_origin(request)
    email_address = (data.get("email") or "").strip()[:254]
    password = (data.get("password") or "")[:1024]
    next_url = _safe_next(data.get("next"))
    try:
        signed = await sign_in(
            runtime, email_address, password, ip=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"), previous_token=request.cookies.get(SESSION_COOKIE),
        )
    except (TooManyRequests, AatError) as exc:
        status = 429 if isinstance(exc, TooManyRequests) else 401
        return Template("signin.html", status_code=status,
                        context=page_context(request, error=exc.message, email=email_address, next_url=next_url))
    return Redirect(next_url, status_code=303, cookies=[session_cookie(signed.token, signed.max_age)])


@post("/signout", status_code=303)
async def signout_submit(request: Request[Any, Any, Any], runtime: RuntimeDep,
                         data: Annotated[dict[str, str], Form]) -> Response[Any]:
    same_origin(request)
    principal = await session_principal(request)
    token = request.cookies.get(SESSION_COOKIE)
    if principal is not None and token and data.get("csrf_token") == principal.csrf_token:
        await sign_out(runtime, token, ip=request.client.host if request.client else None)
    return Redirect("/signin", status_code=303, cookies=[_clear_cookie()])


async def _link_page(request: Request[Any, Any, Any], runtime: Runtime, token: str, purpose: str) -> Template:
    link = await runtime.db.read(sessions.peek_link, token, purpose)
    heading = "Join the workspace" if purpose == "invite" else "Choose a new password"
    button = "Set password and sign in"
    return Template("set_password.html", status_code=200 if link else 404, context=page_context(
        request, heading=heading, button=button, email=link["email"] if link else None, min_length=MIN_PASSWORD))


async def _link_submit(
    request: Request[Any, Any, Any], runtime: Runtime, token: str, purpose: str, password: str
) -> Response[Any]:
    same_origin(request)
    ip = request.client.host if request.client else None
    try:
        user_id = await use_link(runtime, token, purpose, password, ip=ip)
    except AatError as exc:
        link = await runtime.db.read(sessions.peek_link, token, purpose)
        return Template("set_password.html", status_code=422, context=page_context(
            request, heading="Choose a password", button="Set password and sign in", error=exc.message,
            email=link["email"] if link else None, min_length=MIN_PASSWORD))
    max_age = timedelta(days=runtime.settings.session_max_days)
    cookie_token, _ = await runtime.db.write(
        sessions.new_session, user_id, max_age=max_age, ip=ip, user_agent=request.headers.get("user-agent"))
    return Redirect("/", status_code=303, cookies=[session_cookie(cookie_token, max_age)])


@get("/invite/{token:str}")
async def invite_page(request: Request[Any, Any, Any], runtime: RuntimeDep, token: FromPath[str]) -> Template:
    return await _link_page(request, runtime, token, "invite")


@post("/invite/{token:str}", status_code=303)
async def invite_submit(request: Request[Any, Any, Any], runtime: RuntimeDep, token: FromPath[str],
                        data: Annotated[dict[str, str], Form]) -> Response[Any]:
    return await _link_submit(request, runtime, token, "invite", data.get("password") or "")


@get("/reset/{token:str}")
async def reset_page(request: Request[Any, Any, Any], runtime: RuntimeDep, token: FromPath[str]) -> Template:
    return await _link_page(request, runtime, token, "reset")


@post("/reset/{token:str}", status_code=303)
async def reset_submit(request: Request[Any, Any, Any], runtime: RuntimeDep, token: FromPath[str],
                       data: Annotated[dict[str, str], Form]) -> Response[Any]:
    return await _link_submit(request, runtime, token, "reset", data.get("password") or "")


@get("/forgot")
async def forgot_page(request: Request[Any, Any, Any], runtime: RuntimeDep) -> Template:
    return Template("forgot.html", context=page_context(request, email_enabled=email.configured(runtime.settings)))


@post("/forgot", status_code=200)
async def forgot_submit(request: Request[Any, Any, Any], runtime: RuntimeDep,
                        data: Annotated[dict[str, str], Form]) -> Template:
    """The same answer whether or not the account exists."""
    same_origin(request)
    address = (data.get("email") or "").strip()[:254]
    user = await runtime.db.read(store.credentials_for, address) if address else None
    if user is not None and user["disabled_at"] is None and email.configured(runtime.settings):
        def make(db: Any) -> str:
            token = sessions.new_link(db, "reset", user["id"], valid_for=RESET_VALID)
            record(db, Actor("user", str(user["id"]), user["email"], request.client.host if request.client else None),
                   "user.reset_requested", target_kind="user", target_id=user["id"])
            return token

        token = await runtime.db.write(make)
        await email.send(runtime.settings, to=user["email"], subject="Reset your AAT Systems password",
                         body=f"Choose a new password within 2 hours:\n\n{runtime.settings.public_url}/reset/{token}\n")
    return Template("forgot.html", context=page_context(
        request, email_enabled=email.configured(runtime.settings),
        notice="If that address has an account, a link to reset the password is on its way."))


@post("/theme/{choice:str}", status_code=303)
async def set_theme(request: Request[Any, Any, Any], choice: FromPath[str]) -> Response[Any]:
    same_origin(request)
    theme = choice if choice in ("light", "dark") else "light"
    back = _safe_next(urlsplit(request.headers.get("referer", "/")).path)
    return Redirect(back, status_code=303, cookies=[
        Cookie(key=THEME_COOKIE, value=theme, httponly=True, secure=True, samesite="lax", path="/",
               max_age=365 * 24 * 3600)])


SESSION_PAGES = [signin_page, signin_submit, signout_submit, invite_page, invite_submit, reset_page, reset_submit,
                 forgot_page, forgot_submit, set_theme]
