"""Meta's data-deletion callback for the platform app, fanned out to the tenants that know the user.

The router records which tenants each Meta user id was forwarded to (a keyed HMAC of the id,
never the id). A callback is checked with the platform app secret, then each of those tenants
gets the same request re-signed with its own secret, through the forwarding journal (so it is
retried like any delivery) to its ``/data-deletion``, where the appliance erases the contact.
The control plane keeps the confirmation code and a count, and forgets the user.
"""

from __future__ import annotations

import secrets
import string
import time
from typing import Any
from urllib.parse import urlencode

from appliance import audit
from appliance.privacy import signed_request
from appliance.timeutil import iso_now
from control_plane.db import Store
from control_plane.routing import store
from control_plane.routing.forwarder import DATA_DELETION, Forwarder
from control_plane.settings import ControlPlaneSettings, PlatformApp

__all__ = ["Deletions"]

_ALPHABET = string.ascii_uppercase + string.digits


class Deletions:
    def __init__(self, settings: ControlPlaneSettings, platform: PlatformApp, cp_store: Store,
                 forwarder: Forwarder) -> None:
        self.settings = settings
        self.platform = platform
        self.store = cp_store
        self.forwarder = forwarder

    async def receive(self, raw: str) -> dict[str, str]:
        request = signed_request.verify(raw, self.platform.secrets())
        user_hash = self.store.user_hash(request.user_id)
        payload = {"algorithm": "HMAC-SHA256", "issued_at": request.issued_at or int(time.time()),
                   "user_id": request.user_id}
        secrets_by_tenant = {tid: t.secret for tid, t in self.forwarder.targets.items()}
        code = "".join(secrets.choice(_ALPHABET) for _ in range(20))

        def record(db: Any) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
            existing = db.conn.execute("SELECT code FROM deletion_requests WHERE request_hash = ?",
                                       [request.digest]).fetchone()
            if existing is not None:  # Meta retried the callback: same code, nothing sent twice
                return store.deletion_by_code(db, existing[0]), []  # type: ignore[return-value]
            now = iso_now()
            tenants = [t for t in store.users_tenants(db, user_hash) if t in secrets_by_tenant]
            rows = [(t, DATA_DELETION, 1, urlencode({"signed_request": signed_request.sign(payload, secrets_by_tenant[t])})
                     .encode()) for t in tenants]
            ids = store.journal(db, rows, [], [], now, now)
            row = store.record_deletion(db, code=code, request_hash=request.digest, tenants=len(tenants), now=now)
            store.forget_user(db, user_hash)
            audit.record(db, audit.Actor("meta"), "data_deletion.fan_out", target_kind="deletion_request",
                         target_id=code, details={"tenants": len(tenants)})
            return row, [(t, {"id": i, "object": DATA_DELETION, "body": body, "attempts": 0, "received_at": now,
                              "next_attempt_at": now}) for (t, _, _, body), i in zip(rows, ids, strict=True)]

        row, queued = await self.store.gateway.write(record)
        for tenant_id, item in queued:
            self.forwarder.enqueue(tenant_id, [item])
        return {"url": f"{self.settings.public_url.rstrip('/')}/data-deletion/{row['code']}",
                "confirmation_code": row["code"]}

    async def status(self, code: str) -> dict[str, Any] | None:
        return await self.store.gateway.read(store.deletion_by_code, code)
