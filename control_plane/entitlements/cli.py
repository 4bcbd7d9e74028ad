"""``aat-control-plane entitlements public-key`` and ``aat-control-plane license issue``.

A self-hosted customer's license is the same signed token a hosted tenant gets pushed; the
customer sets ``AAT_LICENSE_FILE`` to it and ``AAT_ENTITLEMENTS_PUBLIC_KEY`` to the key
``public-key`` prints. Failures are raised as ``click.ClickException`` (one line, exit 1).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click

from control_plane.entitlements.plans import find_plan, parse_plans
from control_plane.entitlements.signing import issue, load_signing_key, public_key_text
from control_plane.settings import ControlPlaneSettings

__all__ = ["entitlements", "license_group"]

data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                               help="Control plane data directory (default: AAT_CP_DATA_DIR or ./cp-data).")


def _settings(data_dir: Path | None) -> ControlPlaneSettings:
    return ControlPlaneSettings(**({"data_dir": data_dir} if data_dir is not None else {}))


def _key(settings: ControlPlaneSettings):  # noqa: ANN202 - an Ed25519PrivateKey
    configured = settings.entitlements_key.get_secret_value() if settings.entitlements_key else None
    try:
        return load_signing_key(configured, settings.data_dir)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("entitlements")
def entitlements() -> None:
    """The key entitlement tokens are signed with."""


@entitlements.command("public-key")
@data_dir_option
def public_key(data_dir: Path | None) -> None:
    """Print the public key appliances verify entitlements with (their AAT_ENTITLEMENTS_PUBLIC_KEY)."""
    click.echo(public_key_text(_key(_settings(data_dir))))


@click.group("license")
def license_group() -> None:
    """License files for self-hosted customers."""


@license_group.command("issue")
@click.option("--customer", required=True, help="The customer's id; the license names it (AAT_TENANT_ID).")
@click.option("--plan", "plan_id", required=True, help="A plan id of AAT_CP_PLANS.")
@click.option("--days", type=click.FloatRange(min=1, max=3660), default=365, show_default=True,
              help="How long the license is valid.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the license to this new file (default: standard output).")
@data_dir_option
def issue_license(customer: str, plan_id: str, days: float, out: Path | None, data_dir: Path | None) -> None:
    """Sign a license file: the plan's limits for the customer, valid for --days."""
    settings = _settings(data_dir)
    try:
        plan = find_plan(parse_plans(settings.plans), plan_id)
    except (KeyError, ValueError) as exc:
        raise click.ClickException(str(exc).strip('"')) from None
    token = issue(_key(settings), tenant=customer, plan=plan, now=datetime.now(UTC), days=days)
    if out is None:
        click.echo(token)
        return
    try:
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise click.ClickException(f"{out} exists already; choose a new file name") from None
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
    click.echo(f"license for {customer} on {plan.id}, valid {days:g} days, written to {out}", err=True)
