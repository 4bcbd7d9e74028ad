"""``aat-control-plane entitlements public-key`` and ``license issue``, as an operator runs them,
and the license they make governing an appliance."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from appliance.app import create_app
from appliance.settings import Settings
from appliance.store.workspace import open_workspace
from control_plane.entitlements.plans import parse_plans
from tests.helpers import make_token

CLI = str(Path(sys.executable).parent / "aat-control-plane")
SEED = "bW9ja2VkLWJ1dC1yZWFsLWVkMjU1MTktc2VlZC0zMiE="  # 32 bytes
PLANS = '[{"id": "pro", "stripe_price": "price_123", "limits": {"contacts": 5000, "seats": 4}}]'


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AAT_")}
    clean.update({"AAT_CP_ENTITLEMENTS_KEY": SEED, "AAT_CP_PLANS": PLANS, **(env or {})})
    return subprocess.run([CLI, *args, "--data-dir", str(tmp_path / "cp")], capture_output=True, text=True,
                          env=clean, cwd=tmp_path, timeout=60)


async def test_a_license_issued_by_the_cli_governs_an_appliance(tmp_path: Path, settings: Settings) -> None:
    public = run(tmp_path, "entitlements", "public-key")
    assert public.returncode == 0, public.stderr
    issued = run(tmp_path, "license", "issue", "--customer", "acme", "--plan", "pro", "--days", "30",
                 "--out", str(tmp_path / "acme.license"))
    assert issued.returncode == 0, issued.stderr
    assert "license for acme on pro, valid 30 days" in issued.stderr
    licensed = settings.model_copy(update={"license_file": tmp_path / "acme.license", "tenant_id": "acme",
                                           "entitlements_public_key": public.stdout.strip()})
    workspace = open_workspace(licensed)
    try:
        async with AsyncTestClient(app=create_app(licensed, workspace=workspace, run_queue=False),
                                   base_url="https://testserver.local") as client:
            got = (await client.get("/api/v1/entitlements", headers=make_token(workspace, "agent"))).json()
    finally:
        workspace.close()
    assert (got["plan"], got["limits"], got["source"], got["expired"]) == (
        "pro", {"contacts": 5000, "seats": 4}, "license_file", False)


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--plan", "enterprise"], {}, "no plan 'enterprise'; the plans are pro"),
    (["--plan", "pro"], {"AAT_CP_PLANS": "[{"}, "AAT_CP_PLANS is not JSON"),
    (["--plan", "pro"], {"AAT_CP_PLANS": '[{"id": "pro", "limits": {"seats": -2}}]'},
     "AAT_CP_PLANS[0.limits.seats]"),
    (["--plan", "pro"], {"AAT_CP_ENTITLEMENTS_KEY": "c2hvcnQ="}, "must be base64 of 32 bytes"),
], ids=["unknown-plan", "plans-not-json", "negative-limit", "short-key"])
def test_license_issue_refuses_bad_input_in_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = run(tmp_path, "license", "issue", "--customer", "acme", *args, env=env)
    assert result.returncode == 1, result.stdout
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: "), result.stderr
    assert message in result.stderr
    assert result.stdout == ""


def test_the_default_plans_parse() -> None:
    from control_plane.entitlements.plans import DEFAULT_PLANS

    assert [plan.id for plan in parse_plans(DEFAULT_PLANS)] == ["starter", "growth"]


def test_a_development_key_is_made_once_and_kept(tmp_path: Path) -> None:
    first = run(tmp_path, "entitlements", "public-key", env={"AAT_CP_ENTITLEMENTS_KEY": ""})
    second = run(tmp_path, "entitlements", "public-key", env={"AAT_CP_ENTITLEMENTS_KEY": ""})
    assert first.returncode == second.returncode == 0, first.stderr
    assert "generated a development signing key" in first.stderr
    assert first.stdout == second.stdout and len(first.stdout.strip()) == 44
    assert oct((tmp_path / "cp" / "entitlements.key").stat().st_mode & 0o777) == "0o600"
