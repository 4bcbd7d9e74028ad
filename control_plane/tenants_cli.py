"""``aat-control-plane tenants ...``: list, create, suspend, resume, delete, export, import,
render-manifests. State changes are written (and audited) here; the server converges."""

from __future__ import annotations

import asyncio
import secrets
import sys
from pathlib import Path
from typing import Any

import click

from appliance import audit
from appliance.errors import Conflict
from appliance.timeutil import iso_in, iso_now

__all__ = ["tenants"]

data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                               help="Control plane data directory (default: AAT_CP_DATA_DIR or ./cp-data).")
passphrase_option = click.option("--passphrase-stdin", is_flag=True, help="Read the passphrase from standard input.")


def _settings(data_dir: Path | None) -> Any:
    from control_plane.cli import _settings as build

    return build(data_dir)


@click.group()
def tenants() -> None:
    """The tenant fleet."""


@tenants.command("list")
@data_dir_option
def list_tenants(data_dir: Path | None) -> None:
    """One line per tenant: id, status, name, url."""
    from control_plane.db import direct_database
    from control_plane.lifecycle import store

    with direct_database(_settings(data_dir)) as (db, _):
        rows = store.list_tenants(db, status=None, after_id=None, limit=100_000)
    for row in rows:
        extra = f" delete_after={row['delete_after']}" if row["delete_after"] else ""
        click.echo(f"{row['id']}\t{row['status']}\t{row['name']}\t{row['url'] or '-'}{extra}")


@tenants.command("create")
@click.option("--name", required=True)
@click.option("--owner-email", default=None, help="Who is emailed about the tenant's channels.")
@data_dir_option
def create(name: str, owner_email: str | None, data_dir: Path | None) -> None:
    """Create a tenant (provisioned by the running server); prints its id last."""
    from control_plane.db import direct_database
    from control_plane.lifecycle.service import new_tenant_row

    if not name.strip() or len(name) > 200:
        raise click.BadParameter("give a name of 1 to 200 characters", param_hint="'--name'")
    settings = _settings(data_dir)
    with direct_database(settings) as (db, store):
        row = new_tenant_row(db, store.fields, name=name.strip(), provisioner=settings.provisioner,
                             owner_email=owner_email, plan=None, actor=audit.Actor.of_cli())
    click.echo(f"tenant {row['name']!r} created (provisioning; the server starts it)", err=True)
    click.echo(row["id"])


def _transition(tenant_id: str, status: str, action: str, data_dir: Path | None) -> dict[str, Any]:
    from control_plane.db import direct_database
    from control_plane.lifecycle import store

    settings = _settings(data_dir)
    delete_after = iso_in(settings.retention_days * 86400) if status == "deleting" else None
    with direct_database(settings) as (db, _):
        row = store.set_status(db, tenant_id, status, iso_now(), delete_after=delete_after)
        audit.record(db, audit.Actor.of_cli(), action, target_kind="tenant", target_id=tenant_id,
                     details={"delete_after": delete_after} if delete_after else None)
    return row


@tenants.command()
@click.argument("tenant_id")
@data_dir_option
def suspend(tenant_id: str, data_dir: Path | None) -> None:
    """Stop the tenant's appliance; its webhooks are kept and delivered after resume."""
    row = _transition(tenant_id, "suspended", "tenant.suspend", data_dir)
    click.echo(f"{row['id']} {row['status']}")


@tenants.command()
@click.argument("tenant_id")
@data_dir_option
def resume(tenant_id: str, data_dir: Path | None) -> None:
    """Start a suspended tenant again, or cancel a pending deletion."""
    row = _transition(tenant_id, "active", "tenant.resume", data_dir)
    click.echo(f"{row['id']} {row['status']}")


@tenants.command()
@click.argument("tenant_id")
@data_dir_option
def delete(tenant_id: str, data_dir: Path | None) -> None:
    """Schedule the teardown after the retention window (AAT_CP_RETENTION_DAYS)."""
    row = _transition(tenant_id, "deleting", "tenant.delete", data_dir)
    click.echo(f"{row['id']} {row['status']}; torn down after {row['delete_after']}")


