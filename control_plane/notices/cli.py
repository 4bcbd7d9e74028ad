"""``aat-control-plane notices send-policy-change --id ID --subject S --body-file F``: the admin
route's work from the command line (audited as actor ``cli``), beside a running server or not.
Email goes through ``AAT_CP_EMAIL`` like the server's; the command waits until every hosted
email was handed over (or failed after its retries)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from appliance import audit
from control_plane.notices.routes import PolicyChange
from control_plane.settings import ControlPlaneSettings

__all__ = ["notices"]


async def _send(settings: ControlPlaneSettings, notice: PolicyChange) -> dict[str, Any]:
    import httpx

    from control_plane.db import open_store
    from control_plane.mail import MailSender
    from control_plane.notices.service import Notices
    from control_plane.notify import Notifier

    store = await asyncio.to_thread(open_store, settings, readers=1)
    client = httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0), follow_redirects=False)
    notifier = Notifier(settings.email)
    mail = MailSender(settings, client) if settings.email in ("resend", "postmark") else None
    if mail is not None:
        notifier.deliver = mail.deliver
    try:
        return await Notices(store.gateway, notifier).send_policy_change(notice.notice_id, notice.subject, notice.body,
                                                                          audit.Actor.of_cli())
    finally:
        if mail is not None:
            await mail.idle()
        await client.aclose()
        await asyncio.to_thread(store.close)


@click.group("notices")
def notices() -> None:
    """Notices emailed to every active account."""


@notices.command("send-policy-change")
@click.option("--id", "notice_id", required=True, help="The notice's id (e.g. privacy-2026-12): the same id is "
              "never sent to an account twice.")
@click.option("--subject", required=True)
@click.option("--body-file", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The email's text (UTF-8).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Control plane data directory (default: AAT_CP_DATA_DIR or ./cp-data).")
def send_policy_change(notice_id: str, subject: str, body_file: Path, data_dir: Path | None) -> None:
    """Email a policy change to every active account (audited; once per account and id)."""
    try:
        notice = PolicyChange(notice_id=notice_id, subject=subject, body=body_file.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise click.ClickException("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    except UnicodeDecodeError:
        raise click.ClickException(f"{body_file} is not UTF-8 text") from None
    settings = ControlPlaneSettings(**({"data_dir": data_dir} if data_dir is not None else {}))
    done = asyncio.run(_send(settings, notice))
    click.echo(f"notice {done['notice_id']}: sent to {done['sent']} account(s) now"
               + (f", {done['already_sent']} had it already" if done["already_sent"] else ""))
