"""The entitlement token: what a workspace may use, signed by the control plane.

One format for both ways a workspace gets it: pushed by the control plane to a hosted tenant,
or handed to a self-hosted customer as a license file (``AAT_LICENSE_FILE``). It is a JWT
(RFC 7519) signed with Ed25519 (``alg: EdDSA``, RFC 8037), through PyJWT:

- ``iss``: ``aat-control-plane``; ``sub``: the tenant (or licensed customer) id;
- ``iat``, ``exp``: issued and expiry times (seconds);
- ``plan``: the plan's id; ``limits``: ``{contacts, ai_replies_per_month, seats, channels}``, each a
  non-negative integer or absent (absent: no limit).

:func:`verify` is the only way a token becomes :class:`Entitlements`; :func:`sign` is the only
way one is made (the control plane and the tests use it). Neither does I/O.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appliance.errors import Unprocessable

__all__ = [
    "ISSUER", "LIMIT_NAMES", "Entitlements", "InvalidEntitlement", "load_public_key", "sign", "verify",
]

ISSUER = "aat-control-plane"
ALGORITHM = "EdDSA"
LIMIT_NAMES = ("contacts", "ai_replies_per_month", "seats", "channels")


class InvalidEntitlement(Unprocessable):
    """A token that is not one the control plane signed for this workspace, or is malformed."""

    default_code = "invalid_entitlement"


@dataclass(frozen=True)
class Entitlements:
    """The plan and limits in force. ``limits`` holds only the limited quantities."""

    plan: str
    tenant: str
    issued_at: datetime
    expires_at: datetime
    limits: dict[str, int] = field(default_factory=dict)

    def limit(self, name: str) -> int | None:
        return self.limits.get(name)

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


def load_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from base64 (standard or url-safe) of its 32 raw bytes, or PEM."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        key = load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the PEM key is not an Ed25519 public key")
        return key
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64 of a 32-byte Ed25519 public key, nor PEM") from exc
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def sign(
    key: Ed25519PrivateKey, *, tenant: str, plan: str, limits: dict[str, int],
    issued_at: datetime, expires_at: datetime,
) -> str:
    unknown = sorted(set(limits) - set(LIMIT_NAMES))
    if unknown:
        raise ValueError(f"unknown limit(s): {', '.join(unknown)}")
    claims = {
        "iss": ISSUER, "sub": tenant, "plan": plan, "limits": limits,
        "iat": int(issued_at.timestamp()), "exp": int(expires_at.timestamp()),
    }
    import jwt  # imported when a token is signed or checked (PyJWT loads cryptography's X.509)

    return jwt.encode(claims, key, algorithm=ALGORITHM)


def verify(token: str, key: Ed25519PublicKey, *, tenant: str | None = None) -> Entitlements:
    """Check the signature, issuer and shape (and the tenant when given). An expired token is
    still returned (its limits stay in force until a newer one arrives); callers look at
    :meth:`Entitlements.expired`. Raises :class:`InvalidEntitlement` with what is wrong."""
    if not isinstance(token, str) or not token.strip():
        raise InvalidEntitlement("the entitlement token is empty")
    import jwt  # not at start: a workspace without a token never needs it

    try:
        claims: dict[str, Any] = jwt.decode(
            token.strip(), key, algorithms=[ALGORITHM], issuer=ISSUER,
            options={"require": ["iss", "sub", "iat", "exp", "plan"], "verify_exp": False},
        )
    except jwt.InvalidSignatureError:
        raise InvalidEntitlement("the entitlement token's signature does not verify with the control plane's key") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidEntitlement(f"the entitlement token is not valid: {exc}") from None
    if tenant is not None and claims["sub"] != tenant:
        raise InvalidEntitlement("the entitlement token was issued for another workspace")
    limits = claims.get("limits") or {}
    if not isinstance(limits, dict) or not all(
        name in LIMIT_NAMES and isinstance(value, int) and not isinstance(value, bool) and value >= 0
        for name, value in limits.items()
    ):
        raise InvalidEntitlement(f"the entitlement token's limits must map {', '.join(LIMIT_NAMES)} to counts")
    if not isinstance(claims["plan"], str) or not isinstance(claims["iat"], int) or not isinstance(claims["exp"], int):
        raise InvalidEntitlement("the entitlement token's plan, iat or exp has the wrong type")
    return Entitlements(
        plan=claims["plan"], tenant=str(claims["sub"]), limits=dict(limits),
        issued_at=datetime.fromtimestamp(claims["iat"], UTC), expires_at=datetime.fromtimestamp(claims["exp"], UTC),
    )
