"""appliance.outbox.retry: the classification of every documented code, and the backoff."""

from __future__ import annotations

import random

import httpx
import pytest

from appliance.channels.outbound import GraphError
from appliance.channels.wire import GraphWire
from appliance.outbox.retry import (
    MAX_BACKOFF_SECONDS,
    MAX_WAIT_SECONDS,
    PAIR_RATE_SECONDS,
    backoff_seconds,
    classify,
)
from tests.appliance.channel_helpers import MockGraph

# docs/spec/meta-platform.md §7 and the issue: retried with backoff.
TRANSIENT = [1, 2, 4, 17, 32, 613, 1200, 80001, 80002, 80003, 80004, 80005, 80006, 80007,
             130429, 131000, 131016, 131056, 131057, 133016, 135000]
# Never retried: fix the request, use a tag or template, or stop and alert.
PERMANENT = [
    (10, 2018278), (10, 2534022), (10, None), (100, None), (100, 2018001), (100, 33),
    (200, None), (230, None), (299, None), (368, None), (551, 1545041), (10900, None),
    (10903, None), (131008, None), (131009, None), (131021, None), (131026, None),
    (131031, None), (131042, None), (131047, None), (131048, None), (131049, None),
    (131050, None), (131051, None), (131052, None), (131053, None), (131064, None),
    (130472, None), (130497, None), (132000, None), (132001, None), (132005, None),
    (132007, None), (132012, None), (132015, None), (132016, None), (137000, None),
]


def graph(code: int | None, status: int | None = 400, subcode: int | None = None) -> GraphError:
    return GraphError(code=code, message="error", subcode=subcode, http_status=status)


# --- classification ------------------------------------------------------------------------

@pytest.mark.parametrize("status", [400, 403, 429, 500, 503])
@pytest.mark.parametrize("code", TRANSIENT)
def test_transient_codes_are_retried_whatever_the_status(code: int, status: int) -> None:
    assert classify(graph(code, status)) == "retry"


@pytest.mark.parametrize("status", [400, 403, 500])
@pytest.mark.parametrize(("code", "subcode"), PERMANENT)
def test_permanent_codes_fail_at_once_even_with_a_5xx(code: int, subcode: int | None, status: int) -> None:
    assert classify(graph(code, status, subcode)) == "fail"


@pytest.mark.parametrize("status", [400, 401, 500])
@pytest.mark.parametrize("subcode", [None, 458, 459, 460, 463, 464, 467])
def test_code_190_asks_for_reauthentication(subcode: int | None, status: int) -> None:
    assert classify(graph(190, status, subcode)) == "reauth"


@pytest.mark.parametrize("message", ["timeout", "connection failed", "request failed"])
def test_transport_failures_are_retried(message: str) -> None:
    assert classify(GraphError(code=None, message=message)) == "retry"


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_bare_5xx_and_429_are_retried(status: int) -> None:
    assert classify(graph(None, status)) == "retry"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_bare_4xx_fails(status: int) -> None:
    assert classify(graph(None, status)) == "fail"


@pytest.mark.parametrize(("status", "verdict"), [(500, "retry"), (503, "retry"), (400, "fail")])
def test_an_unknown_code_follows_its_http_status(status: int, verdict: str) -> None:
    assert classify(graph(987654, status)) == verdict


# A response as it comes off the wire, decoded by the channel plumbing, then classified.
WIRE = [
    pytest.param(502, b"<html><body>Bad gateway</body></html>", "text/html", "retry", id="html-502"),
    pytest.param(503, b"", "text/plain", "retry", id="empty-503"),
    pytest.param(500, b"{not json", "application/json", "retry", id="broken-json-500"),
    pytest.param(429, b"Too Many Requests", "text/plain", "retry", id="text-429"),
    pytest.param(400, b"<html>Bad request</html>", "text/html", "fail", id="html-400"),
    pytest.param(404, b"[]", "application/json", "fail", id="json-list-404"),
    pytest.param(400, b'{"error": {"code": 131056, "message": "pair rate"}}', "application/json",
                 "retry", id="graph-131056"),
    pytest.param(400, b'{"error": {"code": "131047", "message": "re-engagement"}}',
                 "application/json", "fail", id="graph-code-as-string"),
    pytest.param(401, b'{"error": {"code": 190, "error_subcode": 463}}', "application/json",
                 "reauth", id="graph-190"),
]


