"""The appliance's one error hierarchy, and its single mapping to HTTP.

::

    AatError                      code            HTTP
    ├── BadRequest                bad_request     400   malformed input (not JSON, bad query)
    ├── Unauthorized              unauthorized    401   no or unknown credentials
    ├── Forbidden                 forbidden       403   role too low, bad webhook signature
    ├── NotFound                  not_found       404
    ├── MethodNotAllowed          method_not_allowed 405  (raw ASGI routes; ``Allow`` header)
    ├── Conflict                  conflict        409   the resource's state forbids it
    ├── PayloadTooLarge           payload_too_large 413
    ├── Unprocessable             invalid_request 422   well-formed but wrong (with details)
    │   └── PolicyViolation       outside_window / template_required / ...   Meta policy
    ├── TooManyRequests           rate_limited    429   sign-in throttling
    └── ServiceUnavailable        unavailable     503   not ready, disk full

Every error renders as ``{"error": {"code", "message", "details": [{"path", "message"}]}}``
with the headers of :meth:`AatError.headers`: a 401 carries ``WWW-Authenticate``, a 405
``Allow`` and a 503 ``Retry-After``.
Messages say what is wrong and how to fix it; they never carry message text, names, phone
numbers or tokens (they may be logged by code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AatError",
    "BadRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "MethodNotAllowed",
    "Conflict",
    "PayloadTooLarge",
    "Unprocessable",
    "PolicyViolation",
    "TooManyRequests",
    "ServiceUnavailable",
    "Detail",
    "error_body",
]


@dataclass(frozen=True, slots=True)
class Detail:
    """One problem in the input, located by a dotted path (``steps.ask.next``)."""

    path: str
    message: str


class AatError(Exception):
    status_code: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self, message: str, *, code: str | None = None, details: list[Detail] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details or []

    def to_body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.details)

    def headers(self) -> dict[str, str] | None:
        """The response headers this error requires, if any."""
        return {"WWW-Authenticate": "Bearer"} if self.status_code == 401 else None


class BadRequest(AatError):
    status_code = 400
    default_code = "bad_request"


class Unauthorized(AatError):
    status_code = 401
    default_code = "unauthorized"


class Forbidden(AatError):
    status_code = 403
    default_code = "forbidden"


class NotFound(AatError):
    status_code = 404
    default_code = "not_found"


class MethodNotAllowed(AatError):
    """The path exists but not for this method; ``allow`` lists the methods it takes."""

    status_code = 405
    default_code = "method_not_allowed"

    def __init__(self, allow: str, message: str = "this method is not allowed on this path") -> None:
        super().__init__(message)
        self.allow = allow

    def headers(self) -> dict[str, str]:
        return {"Allow": self.allow}


class Conflict(AatError):
    status_code = 409
    default_code = "conflict"


class PayloadTooLarge(AatError):
    status_code = 413
    default_code = "payload_too_large"


class Unprocessable(AatError):
    status_code = 422
    default_code = "invalid_request"


class PolicyViolation(Unprocessable):
    """Meta's messaging policy forbids this send; ``code`` names the rule."""

    default_code = "policy_violation"


class TooManyRequests(AatError):
    status_code = 429
    default_code = "rate_limited"


class ServiceUnavailable(AatError):
    """Try again later; ``retry_after`` (seconds) becomes the ``Retry-After`` header."""

    status_code = 503
    default_code = "unavailable"

    def __init__(
        self, message: str, *, code: str | None = None, details: list[Detail] | None = None,
        retry_after: int = 30,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def error_body(code: str, message: str, details: list[Detail] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = [{"path": d.path, "message": d.message} for d in details]
    return {"error": body}
