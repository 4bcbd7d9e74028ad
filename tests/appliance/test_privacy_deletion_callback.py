"""Meta's data-deletion callback (``POST /data-deletion``, and ``POST /deauthorize``): a valid
signed request erases the person and answers ``{"url", "confirmation_code"}``; a forged one is
403 and a malformed one 400, both leaving nothing behind; the status page says what happened."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import timedelta

import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient
from pydantic import SecretStr

from appliance.privacy import retention
from appliance.settings import Settings
from appliance.store.workspace import Workspace
from appliance.timeutil import utcnow
from tests.appliance.api_helpers import (  # noqa: F401 - shared is a fixture
    PAGE_ID,
    Shared,
    error_of,
    execute,
    instagram_text,
    messenger_text,
    on_shared_app,
    rows,
    shared,
    value,
)
from tests.appliance.privacy_helpers import signed_request
from tests.conftest import APP_SECRET
from tests.helpers import connect_channel, ingest

PSID = "2460007770001112"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TABLES = ("contacts", "messages", "deletion_requests", "audit_log")


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The shared settings; a test parametrized indirectly sets ``erasure_grace_days``."""
    return settings.model_copy(update={"erasure_grace_days": getattr(request, "param", 0.0)})


async def _person(client: AsyncTestClient, workspace: Workspace) -> int:
    connect_channel(workspace, "messenger", PAGE_ID)
    await ingest(client, messenger_text(PSID, "m_del_1", text="call me at +995 599 12 34 56"))
    await ingest(client, messenger_text("2460009990001113", "m_other_1", text="someone else"))
    return int(value(workspace, "SELECT id FROM contacts WHERE external_id = ?", [PSID]))


async def _post(client: AsyncTestClient, signed: str, path: str = "/data-deletion") -> object:
    return await client.post(path, content=f"signed_request={signed}".encode(), headers=FORM)


def _snapshot(workspace: Workspace) -> dict[str, list[dict[str, object]]]:
    return {t: rows(workspace, f"SELECT * FROM {t} ORDER BY rowid") for t in TABLES}


