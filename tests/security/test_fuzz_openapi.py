"""Schemathesis over both OpenAPI documents: no request the documents allow gets a 5xx.

One appliance and one control plane, each started once (uvicorn on a loopback port in a thread,
as ``tests/control_plane/harness.py`` does), each fuzzed through its own
``/schema/openapi.json`` with its strongest credential (the appliance's owner API token, the
control plane's admin token), so requests get past the guards into the handlers. The only check
is ``not_a_server_error``: a 4xx for whatever schemathesis makes up is the contract, a 5xx is a
bug. Examples per operation are few (the run is bounded to stay well under 90 s here).

The control plane runs with a provisioner that starts nothing (:class:`PaperProvisioner`):
the fuzzing is of its HTTP surface, not of process management (the ``local`` backend has its
own tests in tests/control_plane).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import oidc_provider_mock
import pytest
import schemathesis
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from appliance.app import create_app as create_appliance
from appliance.settings import Settings
from appliance.store.workspace import open_workspace
from control_plane.app import create_app as create_control_plane
from control_plane.provisioning.base import Endpoint, ExecResult, TenantSpec
from control_plane.provisioning.local import free_port
from control_plane.settings import ControlPlaneSettings, PlatformApp
from tests.conftest import APP_SECRET, MASTER_KEY, VERIFY_TOKEN
from tests.control_plane.standins.stripe_api import StripeStandIn
from tests.helpers import connect_channel, make_token
from tests.standins.graph_api import GraphStandIn

FUZZ = settings(max_examples=3, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
ENTITLEMENTS_KEY = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
STREAMS = {"/api/v1/events"}  # Server-Sent Events: an answer that never ends, by design
CP_MASTER_KEY = "ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY="


class Served:
    """An ASGI app under uvicorn on a free loopback port, in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                    access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name=f"fuzzed-{self.port}")

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@dataclass(frozen=True)
class Target:
    schema: Any  # schemathesis's OpenAPI schema, loaded from the running server
    headers: dict[str, str]
    base_url: str


class PaperProvisioner:
    """A backend that records what it is asked and starts nothing: every tenant "runs" at a
    loopback port where nothing listens (requests to it fail like a stopped appliance's)."""

    name = "paper"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def on_ready(self, listener: Any) -> None:
        pass

    async def provision(self, spec: TenantSpec) -> Endpoint:
        self.calls.append(("provision", spec.id))
        return Endpoint(url="http://127.0.0.1:9", port=9)

    async def restore(self, spec: TenantSpec, source: Path, passphrase: str) -> None:
        self.calls.append(("restore", spec.id))

    async def start(self, spec: TenantSpec) -> Endpoint:
        self.calls.append(("start", spec.id))
        return Endpoint(url="http://127.0.0.1:9", port=9)

    async def stop(self, tenant_id: str) -> None:
        self.calls.append(("stop", tenant_id))

    async def teardown(self, tenant_id: str) -> None:
        self.calls.append(("teardown", tenant_id))

    async def exec(self, spec: TenantSpec, argv: list[str], stdin: bytes | None = None) -> ExecResult:
        self.calls.append(("exec", spec.id))
        return ExecResult(0, "aat_paper_token\n", "")

    async def export(self, spec: TenantSpec, out: Path, passphrase: str) -> None:
        self.calls.append(("export", spec.id))
        out.write_bytes(b"")

    async def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def appliance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    graph = GraphStandIn().start()
    settings_ = Settings(
        data_dir=tmp_path_factory.mktemp("fuzz-api") / "data", master_key=MASTER_KEY, meta_app_secret=APP_SECRET,
        meta_verify_token=VERIFY_TOKEN, graph_api_base=graph.base_url, instagram_api_base=graph.base_url,
        http_timeout_seconds=2, entitlements_public_key=ENTITLEMENTS_KEY,  # as hosted: entitlements checked
    )
    workspace = open_workspace(settings_)
    connect_channel(workspace, "messenger", "112233445566778")
    connect_channel(workspace, "whatsapp", "109876543210987", waba_id="203040506070809")
    for role in ("agent", "admin"):  # low ids for guessed ids to hit, not the fuzzer's own token
        make_token(workspace, role)
    owner = make_token(workspace, "owner")
    try:
        with Served(create_appliance(settings_, workspace=workspace, run_queue=False)) as served:
            yield Target(schemathesis.openapi.from_url(served.base_url + "/schema/openapi.json"), owner,
                         served.base_url)
    finally:
        workspace.close()
        graph.stop()


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    from appliance.timeutil import iso_now
    from control_plane.admin import tokens
    from control_plane.db import direct_database

    graph = GraphStandIn().start()
    stripe = StripeStandIn("sk_test_fuzz").start()
    google = oidc_provider_mock.run_server_in_thread(require_nonce=True)
    issuer = f"http://127.0.0.1:{google.__enter__().server_port}"
    settings_ = ControlPlaneSettings(  # billing and sign-in configured (unset, they answer 503 by design)
        data_dir=tmp_path_factory.mktemp("fuzz-cp") / "cp", master_key=CP_MASTER_KEY, meta_app_id="555000111",
        sweep_seconds=3600, forward_timeout_seconds=2, stripe_api_base=stripe.base_url,
        stripe_secret_key="sk_test_fuzz", stripe_webhook_secret="whsec_fuzz", google_issuer=issuer,
        google_client_id="aat-fuzz-client", google_client_secret="aat-fuzz-secret")
    token = tokens.new_token()
    with direct_database(settings_) as (db, _):
        tokens.create(db, name="fuzz", token=token, now=iso_now())
    platform = PlatformApp(meta_app_secret="cp-secret", meta_verify_token="cp-verify", graph_api_base=graph.base_url)
    app = create_control_plane(settings_, platform, provisioner=PaperProvisioner(), run_sweeper=False)
    try:
        with Served(app) as served:
            yield Target(schemathesis.openapi.from_url(served.base_url + "/schema/openapi.json"),
                         {"Authorization": f"Bearer {token}"}, served.base_url)
    finally:
        google.__exit__(None, None, None)
        stripe.stop()
        graph.stop()


def _server_errors(target: Target) -> list[str]:
    """Run every operation of ``schema`` for a few generated cases; the 5xx answers found (the
    first per operation, with schemathesis's reproduction command), an empty list if none."""
    found: list[str] = []
    schema, headers = target.schema, target.headers
    operations = [op for op in (result.ok() for result in schema.get_all_operations()) if op.path not in STREAMS]
    assert len(operations) > 20, "the document lists the API"
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            response = case.call(headers=headers, timeout=30)
            case.validate_response(response, checks=[not_a_server_error], headers=headers)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, reported together below
            found.append(f"{operation.label}: {str(exc)[:1500]}")
    return found


@pytest.mark.timeout(300)
def test_the_appliance_api_answers_no_5xx(appliance: Target) -> None:
    assert _server_errors(appliance) == []


@pytest.mark.timeout(300)
def test_the_control_plane_api_answers_no_5xx(control_plane: Target) -> None:
    assert _server_errors(control_plane) == []


@pytest.mark.parametrize("passphrase, code", [("short", "weak_passphrase"), ("x'00112233'", "invalid_passphrase")])
def test_a_bad_import_passphrase_is_a_422(control_plane: Target, passphrase: str, code: str) -> None:
    """What schemathesis found: the passphrase check raised a bare AatError, answered 500."""
    response = httpx.post(control_plane.base_url + "/admin/api/tenants/import", headers=control_plane.headers,
                          timeout=30,
                          data={"name": "Acme", "passphrase": passphrase}, files={"file": ("x.aat", b"x")})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