@pytest.mark.parametrize(("status", "body", "content_type", "verdict"), WIRE)
async def test_responses_off_the_wire(status: int, body: bytes, content_type: str, verdict: str) -> None:
    graph = MockGraph(lambda request: httpx.Response(status, content=body, headers={"Content-Type": content_type}))
    graph.start()
    wire = GraphWire(user_agent="aat-appliance/test", timeout=5.0, connections=1)
    try:
        result = await wire.post(graph.settings().graph_url("1/messages"), "token", {}, lambda data: None)
    finally:
        await wire.aclose()
        graph.stop()
    assert result.ok is False
    assert classify(result.error) == verdict  # type: ignore[arg-type]


# --- backoff ---------------------------------------------------------------------------------

class Highest(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


class Lowest(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (8, 128)])
def test_backoff_doubles_with_each_attempt(attempt: int, ceiling: float) -> None:
    assert backoff_seconds(attempt, base=1.0, rng=Highest()) == ceiling


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 1), (2, 2), (3, 4), (8, 128)])
def test_backoff_jitter_never_goes_below_half(attempt: int, ceiling: float) -> None:
    assert backoff_seconds(attempt, base=1.0, rng=Lowest()) == ceiling / 2


@pytest.mark.parametrize("attempt", [1, 3, 6])
def test_backoff_is_jittered_within_its_bounds(attempt: int) -> None:
    ceiling = 0.5 * 2 ** (attempt - 1)
    rng = random.Random(7)
    delays = [backoff_seconds(attempt, base=0.5, rng=rng) for _ in range(500)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 400  # spread out, not one value


def test_backoff_uses_its_own_randomness_without_an_rng() -> None:
    assert len({backoff_seconds(4, base=1.0) for _ in range(50)}) > 1


@pytest.mark.parametrize("attempt", [11, 20, 30, 1000, 10**6])
def test_backoff_is_capped_at_ten_minutes(attempt: int) -> None:
    assert backoff_seconds(attempt, base=1.0, rng=Highest()) == MAX_BACKOFF_SECONDS == 600.0
    assert backoff_seconds(attempt, base=1.0, rng=Lowest()) == MAX_BACKOFF_SECONDS / 2


@pytest.mark.parametrize(("retry_after", "expected"), [
    pytest.param(30.0, 30.0, id="longer-than-backoff"),
    pytest.param(0.0, 1.0, id="zero"),
    pytest.param(0.5, 1.0, id="shorter-than-backoff"),
    pytest.param(1800.0, 1800.0, id="half-an-hour"),
    pytest.param(7200.0, MAX_WAIT_SECONDS, id="capped-at-an-hour"),
])
def test_backoff_honours_what_meta_asked_for(retry_after: float, expected: float) -> None:
    assert backoff_seconds(1, base=1.0, retry_after=retry_after, rng=Highest()) == expected


def test_pair_rate_error_waits_the_pair_spacing() -> None:
    delay = backoff_seconds(1, base=0.05, error=graph(131056), rng=Highest())
    assert delay == PAIR_RATE_SECONDS == 6.0


def test_pair_rate_spacing_does_not_shorten_a_longer_backoff() -> None:
    assert backoff_seconds(6, base=1.0, error=graph(131056), rng=Highest()) == 32.0


@pytest.mark.parametrize("code", [130429, 131000, 1, None])
def test_other_errors_do_not_get_the_pair_spacing(code: int | None) -> None:
    assert backoff_seconds(1, base=0.05, error=graph(code), rng=Highest()) == 0.05
