"""Dead letters and replay, with a real appliance and a retry schedule shortened to seconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from control_plane.lifecycle import store
from control_plane.routing.schedule import RetryPolicy
from tests.control_plane.harness import ControlPlaneServer, page_body, page_entry, wait_for
from tests.standins.graph_api import GraphStandIn

pytestmark = pytest.mark.timeout(240)

PAGE = "100000000000501"


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneServer]:
    graph = GraphStandIn().start()
    policy = RetryPolicy(delays=(0.2, 0.4), then_every=0.5, horizon=2.0)
    server = ControlPlaneServer(tmp_path_factory.mktemp("dead"), graph.base_url, policy=policy).start()
    yield server
    server.stop()
    graph.stop()


def test_undeliverable_events_become_dead_letters_and_replay_delivers_them(cp: ControlPlaneServer) -> None:
    tenant = cp.create_tenant("Dead letters")["id"]
    cp.wait_status(tenant, "active")
    cp.ok("POST", f"/tenants/{tenant}/channels", 201,
          json={"type": "messenger", "external_id": PAGE, "access_token": "token"})
    assert cp.cp is not None
    cp.run(cp.cp.provisioner.stop(tenant))  # down, and not restarted by its supervisor
    assert cp.post_webhook(page_body(page_entry(PAGE, "psid-dead", "m_dead", "lost for a while"))).status_code == 200

    dead = wait_for(lambda: cp.deliveries(tenant=tenant, status="dead"), timeout=20, what="a dead letter")
    assert len(dead) == 1 and dead[0]["attempts"] >= 3 and dead[0]["last_error"]
    assert not cp.deliveries(tenant=tenant, status="pending")

    row = cp.run(cp.cp.store.gateway.read(store.get_tenant, tenant))
    cp.run(cp.cp.lifecycle.converge(row["id"]))  # back up
    replayed = cp.ok("POST", f"/deliveries/{dead[0]['id']}/replay")
    assert replayed["status"] == "pending" and replayed["attempts"] == 0
    wait_for(lambda: [d for d in cp.deliveries(tenant=tenant) if d["id"] == dead[0]["id"]
                      and d["status"] == "delivered"], what="the replayed delivery")
    api = cp.tenant_api(tenant)
    # Delivered is journaled: the appliance, just back up, applies it when its app has opened.
    conversations = wait_for(lambda: api.get("/api/v1/conversations").json()["items"], what="the replayed event applied")
    assert [c["contact"]["external_id"] for c in conversations] == ["psid-dead"]
    again = cp.admin("POST", f"/deliveries/{dead[0]['id']}/replay")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_dead"
    actions = [e["action"] for e in cp.ok("GET", "/audit")["items"]]
    assert "delivery.replay" in actions
