"""The Graph API calls of channel onboarding and token health (docs/spec/meta-platform.md §9).

Every call goes through the control plane's one ``httpx.AsyncClient`` to
``AAT_GRAPH_API_BASE/AAT_GRAPH_API_VERSION``. Tokens travel in the ``access_token`` query
parameter or a Bearer header and are never logged (httpx's URL logging is off). A Graph error
becomes ``GraphError`` with Meta's code and subcode, not its message text.
"""

from __future__ import annotations

from typing import Any

import httpx

from appliance.errors import ServiceUnavailable, Unprocessable
from control_plane.settings import ControlPlaneSettings, PlatformApp

__all__ = ["Graph", "GraphError", "PAGE_FIELDS"]

PAGE_FIELDS = ("messages,messaging_postbacks,message_echoes,message_deliveries,message_reads,messaging_referrals,"
               "message_reactions,messaging_optins,feed")


class GraphError(Unprocessable):
    default_code = "graph_error"

    def __init__(self, what: str, error: dict[str, Any]) -> None:
        self.graph_code = error.get("code")
        self.graph_subcode = error.get("error_subcode")
        super().__init__(f"Meta refused {what} (code {self.graph_code}"
                         + (f", subcode {self.graph_subcode}" if self.graph_subcode else "") + ")")


class Graph:
    def __init__(self, settings: ControlPlaneSettings, platform: PlatformApp, http: httpx.AsyncClient) -> None:
        self.base = f"{platform.graph_api_base.rstrip('/')}/{platform.graph_api_version}"
        self.app_id = settings.meta_app_id
        self.app_secret = platform.meta_app_secret.get_secret_value() if platform.meta_app_secret else None
        self.http = http

    def _app(self) -> tuple[str, str]:
        if not self.app_id or not self.app_secret:
            raise ServiceUnavailable("onboarding needs the platform app: set AAT_CP_META_APP_ID and AAT_META_APP_SECRET",
                                     code="platform_app_missing")
        return self.app_id, self.app_secret

    async def _call(self, what: str, method: str, path: str, *, token: str | None = None,
                    params: dict[str, Any] | None = None, json: Any = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = await self.http.request(method, f"{self.base}/{path.lstrip('/')}", params=params, json=json,
                                               headers=headers, timeout=15.0)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"the Graph API did not answer {what} ({type(exc).__name__})",
                                     code="graph_unreachable") from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400 or (isinstance(body, dict) and "error" in body):
            raise GraphError(what, body.get("error", {}) if isinstance(body, dict) else {})
        return body if isinstance(body, dict) else {}

    async def exchange_code(self, code: str, redirect_uri: str | None = None) -> str:
        app_id, secret = self._app()
        params = {"client_id": app_id, "client_secret": secret, "code": code}
        if redirect_uri:
            params["redirect_uri"] = redirect_uri
        return str((await self._call("the code exchange", "GET", "oauth/access_token", params=params))["access_token"])

    async def long_lived(self, token: str) -> str:
        app_id, secret = self._app()
        params = {"grant_type": "fb_exchange_token", "client_id": app_id, "client_secret": secret,
                  "fb_exchange_token": token}
        return str((await self._call("the long-lived token exchange", "GET", "oauth/access_token", params=params))["access_token"])

    async def pages(self, user_token: str) -> list[dict[str, Any]]:
        pages: list[dict[str, Any]] = []
        params: dict[str, Any] | None = {"fields": "id,name,access_token,tasks", "limit": 100}
        path = "me/accounts"
        while path and len(pages) < 1000:
            body = await self._call("the list of Pages", "GET", path, token=user_token, params=params)
            pages += [p for p in body.get("data", []) if isinstance(p, dict) and p.get("id") and p.get("access_token")]
            after = body.get("paging", {}).get("cursors", {}).get("after") if body.get("paging", {}).get("next") else None
            params = {"fields": "id,name,access_token,tasks", "limit": 100, "after": after} if after else None
            path = "me/accounts" if after else ""
        return pages

    async def subscribe_page(self, page_id: str, page_token: str) -> None:
        await self._call("the Page subscription", "POST", f"{page_id}/subscribed_apps", token=page_token,
                         params={"subscribed_fields": PAGE_FIELDS})

    async def instagram_account(self, page_id: str, page_token: str) -> dict[str, Any] | None:
        body = await self._call("the Instagram account lookup", "GET", page_id, token=page_token,
                                params={"fields": "instagram_business_account{id,username}"})
        account = body.get("instagram_business_account")
        return account if isinstance(account, dict) and account.get("id") else None

    async def subscribe_waba(self, waba_id: str, token: str) -> None:
        await self._call("the WhatsApp Business Account subscription", "POST", f"{waba_id}/subscribed_apps", token=token)

    async def register_number(self, phone_number_id: str, token: str, pin: str) -> None:
        await self._call("the number registration", "POST", f"{phone_number_id}/register", token=token,
                         json={"messaging_product": "whatsapp", "pin": pin})

    async def debug_token(self, input_token: str) -> dict[str, Any]:
        app_id, secret = self._app()
        body = await self._call("the token check", "GET", "debug_token",
                                params={"input_token": input_token, "access_token": f"{app_id}|{secret}"})
        data = body.get("data")
        return data if isinstance(data, dict) else {}
