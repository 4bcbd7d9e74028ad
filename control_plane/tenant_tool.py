"""``python -m control_plane.tenant_tool``: what the control plane runs *inside* a tenant's
environment (beside its ``aat-appliance serve``, with its ``AAT_DATA_DIR`` and
``AAT_MASTER_KEY``) that the appliance's CLI does not offer yet.

- ``revoke-token --name N``: revoke the API tokens named ``N`` (support tokens past their
  expiry). Stopgap until the appliance has ``aat-appliance tokens revoke`` or token expiry;
  it writes the appliance's ``api_tokens.revoked_at`` and audit log through the appliance's
  own store code.
"""

from __future__ import annotations

import sys

import click

__all__ = ["main"]


@click.group()
def main() -> None:
    """Control-plane helpers run in a tenant's environment."""


@main.command("revoke-token")
@click.option("--name", required=True)
def revoke_token(name: str) -> None:
    from appliance import audit
    from appliance.settings import Settings
    from appliance.store.workspace import direct_database
    from appliance.timeutil import iso_now

    with direct_database(Settings()) as db:
        now = iso_now()
        ids = [r[0] for r in db.conn.execute(
            "SELECT id FROM api_tokens WHERE name = ? AND revoked_at IS NULL", [name]).fetchall()]
        db.conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", [now, name])
        for token_id in ids:
            audit.record(db, audit.Actor("cli", label="control-plane"), "token.revoke", target_kind="token",
                         target_id=token_id, details={"reason": "expired"})
    click.echo(f"revoked {len(ids)} token(s)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
