"""Hosted email delivery for the notifier: Resend and Postmark over the control plane's httpx
client (``AAT_CP_EMAIL=resend|postmark``, ``AAT_CP_EMAIL_API_KEY``, ``AAT_CP_EMAIL_FROM``,
``AAT_CP_EMAIL_API_BASE`` to point elsewhere).

Contract: :meth:`MailSender.deliver` is called by :class:`~control_plane.notify.Notifier` from
inside the running loop and returns at once; the POST runs in a background task, retried
three times (1 s, 4 s) on a transport error, 429 or 5xx. Failures are logged with the status
only (no address, no text: no PII in logs). :meth:`MailSender.idle` waits for pending sends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from control_plane.notify import Email
from control_plane.settings import ControlPlaneSettings

__all__ = ["MailSender", "DEFAULT_BASES"]

log = logging.getLogger("aat.cp.mail")

DEFAULT_BASES = {"resend": "https://api.resend.com", "postmark": "https://api.postmarkapp.com"}
DELAYS = (1.0, 4.0)


class MailSender:
    def __init__(self, settings: ControlPlaneSettings, http: httpx.AsyncClient,
                 *, delays: tuple[float, ...] = DELAYS) -> None:
        if settings.email not in DEFAULT_BASES:
            raise ValueError(f"no hosted email backend {settings.email!r}")
        if settings.email_api_key is None or not settings.email_from:
            raise ValueError(f"AAT_CP_EMAIL={settings.email} needs AAT_CP_EMAIL_API_KEY and AAT_CP_EMAIL_FROM")
        self.backend = settings.email
        self.base = (settings.email_api_base or DEFAULT_BASES[self.backend]).rstrip("/")
        self.key = settings.email_api_key.get_secret_value()
        self.sender = settings.email_from
        self.http = http
        self.delays = delays
        self._pending: set[asyncio.Task[Any]] = set()

    def request(self, email: Email) -> tuple[str, dict[str, str], dict[str, Any]]:
        """(url, headers, JSON body) of one email, in the provider's own API shape."""
        if self.backend == "resend":  # https://resend.com/docs/api-reference/emails/send-email
            return (f"{self.base}/emails", {"Authorization": f"Bearer {self.key}"},
                    {"from": self.sender, "to": [email.to], "subject": email.subject, "text": email.text})
        # https://postmarkapp.com/developer/api/email-api
        return (f"{self.base}/email", {"X-Postmark-Server-Token": self.key, "Accept": "application/json"},
                {"From": self.sender, "To": email.to, "Subject": email.subject, "TextBody": email.text,
                 "MessageStream": "outbound"})

    def deliver(self, email: Email) -> None:
        task = asyncio.get_running_loop().create_task(self._send(email))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(self, email: Email) -> bool:
        url, headers, body = self.request(email)
        status: int | str = "not attempted"
        for delay in (0.0, *self.delays):
            if delay:
                await asyncio.sleep(delay)
            try:
                response = await self.http.post(url, headers=headers, json=body)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
                continue
            if response.status_code < 300:
                return True
            status = response.status_code
            if response.status_code < 500 and response.status_code != 429:
                break
        log.warning("email not delivered", extra={"backend": self.backend, "status": status})
        return False

    async def idle(self) -> None:
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
