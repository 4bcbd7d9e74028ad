"""Meta's ``signed_request`` (data-deletion and deauthorize callbacks), checked before use.

``<base64url(signature)>.<base64url(payload)>``: the signature is HMAC-SHA256 over the
*still encoded* payload segment, keyed with the app secret; the payload is JSON
``{"algorithm": "HMAC-SHA256", "issued_at": ..., "user_id": "<app-scoped user id>"}``
(docs/spec/meta-platform.md §8). The signature is checked before the payload is decoded, as
webhooks are (DESIGN invariant 3): a forged request is refused with 403 and leaves no trace; one
that is not a signed request at all gets 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from appliance.errors import BadRequest, Forbidden

__all__ = ["SignedRequest", "verify", "sign"]

_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")
_USER_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
MAX_LENGTH = 8192


@dataclass(frozen=True, slots=True)
class SignedRequest:
    user_id: str
    issued_at: int | None
    digest: str  # SHA-256 of the whole signed_request: a retried callback has the same one


def _decode(segment: str, what: str) -> bytes:
    if not _SEGMENT.match(segment):
        raise BadRequest(f"the signed_request's {what} is not base64url", code="malformed_signed_request")
    try:
        return base64.urlsafe_b64decode(segment.rstrip("=") + "=" * (-len(segment.rstrip("=")) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"the signed_request's {what} is not base64url", code="malformed_signed_request") from exc


def verify(signed_request: str, secrets: list[bytes]) -> SignedRequest:
    """The checked request; raises ``BadRequest`` (malformed) or ``Forbidden`` (forged)."""
    if not secrets:
        raise Forbidden("signed requests cannot be checked: AAT_META_APP_SECRET is not set",
                        code="signature_unverifiable")
    if len(signed_request) > MAX_LENGTH or signed_request.count(".") != 1:
        raise BadRequest("signed_request must be <signature>.<payload>, both base64url",
                         code="malformed_signed_request")
    encoded_signature, encoded_payload = signed_request.split(".")
    signature = _decode(encoded_signature, "signature")
    _decode(encoded_payload, "payload")  # well-formed before anything else; decoded for use below
    signed = encoded_payload.encode("ascii")
    if not any(hmac.compare_digest(signature, hmac.new(secret, signed, hashlib.sha256).digest())
               for secret in secrets):
        raise Forbidden("the signed_request's signature does not match the app secret",
                        code="invalid_signature")
    try:
        payload = json.loads(_decode(encoded_payload, "payload"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("the signed_request's payload is not JSON", code="malformed_signed_request") from exc
    if not isinstance(payload, dict):
        raise BadRequest("the signed_request's payload is not a JSON object", code="malformed_signed_request")
    algorithm = payload.get("algorithm")
    if not isinstance(algorithm, str) or algorithm.upper() != "HMAC-SHA256":
        raise BadRequest("the signed_request's algorithm must be HMAC-SHA256", code="unsupported_algorithm")
    user_id = payload.get("user_id")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not _USER_ID.match(user_id):
        raise BadRequest("the signed_request names no user (user_id)", code="malformed_signed_request")
    issued_at = payload.get("issued_at")
    if not isinstance(issued_at, int) or isinstance(issued_at, bool):
        issued_at = None
    digest = hashlib.sha256(signed_request.encode("ascii")).hexdigest()
    return SignedRequest(user_id=user_id, issued_at=issued_at, digest=digest)


def sign(payload: dict[str, object], secret: bytes) -> str:
    """Build a signed_request as Meta does (tests, and the control plane when it forwards)."""
    encoded = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=")
    signature = base64.urlsafe_b64encode(hmac.new(secret, encoded, hashlib.sha256).digest()).rstrip(b"=")
    return f"{signature.decode()}.{encoded.decode()}"
