"""Email from the appliance (invitations, password resets): ``none``, ``console`` or ``smtp``.

``console`` prints the message to stdout (never to the logs: it carries a link that signs
someone in); ``smtp`` sends through ``AAT_SMTP_URL`` with the standard library, off the event
loop. ``send`` answers whether the message went out, so callers can fall back (show the link to
the admin who asked for it).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import sys
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from appliance.settings import Settings

__all__ = ["send", "configured"]


def configured(settings: Settings) -> bool:
    return settings.email_backend == "console" or (settings.email_backend == "smtp" and settings.smtp_url is not None)


def _smtp(settings: Settings, message: EmailMessage) -> None:
    url = urlsplit(settings.smtp_url.get_secret_value())  # type: ignore[union-attr]
    host, port = url.hostname or "localhost", url.port or (465 if url.scheme == "smtps" else 587)
    if url.scheme == "smtps":
        server: smtplib.SMTP = smtplib.SMTP_SSL(host, port, context=ssl.create_default_context(), timeout=15)
    else:
        server = smtplib.SMTP(host, port, timeout=15)
        server.starttls(context=ssl.create_default_context())
    with server:
        if url.username:
            server.login(unquote(url.username), unquote(url.password or ""))
        server.send_message(message)


async def send(settings: Settings, *, to: str, subject: str, body: str) -> bool:
    if not configured(settings):
        return False
    message = EmailMessage()
    message["From"] = settings.email_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    if settings.email_backend == "console":
        print(f"--- email to {to} ---\nSubject: {subject}\n\n{body}\n--- end of email ---", file=sys.stdout, flush=True)
        return True
    try:
        await asyncio.to_thread(_smtp, settings, message)
    except (OSError, smtplib.SMTPException):
        return False
    return True
