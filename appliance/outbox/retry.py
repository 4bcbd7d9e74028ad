"""What to do after a failed send: retry (transient), give up (permanent), or re-authenticate.

Branch on Meta's ``code`` (docs/spec/meta-platform.md §7), never on the message text:

- ``reauth``: 190 (the token is invalid or expired);
- ``retry``: a code in :data:`TRANSIENT_CODES`, whatever the HTTP status; no code at all for
  a timeout, a dropped connection, a bare (non-Graph) 5xx or 429; an unknown code with a 5xx;
- ``fail``: a code in :data:`PERMANENT_CODES` or 200-299 (even with a 5xx), an unknown code
  with a 4xx, a bare 4xx other than 429.

:func:`backoff_seconds` is exponential with equal jitter: the n-th retry waits between half
and all of ``base * 2**(n-1)``, capped at :data:`MAX_BACKOFF_SECONDS`; never less than what
Meta asked for (``Retry-After`` / BUC ``estimated_time_to_regain_access``, at most an hour)
nor, for the WhatsApp pair-rate error 131056, the ~6 s pair spacing.

A code in :data:`THROTTLE_CODES` says the sending asset (or the app) is over a rate limit: the
sender then holds every send on that channel for the retry's delay, not only the one refused.
"""

from __future__ import annotations

import random
from typing import Literal

from appliance.channels.outbound import GraphError

__all__ = [
    "Verdict", "classify", "backoff_seconds", "TRANSIENT_CODES", "PERMANENT_CODES",
    "REAUTH_CODES", "THROTTLE_CODES", "MAX_BACKOFF_SECONDS", "MAX_WAIT_SECONDS", "PAIR_RATE_SECONDS",
]

Verdict = Literal["retry", "fail", "reauth"]

TRANSIENT_CODES = frozenset(
    {1, 2, 4, 17, 32, 613, 1200, 80001, 80002, 80003, 80004, 80005, 80006, 80007,
     130429, 131000, 131016, 131056, 131057, 133016, 135000}
)
# Listed so that a permanent code arriving with an HTTP 5xx still is not retried.
PERMANENT_CODES = frozenset(
    {10, 100, 200, 230, 368, 551, 10900, 10903, 131008, 131009, 131021, 131026, 131031,
     131042, 131047, 131048, 131049, 131050, 131051, 131052, 131053, 131064, 130472, 130497,
     132000, 132001, 132005, 132007, 132012, 132015, 132016, 137000}
)
REAUTH_CODES = frozenset({190})
# Rate limits of the app, the Page/number or the business (not of one recipient: 131056 is).
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001, 80002, 80003, 80004, 80005, 80006, 80007, 130429})
MAX_BACKOFF_SECONDS = 600.0
# The longest wait Meta can impose on us through Retry-After or the BUC header.
MAX_WAIT_SECONDS = 3600.0
# WhatsApp pair rate: about one message per 6 s to the same user.
PAIR_RATE_SECONDS = 6.0


def classify(error: GraphError) -> Verdict:
    if error.code in REAUTH_CODES:
        return "reauth"
    if error.code in TRANSIENT_CODES:
        return "retry"
    if error.code in PERMANENT_CODES or (error.code is not None and 200 <= error.code < 300):
        return "fail"
    if error.code is None:
        # Timeouts and connection failures carry no status; a bare 5xx or 429 has no body.
        if error.http_status is None or error.http_status >= 500 or error.http_status == 429:
            return "retry"
        return "fail"
    if error.http_status is not None and error.http_status >= 500:
        return "retry"
    return "fail"


def backoff_seconds(
    attempt: int, *, base: float, error: GraphError | None = None,
    retry_after: float | None = None, rng: random.Random | None = None,
) -> float:
    """Seconds to wait after attempt number ``attempt`` (1 for the first) failed, before the
    next: see the module docstring."""
    rng = rng or random.Random()
    # Clamp the exponent: the cap applies long before 2**20, and a float cannot hold 2**1100.
    ceiling = min(MAX_BACKOFF_SECONDS, base * (2 ** min(20, max(0, attempt - 1))))
    delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
    if error is not None and error.code == 131056:
        delay = max(delay, PAIR_RATE_SECONDS)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, MAX_WAIT_SECONDS)
