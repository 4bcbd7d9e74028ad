"""Entitlements pushed by a real control plane to real appliance processes (local provisioner):
after provisioning, on a plan change, to an appliance that is down for a while, and again by
the sweep when the token in force has less than 7 days left. Usage comes back: read by the
sweep, and reported signed by the appliance (``aat-appliance usage report``)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from appliance import audit
from appliance.timeutil import iso_in, iso_now
from control_plane.entitlements import store as ent_store
from control_plane.entitlements.usage import usage_of
from control_plane.lifecycle.tasks import sweep_once
from tests.control_plane.harness import ControlPlaneServer, wait_for

pytestmark = pytest.mark.timeout(240)

SEED = "ZW50aXRsZW1lbnRzLXB1c2gtdGVzdC1zZWVkLTMyYiE="  # 32 bytes
PLANS = ('[{"id": "starter", "stripe_price": "price_starter", "limits": {"contacts": 1000, "seats": 2}},'
         ' {"id": "growth", "stripe_price": "price_growth", "limits": {"contacts": 25000, "seats": 10, "channels": 10}}]')


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneServer]:
    server = ControlPlaneServer(tmp_path_factory.mktemp("ent"), "http://127.0.0.1:9", entitlements_key=SEED,
                                plans=PLANS).start()
    assert server.cp is not None
    server.cp.entitlements.delays = (0.5, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tenant(cp: ControlPlaneServer) -> str:
    tenant_id = cp.create_tenant("Plan Co", plan="starter")["id"]
    cp.wait_status(tenant_id, "active")
    return tenant_id


def entitlements_of(cp: ControlPlaneServer, tenant_id: str) -> dict:
    with cp.tenant_api(tenant_id) as api:
        response = api.get("/api/v1/entitlements")
    assert response.status_code == 200, response.text
    return response.json()


def wait_plan(cp: ControlPlaneServer, tenant_id: str, plan: str, *, after: str = "") -> dict:
    def check() -> dict | None:
        try:
            found = entitlements_of(cp, tenant_id)
        except Exception:  # noqa: BLE001 - the appliance may be restarting
            return None
        return found if found["plan"] == plan and found.get("issued_at", "") > after else None

    return wait_for(check, timeout=60, what=f"{tenant_id} to be on {plan}")


def test_a_provisioned_tenant_serves_its_plan(cp: ControlPlaneServer, tenant: str) -> None:
    found = wait_plan(cp, tenant, "starter")
    assert found["source"] == "control_plane"
    assert found["limits"] == {"contacts": 1000, "seats": 2}
    assert found["expired"] is False
    left = datetime.fromisoformat(found["expires_at"].replace("Z", "+00:00")) - datetime.now().astimezone()
    assert timedelta(days=29, hours=23) < left <= timedelta(days=30)
    record = cp.run(cp.cp.store.gateway.read(ent_store.get, tenant))
    assert (record["plan"], record["last_error"]) == ("starter", None)


def test_a_tenant_without_a_plan_gets_no_entitlement(cp: ControlPlaneServer) -> None:
    tenant_id = cp.create_tenant("No Plan Co")["id"]
    cp.wait_status(tenant_id, "active")
    cp.run(cp.cp.entitlements.idle())
    assert entitlements_of(cp, tenant_id)["source"] == "none"
    assert cp.run(cp.cp.store.gateway.read(ent_store.get, tenant_id)) is None


def test_a_plan_change_is_pushed(cp: ControlPlaneServer, tenant: str) -> None:
    changed = cp.run(cp.cp.entitlements.change_plan(tenant, "growth", audit.Actor("system")))
    assert changed is True
    found = wait_plan(cp, tenant, "growth")
    assert found["limits"] == {"contacts": 25000, "seats": 10, "channels": 10}


def test_a_push_to_an_appliance_that_is_down_is_retried_until_it_is_back(cp: ControlPlaneServer, tenant: str) -> None:
    before = cp.cp.entitlements.failed_attempts.get(tenant, 0)
    pid = cp.cp.provisioner.pid(tenant)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: cp.cp.provisioner.pid(tenant) != pid, what="the supervisor to notice")
    cp.run(cp.cp.entitlements.change_plan(tenant, "starter", audit.Actor("system")))
    found = wait_plan(cp, tenant, "starter")
    assert found["limits"] == {"contacts": 1000, "seats": 2}
    assert cp.cp.entitlements.failed_attempts[tenant] > before
    cp.run(cp.cp.entitlements.idle())
    assert cp.run(cp.cp.store.gateway.read(ent_store.get, tenant))["last_error"] is None


def test_the_sweep_refreshes_a_token_with_less_than_7_days_left(cp: ControlPlaneServer, tenant: str) -> None:
    cp.run(cp.cp.entitlements.idle())
    assert cp.run(sweep_once(cp.cp))["entitlements_due"] == 0
    before = entitlements_of(cp, tenant)
    cp.run(cp.cp.store.gateway.write(ent_store.record_pushed, tenant, plan="starter", issued_at=before["issued_at"],
                                      expires_at=iso_in(6 * 86400), now=iso_now()))
    time.sleep(1.1)  # tokens carry whole seconds: the refreshed one is visibly newer
    assert cp.run(sweep_once(cp.cp))["entitlements_due"] == 1
    found = wait_plan(cp, tenant, "starter", after=before["issued_at"])
    assert found["expires_at"] > before["expires_at"]
    cp.run(cp.cp.entitlements.idle())
    assert cp.run(sweep_once(cp.cp))["entitlements_due"] == 0


def test_the_sweep_records_each_tenants_usage_once_an_hour(cp: ControlPlaneServer, tenant: str) -> None:
    cp.cp.usage.last = 0.0
    summary = cp.run(sweep_once(cp.cp))
    assert summary["usage_recorded"] == 2  # both active tenants answered
    rows = cp.run(cp.cp.store.gateway.read(usage_of, tenant))
    reported = entitlements_of(cp, tenant)
    used = reported["usage"]
    assert [(r["month"], r["plan"], r["contacts"], r["seats"], r["channels"], r["ai_replies"]) for r in rows] == [
        (time.strftime("%Y-%m", time.gmtime()), "starter", used["contacts"], used["seats"], used["channels"],
         used["ai_replies_per_month"])]
    assert cp.run(sweep_once(cp.cp))["usage_recorded"] is None  # within the hour


def test_the_appliance_reports_its_usage_signed(cp: ControlPlaneServer, tenant: str) -> None:
    """The control plane gave the appliance AAT_CONTROL_PLANE_URL; ``aat-appliance usage report``
    signs with the key derived from the webhook secret it was given, and what is recorded is the
    appliance's own numbers (the refusals: test_usage_reports)."""
    from control_plane.lifecycle import store as tenants

    own = entitlements_of(cp, tenant)["usage"]
    row = cp.run(cp.cp.store.gateway.read(tenants.get_tenant, tenant))
    done = cp.run(cp.cp.lifecycle.provisioner.exec(cp.cp.lifecycle.spec(row), ["aat-appliance", "usage", "report"]))
    assert done.exit_code == 0, done.stderr
    printed = json.loads(done.stdout)
    assert (printed["status"], printed["answer"]["status"]) == (200, "recorded")
    reports = cp.ok("GET", f"/tenants/{tenant}/usage")["reports"]  # the hourly task may have sent one too
    [recorded] = [r for r in reports if r["report_id"] == printed["answer"]["report_id"]]
    assert {k: recorded[k] for k in ("contacts", "ai_replies", "seats", "channels")} == {
        "contacts": own["contacts"], "ai_replies": own["ai_replies_per_month"], "seats": own["seats"],
        "channels": own["channels"]}
    assert (recorded["automated_contacts"], recorded["messages"]) == (recorded["contacts"], 0)
