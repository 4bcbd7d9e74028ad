"""Sign-in with Meta (Facebook Login) against a local stand-in: the dialog URL, the code
exchange with the same redirect URI, debug_token binding the token to our app, the profile
read with appsecret_proof, the account made on first sign-in, and foreign tokens refused."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator

import httpx
import pytest

from tests.control_plane.harness import PLATFORM_SECRET, ControlPlaneServer
from tests.control_plane.standins.facebook_login import FacebookLoginStandIn

pytestmark = pytest.mark.timeout(120)

APP_ID = "555000111"  # the harness's AAT_CP_META_APP_ID


@pytest.fixture(scope="module")
def facebook() -> Iterator[FacebookLoginStandIn]:
    standin = FacebookLoginStandIn(APP_ID, PLATFORM_SECRET).start()
    yield standin
    standin.stop()


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory, facebook: FacebookLoginStandIn) -> Iterator[ControlPlaneServer]:
    server = ControlPlaneServer(tmp_path_factory.mktemp("meta-login"), facebook.base_url,
                                meta_dialog_base=facebook.base_url).start()
    yield server
    server.stop()


def callback_of(cp: ControlPlaneServer, *, age_confirmed: bool = True) -> str:
    start = httpx.get(cp.base_url + "/auth/meta/login", params={"age_confirmed": str(age_confirmed).lower()}, timeout=10)
    assert start.status_code == 302, start.text
    dialog = httpx.get(start.headers["location"], timeout=10)
    assert dialog.status_code == 302
    return dialog.headers["location"]


def test_the_dialog_url_names_our_app_and_callback(cp: ControlPlaneServer, facebook: FacebookLoginStandIn) -> None:
    start = httpx.get(cp.base_url + "/auth/meta/start", timeout=10)
    url = urllib.parse.urlsplit(start.headers["location"])
    query = dict(urllib.parse.parse_qsl(url.query))
    assert f"{url.scheme}://{url.netloc}{url.path}" == facebook.base_url + "/v25.0/dialog/oauth"
    assert {k: v for k, v in query.items() if k != "state"} == {
        "client_id": APP_ID, "redirect_uri": cp.base_url + "/auth/meta/callback", "response_type": "code",
        "scope": "public_profile,email"}
    assert len(query["state"]) >= 32


def test_first_meta_sign_in_creates_the_account(cp: ControlPlaneServer, facebook: FacebookLoginStandIn) -> None:
    facebook.requests.clear()
    callback = httpx.get(callback_of(cp), timeout=10)
    assert (callback.status_code, callback.headers["location"]) == (302, "/"), callback.text
    session = callback.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    body = httpx.get(cp.base_url + "/api/me", headers={"Cookie": f"aat-session={session}"}, timeout=10).json()
    assert (body["account"]["provider"], body["account"]["email"], body["account"]["name"]) == (
        "meta", "mia@example.com", "Mia Meta")
    calls = [(r.path, r.query) for r in facebook.requests[1:]]
    assert calls[0] == ("/v25.0/oauth/access_token", {"client_id": APP_ID, "client_secret": PLATFORM_SECRET,
                                                      "code": "code-1", "redirect_uri": cp.base_url + "/auth/meta/callback"})
    assert calls[1][0] == "/v25.0/debug_token"
    assert calls[1][1]["access_token"] == f"{APP_ID}|{PLATFORM_SECRET}" and calls[1][1]["input_token"].startswith("EAAuser")
    assert calls[2][0] == "/v25.0/me" and calls[2][1]["fields"] == "id,name,email"


def test_a_token_of_another_app_is_refused(cp: ControlPlaneServer, facebook: FacebookLoginStandIn) -> None:
    facebook.token_app_id = "999999"
    try:
        refused = httpx.get(callback_of(cp), timeout=10)
    finally:
        facebook.token_app_id = APP_ID
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "invalid_token")
    assert "set-cookie" not in refused.headers


def test_a_used_code_is_refused(cp: ControlPlaneServer) -> None:
    location = callback_of(cp)
    assert httpx.get(location, timeout=10).status_code == 302
    replay = httpx.get(location, timeout=10)
    assert (replay.status_code, replay.json()["error"]["code"]) == (403, "invalid_state")


def test_meta_sign_up_needs_the_age_confirmation(cp: ControlPlaneServer, facebook: FacebookLoginStandIn) -> None:
    facebook.user = {"id": "10002", "name": "New Person", "email": "new@example.com"}
    refused = httpx.get(callback_of(cp, age_confirmed=False), timeout=10)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "age_confirmation_required")
