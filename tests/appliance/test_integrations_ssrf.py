"""The SSRF policy: addresses in every spelling (pure), and the client that enforces it at
connect time against a real loopback server (no internet needed)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import httpx
import pytest

from appliance.integrations import safe_http
from appliance.integrations.http_step import perform
from appliance.integrations.safe_http import (
    BadRedirect,
    BlockedAddress,
    ResponseTooLarge,
    UnresolvableHost,
    fetch,
    safe_client,
)
from appliance.integrations.ssrf import (
    allow_private_effective,
    host_refusal,
    parse_ip_literal,
    refusal,
    url_refusal,
)
from tests.standins.http_target import Answer, HttpTarget

# host as it appears in a URL -> the reason it is refused (None: a public address)
SPELLINGS = {
    # loopback, every spelling a resolver accepts
    "127.0.0.1": "loopback",
    "127.0.0.2": "loopback",
    "127.1": "loopback",
    "127.0.1": "loopback",
    "2130706433": "loopback",
    "0x7f000001": "loopback",
    "0X7F000001": "loopback",
    "0x7f.1": "loopback",
    "0x7f.0x0.0x0.0x1": "loopback",
    "0177.0.0.1": "loopback",
    "0177.1": "loopback",
    "017700000001": "loopback",
    "127.0.0.1.": "loopback",
    "127.000.000.001": "loopback",
    "0x7f.0.0.1": "loopback",
    "0x7F.0.0.0x1": "loopback",
    "[::1]": "loopback",
    "[0:0:0:0:0:0:0:1]": "loopback",
    "[0000:0000:0000:0000:0000:0000:0000:0001]": "loopback",
    "[0:0:0:0:0:ffff:127.0.0.1]": "loopback",
    "[::ffff:127.0.0.1]": "loopback",
    "[::ffff:7f00:1]": "loopback",
    "[::FFFF:7F00:0001]": "loopback",
    "[::ffff:0:127.0.0.1]": "loopback",  # IPv4-translated
    "[64:ff9b::127.0.0.1]": "loopback",  # NAT64
    "[64:ff9b::7f00:1]": "loopback",
    "[2002:7f00:1::]": "loopback",  # 6to4
    # unspecified ("0" is 0.0.0.0, which Linux connects to loopback)
    "0": "unspecified",
    "0.0.0.0": "unspecified",
    "0x0": "unspecified",
    "0.1.2.3": "unspecified",
    "[::]": "unspecified",
    "[::ffff:0.0.0.0]": "unspecified",
    # RFC 1918 and unique local
    "10.0.0.1": "private",
    "10.255.255.255": "private",
    "012.0.0.1": "private",
    "167772161": "private",
    "0xa000001": "private",
    "10.1": "private",  # short forms: the last part fills the remaining bytes
    "10.0.1": "private",
    "0xa.0.0.1": "private",
    "172.16.0.1": "private",
    "172.31.255.254": "private",
    "2886729729": "private",  # 172.16.0.1
    "0xac100001": "private",
    "0254.020.0.1": "private",
    "172.16.1": "private",
    "[::ffff:172.16.0.1]": "private",
    "[::ffff:ac10:1]": "private",
    "192.168.0.1": "private",
    "192.168.1.1": "private",
    "0xc0a80101": "private",
    "3232235777": "private",
    "192.168.257": "private",  # 192.168.1.1
    "0300.0250.1.1": "private",
    "0xc0.0xa8.1.1": "private",
    "[::ffff:c0a8:101]": "private",
    "[::ffff:10.0.0.1]": "private",
    "[::ffff:192.168.1.1]": "private",
    "[fd00::1]": "private",
    "[fc00::1]": "private",
    # carrier-grade NAT
    "100.64.0.1": "shared",
    "100.127.255.254": "shared",
    # link-local and cloud metadata
    "169.254.169.254": "link_local",
    "2852039166": "link_local",
    "0xa9fea9fe": "link_local",
    "0251.0376.0251.0376": "link_local",
    "169.254.43518": "link_local",
    "169.254.169.254.": "link_local",
    "0xa9.0xfe.0xa9.0xfe": "link_local",
    "[0:0:0:0:0:ffff:a9fe:a9fe]": "link_local",
    "[64:ff9b::169.254.169.254]": "link_local",
    "[2002:a9fe:a9fe::]": "link_local",
    "[::ffff:169.254.169.254]": "link_local",
    "[::ffff:a9fe:a9fe]": "link_local",
    "[fe80::1]": "link_local",
    "[fe80::1%25eth0]": "link_local",
    # multicast, broadcast, reserved
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "233.252.0.1": "multicast",
    "[ff02::1]": "multicast",
    "255.255.255.255": "broadcast",
    "4294967295": "broadcast",
    "240.0.0.1": "reserved",
    "192.0.2.1": "reserved",  # documentation
    "198.18.0.1": "reserved",  # benchmarking
    "192.0.0.8": "reserved",  # IETF protocol assignments
    "[2001:db8::1]": "reserved",  # documentation
    "[fec0::1]": "reserved",  # site-local
    "[::127.0.0.1]": "reserved",  # IPv4-compatible, deprecated
    "[100::1]": "reserved",  # discard prefix
    "[64:ff9b:1::1]": "reserved",  # local-use NAT64
    # names: localhost by name (RFC 6761); everything else is judged after DNS
    "localhost": "local_name",
    "LOCALHOST.": "local_name",
    "api.localhost": "local_name",
    # public
    "8.8.8.8": None,
    "1.1.1.1": None,
    "134744072": None,  # 8.8.8.8
    "172.32.0.1": None,
    "100.128.0.1": None,
    "[2606:4700:4700::1111]": None,
    "[::ffff:8.8.8.8]": None,
    "[64:ff9b::8.8.8.8]": None,
    "example.com": None,
}


@pytest.mark.parametrize(("host", "reason"), SPELLINGS.items(), ids=list(SPELLINGS))
def test_every_spelling_is_judged_by_the_address_it_names(host: str, reason: str | None) -> None:
    assert host_refusal(host) == reason


@pytest.mark.parametrize("host", [h for h, r in SPELLINGS.items() if r in ("loopback", "private", "shared", "local_name")])
def test_allow_private_lets_loopback_and_private_through(host: str) -> None:
    assert host_refusal(host, allow_private=True) is None


@pytest.mark.parametrize("host", [h for h, r in SPELLINGS.items()
                                  if r in ("link_local", "multicast", "broadcast", "reserved", "unspecified")])
def test_allow_private_never_opens_metadata_multicast_or_reserved(host: str) -> None:
    assert host_refusal(host, allow_private=True) == SPELLINGS[host]


@pytest.mark.parametrize("host", ["example.com", "4294967296", "1.2.3.4.5", "08.0.0.1", "1..1", "::1", "[]"])
def test_what_is_not_an_address_literal_is_left_to_dns(host: str) -> None:
    # "::1" without brackets is not how a URL spells it; httpx refuses that URL before us.
    assert parse_ip_literal(host) is None or host == "::1"


@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.1:8080/x", "loopback"), ("https://[::ffff:169.254.169.254]/", "link_local"),
    ("http://user:pw@10.0.0.1/", "private"), ("http://LOCALHOST./", "local_name"),
    ("https://api.example.com/{{contact.fields.id}}", None), ("http://{{contact.fields.host}}/x", None),
    ("https://example.com/?next=http://127.0.0.1/", None),
])
def test_urls_are_judged_by_their_written_host_before_sending(url: str, reason: str | None) -> None:
    assert url_refusal(url) == reason


def test_resolved_addresses_are_judged_the_same_way() -> None:
    assert refusal(ipaddress.ip_address("127.0.0.1")) == "loopback"
    assert refusal(ipaddress.ip_address("::ffff:169.254.169.254"), allow_private=True) == "link_local"
    assert refusal(ipaddress.ip_address("93.184.216.34")) is None


@pytest.mark.parametrize(("public_url", "effective"), [
    ("http://127.0.0.1:8000", True), ("http://aat.internal", True),
    ("https://aat.example.com", False), ("HTTPS://aat.example.com", False),
])
def test_allow_private_is_refused_when_served_over_https(public_url: str, effective: bool) -> None:
    assert allow_private_effective(True, public_url) is effective
    assert allow_private_effective(False, public_url) is False


# --- the client, against a real loopback server ----------------------------------------------

@pytest.fixture
def target() -> Iterator[HttpTarget]:
    server = HttpTarget().start()
    yield server
    server.stop()


async def _get(url: str, *, allow_private: bool, deadline: float = 5.0, **kw: object) -> safe_http.Fetched:
    async with safe_client(allow_private=allow_private, timeout=deadline, **kw) as client:  # type: ignore[arg-type]
        return await fetch(client, "GET", url, deadline=deadline)


# Only loopback spellings are tried for real: a test never sends to a private or public address.
@pytest.mark.parametrize("host", [
    "localhost", "LocalHost", "127.0.0.1", "127.0.0.1.", "127.1", "0x7f.1", "2130706433", "0x7f000001",
    "017700000001", "[::1]", "[0:0:0:0:0:0:0:1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
    "[::ffff:0:127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]",
    "127\u30020\u30020\u30021",  # ideographic full stops: IDNA maps them to dots
])
async def test_loopback_is_never_connected_to(target: HttpTarget, host: str) -> None:
    """"localhost" is resolved by the system resolver here: a host name that resolves to loopback."""
    with pytest.raises(BlockedAddress) as refused:
        await _get(f"http://{host}:{target.port}/", allow_private=False)
    assert refused.value.reason == "loopback"
    assert target.requests == []


@pytest.mark.parametrize("host", ["0", "0.0.0.0", "[::]"])
async def test_the_unspecified_address_is_never_connected_to(target: HttpTarget, host: str) -> None:
    with pytest.raises(BlockedAddress) as refused:
        await _get(f"http://{host}:{target.port}/", allow_private=False)
    assert refused.value.reason == "unspecified"
    assert target.requests == []


@pytest.mark.parametrize("host", ["0177.0.0.1", "127.000.000.001", "\uff11\uff12\uff17.\uff10.\uff10.\uff11"])
async def test_spellings_httpx_will_not_parse_never_leave(target: HttpTarget, host: str) -> None:
    """Dotted octal and full-width digits: httpx refuses the URL itself (the pure matrix above
    still judges them, for checks made before sending)."""
    with pytest.raises(httpx.InvalidURL):
        await _get(f"http://{host}:{target.port}/", allow_private=False)
    assert target.requests == []


async def test_a_name_that_resolves_to_loopback_is_refused_after_dns(target: HttpTarget) -> None:
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        asked.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    with pytest.raises(BlockedAddress) as refused:
        await _get(f"http://rebind.example.test:{target.port}/", allow_private=False, resolver=resolver)
    assert refused.value.reason == "loopback"
    assert asked == ["rebind.example.test"]
    assert target.requests == []


async def test_one_private_answer_among_public_ones_refuses_the_name(target: HttpTarget) -> None:
    async def resolver(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.7")]

    with pytest.raises(BlockedAddress):
        await _get(f"http://mixed.example.test:{target.port}/", allow_private=False, resolver=resolver)


async def test_the_connection_goes_to_the_address_that_was_judged(target: HttpTarget) -> None:
    """Resolved once, connected to that address: a second DNS answer is never asked for."""
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        asked.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    fetched = await _get(f"http://api.example.test:{target.port}/x", allow_private=True, resolver=resolver)
    assert fetched.status == 200
    assert asked == ["api.example.test"]
    assert target.requests[0].headers["host"] == f"api.example.test:{target.port}"


async def test_names_that_do_not_resolve_are_an_error(target: HttpTarget) -> None:
    async def resolver(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        raise UnresolvableHost()

    with pytest.raises(UnresolvableHost):
        await _get("http://nothing.example.test/", allow_private=True, resolver=resolver)


@pytest.mark.parametrize("location", [
    "http://169.254.169.254/latest/meta-data/", "http://2852039166/", "http://0xa9fea9fe/",
    "http://[::ffff:169.254.169.254]/", "http://[fe80::1]/", "http://224.0.0.1/", "http://0.0.0.0/",
])
async def test_every_redirect_hop_is_judged_again(target: HttpTarget, location: str) -> None:
    # Even with private addresses allowed (tests), metadata and the like stay out of reach.
    target.script(Answer.redirect(location))
    with pytest.raises(BlockedAddress):
        await _get(f"{target.base_url}/start", allow_private=True)
    assert [r.path for r in target.requests] == ["/start"]


async def test_dotted_octal_in_a_redirect_is_refused_as_a_url(target: HttpTarget) -> None:
    # httpx refuses dotted forms with leading zeros outright (they are ambiguous).
    target.script(Answer.redirect("http://0251.0376.0251.0376/"))
    with pytest.raises(httpx.RemoteProtocolError):
        await _get(f"{target.base_url}/start", allow_private=True)
    assert len(target.requests) == 1


async def test_redirects_are_followed_to_allowed_addresses_with_author_headers_dropped_across_origins(
    target: HttpTarget,
) -> None:
    target.script(Answer.redirect(f"http://localhost:{target.port}/moved", 307))
    async with safe_client(allow_private=True, timeout=5) as client:
        fetched = await fetch(client, "POST", f"{target.base_url}/start", deadline=5, content=b"{}",
                              headers={"X-Api-Key": "k-123", "Content-Type": "application/json"})
    assert fetched.status == 200
    first, second = target.requests
    assert (first.path, second.path) == ("/start", "/moved")
    assert first.headers["x-api-key"] == "k-123"
    assert "x-api-key" not in second.headers  # another origin: the author's secrets stay behind
    assert second.method == "POST" and second.body == b"{}"  # 307 keeps the method and body


async def test_redirect_loops_stop(target: HttpTarget) -> None:
    target.script(*[Answer.redirect("/again") for _ in range(5)])
    with pytest.raises(BadRedirect) as refused:
        await _get(f"{target.base_url}/", allow_private=True)
    assert refused.value.reason == "too_many_redirects"


def test_https_never_redirects_to_http() -> None:
    response = httpx.Response(302, headers={"location": "http://example.com/"},
                              request=httpx.Request("GET", "https://example.com/"))
    with pytest.raises(BadRedirect) as refused:
        safe_http._next_hop(response, "GET", None, {})
    assert refused.value.reason == "insecure_redirect"


@pytest.mark.parametrize("answer", [
    Answer(size=1024 * 1024 + 1),
    Answer(size=1024 * 1024 + 1, chunked=True),
    Answer(gzip_bomb=50 * 1024 * 1024),
], ids=["declared", "chunked", "gzip-bomb"])
async def test_a_body_over_one_mebibyte_is_refused(target: HttpTarget, answer: Answer) -> None:
    target.script(answer)
    with pytest.raises(ResponseTooLarge):
        await _get(f"{target.base_url}/big", allow_private=True)


async def test_a_body_of_exactly_one_mebibyte_is_read(target: HttpTarget) -> None:
    target.script(Answer(size=1024 * 1024, chunked=True))
    assert len((await _get(f"{target.base_url}/", allow_private=True)).body) == 1024 * 1024


@pytest.mark.parametrize("answer", [Answer(delay=3), Answer(body=b"x" * 100, drip=0.05)],
                         ids=["slow-headers", "slow-drip"])
async def test_slow_servers_time_out_within_the_deadline(target: HttpTarget, answer: Answer) -> None:
    target.script(answer)
    with pytest.raises(TimeoutError):
        await _get(f"{target.base_url}/", allow_private=True, deadline=0.5)


async def test_proxies_from_the_environment_are_ignored(target: HttpTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy would open the connection for us, out of the policy's sight.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    assert (await _get(f"{target.base_url}/", allow_private=True)).status == 200


@pytest.mark.parametrize(("url", "reason"), [
    ("ftp://example.com/", "invalid_url"), ("http:///nohost", "invalid_url"), ("not a url", "invalid_url"),
    ("http://localhost/", "blocked_address"), ("http://169.254.169.254/", "blocked_address"),
    ("http://[::ffff:127.0.0.1]/", "blocked_address"), ("http://2130706433/", "blocked_address"),
    ("http://0177.0.0.1/", "invalid_url"),  # httpx refuses dotted octal before we see it
])
async def test_step_errors_are_reasons(url: str, reason: str) -> None:
    ok, data, error, _ = await perform({"method": "GET", "url": url, "timeout_seconds": 2}, allow_private=False)
    assert (ok, data, error) == (False, None, reason)