async def test_a_valid_request_erases_the_person_and_answers_url_and_code(
    client: AsyncTestClient, workspace: Workspace, settings: Settings
) -> None:
    await _person(client, workspace)
    response = await _post(client, signed_request(PSID))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"url", "confirmation_code"}
    code = body["confirmation_code"]
    assert re.fullmatch(r"[A-Z0-9]{20}", code)
    assert body["url"] == f"{settings.public_url}/data-deletion/{code}"
    assert value(workspace, "SELECT count(*) FROM contacts WHERE external_id = ?", [PSID]) == 0
    assert value(workspace, "SELECT count(*) FROM messages WHERE text LIKE '%599 12 34%'") == 0
    assert value(workspace, "SELECT count(*) FROM contacts") == 1  # the other person stays
    request = rows(workspace, "SELECT * FROM deletion_requests")[0]
    assert (request["status"], request["user_id"], request["contacts_erased"], request["messages_erased"]) == (
        "completed", None, 1, 1)
    assert [r["action"] for r in rows(workspace, "SELECT action FROM audit_log ORDER BY id")] == [
        "data_deletion.request", "contact.erase", "deletion_request.complete"]
    assert PSID not in str(rows(workspace, "SELECT * FROM audit_log"))

    page = await client.get(f"/data-deletion/{code}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert "Completed on" in page.text and "1 contact record on Messenger" in page.text
    assert "1 message," in page.text and code in page.text


async def test_meta_retrying_the_same_request_gets_the_same_code(client: AsyncTestClient, workspace: Workspace) -> None:
    await _person(client, workspace)
    signed = signed_request(PSID)
    first, again = (await _post(client, signed)).json(), (await _post(client, signed)).json()
    assert first == again
    assert value(workspace, "SELECT count(*) FROM deletion_requests") == 1


async def test_the_deauthorize_callback_is_served_by_the_same_handler(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    await _person(client, workspace)
    response = await _post(client, signed_request(PSID), "/deauthorize")
    assert response.status_code == 200, response.text
    assert value(workspace, "SELECT kind FROM deletion_requests") == "deauthorize"
    assert value(workspace, "SELECT count(*) FROM contacts WHERE external_id = ?", [PSID]) == 0
    page = await client.get(f"/data-deletion/{response.json()['confirmation_code']}")
    assert "the removal of this app from your account" in page.text


async def test_the_user_is_found_on_every_channel(client: AsyncTestClient, workspace: Workspace) -> None:
    await _person(client, workspace)
    await ingest(client, instagram_text(PSID, "ig_same_id"))  # the same id on another channel
    response = await _post(client, signed_request(PSID))
    assert value(workspace, "SELECT count(*) FROM contacts WHERE external_id = ?", [PSID]) == 0
    page = await client.get(f"/data-deletion/{response.json()['confirmation_code']}")
    assert "2 contact records on Instagram, Messenger" in page.text


async def test_an_unknown_user_is_completed_and_the_page_explains_why_nothing_was_erased(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    await _person(client, workspace)
    response = await _post(client, signed_request("10229999888877776"))  # an app-scoped id from Facebook Login
    assert response.status_code == 200
    assert value(workspace, "SELECT count(*) FROM contacts") == 2
    page = await client.get(f"/data-deletion/{response.json()['confirmation_code']}")
    assert "nothing to erase" in page.text and "specific to this app" in page.text


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def target(shared: Shared) -> Shared:
    """The module's app, holding a person whom the refused requests below name."""
    await _person(shared.client, shared.workspace)
    return shared


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _signed_raw(payload: bytes, secret: str = APP_SECRET) -> str:
    encoded = _b64(payload)
    return f"{_b64(hmac.new(secret.encode(), encoded.encode(), hashlib.sha256).digest())}.{encoded}"


FORGED = {
    "another app's secret": signed_request(PSID, secret="not-the-app-secret"),
    "payload changed after signing": signed_request("1").split(".")[0] + "." + signed_request(PSID).split(".")[1],
    "signature of the wrong length": _b64(b"short") + "." + signed_request(PSID).split(".")[1],
}
MALFORMED = {
    "no dot": signed_request(PSID).replace(".", ""),
    "two dots": signed_request(PSID) + ".x",
    "not base64url": "!!!." + signed_request(PSID).split(".")[1],
    "payload not JSON": _signed_raw(b"not json"),
    "payload a JSON list": _signed_raw(b"[1, 2]"),
    "wrong algorithm": signed_request(PSID, algorithm="HMAC-MD5"),
    "no user": _signed_raw(b'{"algorithm": "HMAC-SHA256", "issued_at": 1}'),
    "user id with markup": signed_request("<script>"),
}


@on_shared_app
@pytest.mark.parametrize("case", sorted(FORGED))
async def test_a_forged_request_is_403_and_leaves_nothing(target: Shared, case: str) -> None:
    before = _snapshot(target.workspace)
    error = error_of(await _post(target.client, FORGED[case]), 403)
    assert error["code"] == "invalid_signature"
    assert _snapshot(target.workspace) == before


@on_shared_app
@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_a_malformed_request_is_400_and_leaves_nothing(target: Shared, case: str) -> None:
    before = _snapshot(target.workspace)
    error_of(await _post(target.client, MALFORMED[case]), 400)
    assert _snapshot(target.workspace) == before


@on_shared_app
@pytest.mark.parametrize(("body", "headers"), [
    (b"", FORM),
    (b"user_id=1", FORM),
    (b'{"signed_request": "a.b"}', {"Content-Type": "application/json"}),
    (b"signed_request=a.b&signed_request=c.d", FORM),
    (b"signed_request=\xff\xfe", FORM),
], ids=["empty", "no field", "json", "twice", "not ascii"])
async def test_a_body_without_one_signed_request_is_400(shared: Shared, body: bytes, headers: dict[str, str]) -> None:
    response = await shared.client.post("/data-deletion", content=body, headers=headers)
    assert error_of(response, 400)["code"] == "malformed_signed_request"


async def test_an_oversize_body_is_413(client: AsyncTestClient) -> None:
    response = await client.post("/data-deletion", content=b"signed_request=" + b"a" * 20000, headers=FORM)
    assert error_of(response, 413)["code"] == "payload_too_large"


async def test_without_an_app_secret_every_request_is_refused(workspace: Workspace, settings: Settings) -> None:
    from appliance.app import create_app

    unset = settings.model_copy(update={"meta_app_secret": None, "meta_extra_app_secrets": []})
    async with AsyncTestClient(app=create_app(unset, workspace=workspace, run_queue=False)) as client:
        response = await _post(client, signed_request(PSID))
    assert error_of(response, 403)["code"] == "signature_unverifiable"


async def test_an_extra_app_secret_is_accepted(workspace: Workspace, settings: Settings) -> None:
    from appliance.app import create_app

    extra = settings.model_copy(update={"meta_extra_app_secrets": [SecretStr("instagram-app-secret")]})
    async with AsyncTestClient(app=create_app(extra, workspace=workspace, run_queue=False)) as client:
        response = await _post(client, signed_request(PSID, secret="instagram-app-secret"))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("settings", [3.0], indirect=True)
async def test_a_grace_period_schedules_the_erasure_and_the_retention_job_completes_it(
    client: AsyncTestClient, workspace: Workspace, settings: Settings
) -> None:
    await _person(client, workspace)
    code = (await _post(client, signed_request(PSID))).json()["confirmation_code"]
    assert value(workspace, "SELECT status FROM deletion_requests") == "pending"
    assert value(workspace, "SELECT count(*) FROM contacts WHERE external_id = ?", [PSID]) == 1
    assert "scheduled" in (await client.get(f"/data-deletion/{code}")).text

    retention.run(workspace.gateway, settings, utcnow() + timedelta(days=2))
    assert value(workspace, "SELECT status FROM deletion_requests") == "pending"
    retention.run(workspace.gateway, settings, utcnow() + timedelta(days=3, minutes=1))
    assert value(workspace, "SELECT status FROM deletion_requests") == "completed"
    assert value(workspace, "SELECT count(*) FROM contacts WHERE external_id = ?", [PSID]) == 0
    assert "Completed on" in (await client.get(f"/data-deletion/{code}")).text


async def test_the_status_page_escapes_what_it_shows(client: AsyncTestClient, workspace: Workspace) -> None:
    execute(workspace, "INSERT INTO workspace_settings (key, value) VALUES ('name', '<script>alert(1)</script> & Co')")
    code = (await _post(client, signed_request("1234567"))).json()["confirmation_code"]
    page = (await client.get(f"/data-deletion/{code}")).text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in page


@on_shared_app
@pytest.mark.parametrize("code", ["NOSUCHCODE0000000000", "lowercase", "%3Cb%3E", "A" * 65])
async def test_an_unknown_code_is_a_404_page(shared: Shared, code: str) -> None:
    page = await shared.client.get(f"/data-deletion/{code}")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "There is no request with this confirmation code" in page.text


