"""A signed-in account (Google through ``oidc-provider-mock``) buys a plan: the checkout needs
the session's X-CSRF-Token, carries the account's email to Stripe, and the tenant the completed
checkout creates is the account's in ``GET /api/me`` with its subscription."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import oidc_provider_mock
import pytest

from control_plane.billing import store as billing_store
from tests.control_plane.harness import ControlPlaneServer
from tests.control_plane.standins.stripe_api import StripeStandIn, signature
from tests.control_plane.test_accounts_google import me, sign_in

pytestmark = pytest.mark.timeout(180)

SK, WHSEC = "sk_test_signed_in_8x", "whsec_signed_in_3k"
PLANS = '[{"id": "starter", "stripe_price": "price_starter", "limits": {"contacts": 1000}}]'


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with oidc_provider_mock.run_server_in_thread(require_nonce=True) as server:
        yield f"http://127.0.0.1:{server.server_port}"


@pytest.fixture(scope="module")
def stripe_api() -> Iterator[StripeStandIn]:
    standin = StripeStandIn(SK).start()
    standin.add_price("price_starter")
    yield standin
    standin.stop()


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory, provider: str, stripe_api: StripeStandIn) -> Iterator[ControlPlaneServer]:
    server = ControlPlaneServer(tmp_path_factory.mktemp("signed-in"), "http://127.0.0.1:9", plans=PLANS,
                                google_issuer=provider, google_client_id="aat-test-client",
                                google_client_secret="aat-test-secret", stripe_api_base=stripe_api.base_url,
                                stripe_secret_key=SK, stripe_webhook_secret=WHSEC).start()
    yield server
    server.stop()


def test_a_signed_in_checkout_becomes_the_accounts_tenant(cp: ControlPlaneServer, provider: str,
                                                           stripe_api: StripeStandIn) -> None:
    session = sign_in(cp, provider, "erin@example.com")
    mine = me(cp, session).json()
    cookie = {"Cookie": f"aat-session={session}"}
    before = len(stripe_api.requests)
    refused = httpx.post(cp.base_url + "/billing/checkout", json={"plan": "starter", "name": "Erin's Shop"},
                         headers=cookie, timeout=30)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "csrf_failed")
    assert len(stripe_api.requests) == before

    started = httpx.post(cp.base_url + "/billing/checkout", json={"plan": "starter", "name": "Erin's Shop"},
                         headers={**cookie, "X-CSRF-Token": mine["csrf_token"]}, timeout=30)
    assert started.status_code == 201, started.text
    sent = stripe_api.requests[-1]
    assert sent.form["customer_email"] == "erin@example.com"
    assert sent.form["client_reference_id"] == mine["account"]["id"]
    signup = cp.run(cp.cp.store.gateway.read(billing_store.signup_by_session, started.json()["id"]))
    assert signup["account_id"] == mine["account"]["id"]

    completed = stripe_api.complete_checkout(started.json()["id"])
    _, forged = stripe_api.event("checkout.session.completed", {**completed, "client_reference_id": "acct_0000000000000000"})
    answer = httpx.post(cp.base_url + "/webhooks/stripe", content=forged, timeout=30,
                        headers={"Content-Type": "application/json", "Stripe-Signature": signature(forged, WHSEC)})
    assert answer.json()["outcome"] == "ignored: client_reference_id is not the account that started this checkout"
    _, body = stripe_api.event("checkout.session.completed", completed)
    answer = httpx.post(cp.base_url + "/webhooks/stripe", content=body, timeout=30,
                        headers={"Content-Type": "application/json", "Stripe-Signature": signature(body, WHSEC)})
    assert answer.status_code == 200, answer.text
    tenant_id = answer.json()["outcome"].split()[1]
    now_mine = me(cp, session).json()
    assert [(t["id"], t["name"], t["plan"]) for t in now_mine["tenants"]] == [(tenant_id, "Erin's Shop", "starter")]
    assert (now_mine["subscription"]["tenant_id"], now_mine["subscription"]["status"]) == (tenant_id, "active")


def test_another_account_does_not_see_it(cp: ControlPlaneServer, provider: str) -> None:
    other = me(cp, sign_in(cp, provider, "frank@example.com")).json()
    assert (other["tenants"], other["subscription"]) == ([], None)
