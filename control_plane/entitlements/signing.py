"""The control plane's entitlement signing key, and issuing tokens with it.

The key is an Ed25519 private key given as base64 of its 32-byte seed
(``AAT_CP_ENTITLEMENTS_KEY``). Without it, development gets one generated at
``DATA_DIR/entitlements.key`` (mode 0600) with a loud warning: appliances trust whatever key
their ``AAT_ENTITLEMENTS_PUBLIC_KEY`` names, so a production fleet must pin one.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from appliance.entitlements.token import sign
from control_plane.entitlements.plans import Plan

__all__ = ["load_signing_key", "public_key_text", "issue"]

log = logging.getLogger("aat.cp.entitlements")


def _from_text(text: str, where: str) -> Ed25519PrivateKey:
    try:
        seed = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where} is not base64") from None
    if len(seed) != 32:
        raise ValueError(f"{where} must be base64 of 32 bytes (an Ed25519 seed), not {len(seed)}")
    return Ed25519PrivateKey.from_private_bytes(seed)


def load_signing_key(configured: str | None, data_dir: Path) -> Ed25519PrivateKey:
    """The configured key, else the development key in ``data_dir`` (made on first use)."""
    if configured:
        return _from_text(configured, "AAT_CP_ENTITLEMENTS_KEY")
    path = data_dir / "entitlements.key"
    if path.exists():
        return _from_text(path.read_text(encoding="ascii"), str(path))
    log.warning("AAT_CP_ENTITLEMENTS_KEY is not set: generated a development signing key; "
                "set AAT_CP_ENTITLEMENTS_KEY in production", extra={"path": str(path)})
    data_dir.mkdir(parents=True, exist_ok=True)
    seed = os.urandom(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(base64.b64encode(seed).decode() + "\n")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_text(key: Ed25519PrivateKey) -> str:
    """What appliances set as ``AAT_ENTITLEMENTS_PUBLIC_KEY``."""
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def issue(key: Ed25519PrivateKey, *, tenant: str, plan: Plan, now: datetime, days: float) -> str:
    """A token for ``tenant`` on ``plan``, valid ``days`` from ``now``."""
    return sign(key, tenant=tenant, plan=plan.id, limits=plan.limits.as_claims(),
                issued_at=now, expires_at=now + timedelta(days=days))