def _provisioner(settings: Any) -> Any:
    import httpx

    from control_plane.provisioning import make_provisioner

    return make_provisioner(settings, httpx.AsyncClient())


@tenants.command("export")
@click.argument("tenant_id")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@passphrase_option
@data_dir_option
def export(tenant_id: str, out: Path, passphrase_stdin: bool, data_dir: Path | None) -> None:
    """Write the tenant's workspace to one file (the appliance's export format). Without
    --passphrase-stdin a passphrase is generated and printed once, last."""
    from appliance.privacy.export import check_passphrase
    from control_plane.db import direct_database
    from control_plane.lifecycle import store
    from control_plane.lifecycle.service import Lifecycle

    settings = _settings(data_dir)
    passphrase = sys.stdin.read().rstrip("\r\n") if passphrase_stdin else secrets.token_urlsafe(24)
    check_passphrase(passphrase)
    if out.exists():
        raise Conflict(f"{out} exists already; choose a new file name", code="export_exists")
    with direct_database(settings) as (db, cp_store):
        row = store.get_tenant(db, tenant_id)
    spec = Lifecycle.spec_from(row, cp_store.fields, _platform())
    asyncio.run(_provisioner(settings).export(spec, out.resolve(), passphrase))
    with direct_database(settings) as (db, _):
        audit.record(db, audit.Actor.of_cli(), "tenant.export", target_kind="tenant", target_id=tenant_id,
                     details={"bytes": out.stat().st_size})
    click.echo(f"exported tenant {tenant_id} to {out} ({out.stat().st_size / 2**20:.1f} MiB)", err=True)
    if not passphrase_stdin:
        click.echo("its passphrase is shown only this once:", err=True)
        click.echo(passphrase)


@tenants.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--name", required=True)
@passphrase_option
@data_dir_option
def import_(file: Path, name: str, passphrase_stdin: bool, data_dir: Path | None) -> None:
    """Create a new tenant from an export file; prints the new tenant id last."""
    from control_plane.db import direct_database
    from control_plane.lifecycle.service import Lifecycle
    from control_plane.lifecycle.store import new_tenant_id
    from control_plane.provisioning.base import TenantSpec, new_master_key, new_webhook_secret

    settings = _settings(data_dir)
    if not name.strip() or len(name) > 200:
        raise click.BadParameter("give a name of 1 to 200 characters", param_hint="'--name'")
    passphrase = (sys.stdin.read().rstrip("\r\n") if passphrase_stdin
                  else click.prompt("passphrase", hide_input=True, err=True))
    spec = TenantSpec(id=new_tenant_id(), name=name.strip(), master_key=new_master_key(),
                      webhook_secret=new_webhook_secret())
    asyncio.run(_provisioner(settings).restore(spec, file.resolve(), passphrase))
    with direct_database(settings) as (db, cp_store):
        Lifecycle.insert_restored(db, cp_store.fields, spec, settings.provisioner, None, audit.Actor.of_cli())
    click.echo(f"imported {file} as tenant {name!r} (provisioning; the server starts it)", err=True)
    click.echo(spec.id)


@tenants.command("render-manifests")
@click.option("--name", required=True)
@click.option("--import", "for_import", is_flag=True,
              help="Print what an import applies first instead: the Secret, the claim and the workspace Job.")
@data_dir_option
def render_manifests(name: str, for_import: bool, data_dir: Path | None) -> None:
    """Print the Kubernetes objects the kubernetes provisioner applies for a new tenant named
    NAME (secret values redacted)."""
    from control_plane.lifecycle.store import new_tenant_id
    from control_plane.provisioning.base import TenantSpec
    from control_plane.provisioning.manifests import render_yaml

    settings = _settings(data_dir)
    platform = _platform()
    spec = TenantSpec(id=new_tenant_id(), name=name, master_key="<generated at create>",
                      webhook_secret="<generated at create>", graph_api_base=platform.graph_api_base,
                      graph_api_version=platform.graph_api_version)
    click.echo(render_yaml(settings, spec, redact=True, purpose="import" if for_import else None), nl=False)


def _platform() -> Any:
    from control_plane.settings import PlatformApp

    return PlatformApp()
