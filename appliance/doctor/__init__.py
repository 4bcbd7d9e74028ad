"""``aat-appliance doctor``: is this installation ready for Meta and for its customers?

Checks, in order, each answered in plain words as ``ok``, ``warn`` or ``fail``:

- **local** (``local.py``): the master key (configured, not the development key), the
  workspace's wrapped data key and database (the key opens it; migrations not pending, not
  newer than this code), the Meta app secret and verify token, the public URL (https), free
  disk space beside ``DATA_DIR``, and the scheduled backups (configured, not overdue);
- **remote** (``remote.py``): Meta's webhook handshake ``GET /webhooks/meta`` through the public
  URL (the URL reaches *this* appliance, which accepts *its* verify token), every connected
  channel's token against the Graph API (``GET /{asset-id}?fields=id``), and the clock against
  the ``Date`` header of the Graph API's answers.

The command exits 0 when every check is ``ok``, 1 when any ``fail``, 2 with warnings only.
Messages never carry secrets or tokens.
"""

from __future__ import annotations

import httpx

from appliance.doctor.local import Result, local_checks
from appliance.doctor.remote import remote_checks
from appliance.settings import Settings

__all__ = ["Result", "run_checks"]


def run_checks(settings: Settings, *, transport: httpx.BaseTransport | None = None) -> list[Result]:
    """Every check, local first; the remote ones reuse what the local ones found."""
    results, context = local_checks(settings)
    timeout = httpx.Timeout(min(settings.http_timeout_seconds, 10.0))
    with httpx.Client(timeout=timeout, transport=transport, follow_redirects=False) as client:
        results += remote_checks(settings, client, context)
    return results
