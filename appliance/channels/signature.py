"""``X-Hub-Signature-256``: HMAC-SHA256 of the exact raw body, keyed with the app secret.

Checked on the bytes as received, before anything is parsed or stored: Meta signs its escaped
form (``\\u00e4``), so a re-serialised body would not match. Comparison is constant-time; a
missing header or a missing ``sha256=`` prefix is a failure.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

__all__ = ["sign", "verify"]

_PREFIX = "sha256="


def sign(body: bytes, secret: bytes) -> str:
    """The header value Meta would send for ``body`` (used by tests and the control plane)."""
    return _PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secrets: Iterable[bytes]) -> bool:
    """True when ``header`` is a valid signature of ``body`` under one of ``secrets``."""
    if not header or not header.startswith(_PREFIX):
        return False
    try:
        given = bytes.fromhex(header[len(_PREFIX):])
    except ValueError:
        return False
    if len(given) != hashlib.sha256().digest_size:
        return False
    ok = False
    for secret in secrets:
        expected = hmac.new(secret, body, hashlib.sha256).digest()
        # No early exit: every configured secret is tried, so timing does not say which matched.
        ok |= hmac.compare_digest(expected, given)
    return ok
