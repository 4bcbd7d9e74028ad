"""Email to tenant owners (a channel's token is about to break). ``AAT_CP_EMAIL``: ``none`` or
``console`` (one JSON line on stdout), or ``resend`` / ``postmark`` (``control_plane.mail``)."""

from __future__ import annotations

import json
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Notifier", "Email"]


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str


@dataclass
class Notifier:
    backend: str = "none"
    sent: deque[Email] = field(default_factory=lambda: deque(maxlen=100))  # the latest, for tests and admins
    deliver: Callable[[Email], None] | None = None  # resend / postmark: control_plane.mail.MailSender.deliver

    def send(self, email: Email) -> None:
        self.sent.append(email)
        if self.backend == "console":
            sys.stdout.write(json.dumps({"email": {"to": email.to, "subject": email.subject, "text": email.text}}) + "\n")
            sys.stdout.flush()
        elif self.deliver is not None:
            self.deliver(email)
