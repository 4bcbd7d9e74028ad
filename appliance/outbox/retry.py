"""What to do after a failed send: retry (transient), give up (permanent), or re-authenticate.

Branch on Meta's ``code`` (docs/spec/meta-platform.md §7), never on the message text.
"""

from __future__ import annotations

import random
from typing import Literal

from appliance.channels.outbound import GraphError

__all__ = ["Verdict", "classify", "backoff_seconds", "TRANSIENT_CODES", "PERMANENT_CODES", "MAX_BACKOFF_SECONDS"]

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
MAX_BACKOFF_SECONDS = 600.0
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
    """Delay before attempt ``attempt + 1``: exponential with equal jitter, capped, never
    shorter than what Meta asked for (``retry_after``) or the WhatsApp pair-rate spacing."""
    rng = rng or random.Random()
    ceiling = min(MAX_BACKOFF_SECONDS, base * (2 ** max(0, attempt - 1)))
    delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
    if error is not None and error.code == 131056:
        delay = max(delay, PAIR_RATE_SECONDS)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, 3600.0)
