"""Which addresses outbound requests (``http_request`` steps, outbound webhooks) may reach.

Pure functions, no I/O. :func:`refusal` judges one IP address; :func:`parse_ip_literal` reads
a URL host that is an IP address in any spelling a resolver accepts (``2130706433``,
``0x7f000001``, ``0177.0.0.1``, ``127.1``, ``[::ffff:127.0.0.1]`` ...), so a literal is judged
without asking DNS. The transport in :mod:`appliance.integrations.safe_http` judges every
address a host name resolves to, and connects only to an address it judged.

Refused, with the reason returned:

===================  ==========================================================================
``unspecified``      0.0.0.0/8, ``::``
``loopback``         127.0.0.0/8, ``::1``
``private``          10/8, 172.16/12, 192.168/16, fc00::/7 (unique local)
``shared``           100.64.0.0/10 (carrier-grade NAT)
``link_local``       169.254.0.0/16 (cloud metadata at 169.254.169.254), fe80::/10
``multicast``        224.0.0.0/4, ff00::/8
``broadcast``        255.255.255.255
``reserved``         240.0.0.0/4 and the other IANA special-purpose blocks (documentation,
                     benchmarking, IETF protocol assignments incl. Teredo, site-local
                     fec0::/10, local-use NAT64 64:ff9b:1::/48 ...), IPv6 outside 2000::/3,
                     and whatever else Python's ``ipaddress`` does not call global
===================  ==========================================================================

IPv6 addresses that carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-translated
``::ffff:0:a.b.c.d``, NAT64 ``64:ff9b::a.b.c.d``, 6to4 ``2002:AABB:CCDD::``) are judged by the
IPv4 address they carry. ``allow_private`` (``AAT_HTTP_ALLOW_PRIVATE``, tests only) lets
``loopback``, ``private`` and ``shared`` through; never link-local, multicast or the rest.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal
from urllib.parse import urlsplit

__all__ = [
    "IPAddress",
    "Refusal",
    "ALLOWABLE_WHEN_PRIVATE",
    "refusal",
    "parse_ip_literal",
    "host_refusal",
    "url_refusal",
    "allow_private_effective",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Refusal = Literal[
    "unspecified", "loopback", "private", "shared", "link_local", "multicast", "broadcast", "reserved",
    "local_name",
]
ALLOWABLE_WHEN_PRIVATE = frozenset({"loopback", "private", "shared", "local_name"})

_V4: list[tuple[ipaddress.IPv4Network, Refusal]] = [
    (ipaddress.IPv4Network(net), reason) for net, reason in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link_local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),  # IETF protocol assignments
        ("192.0.2.0/24", "reserved"),  # documentation (TEST-NET-1)
        ("192.88.99.0/24", "reserved"),  # 6to4 relay anycast, deprecated
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "reserved"),  # benchmarking
        ("198.51.100.0/24", "reserved"),  # documentation (TEST-NET-2)
        ("203.0.113.0/24", "reserved"),  # documentation (TEST-NET-3)
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
]
_V6: list[tuple[ipaddress.IPv6Network, Refusal]] = [
    (ipaddress.IPv6Network(net), reason) for net, reason in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("fe80::/10", "link_local"),
        ("fec0::/10", "reserved"),  # site-local, deprecated but still routed by some stacks
        ("fc00::/7", "private"),
        ("ff00::/8", "multicast"),
        ("64:ff9b:1::/48", "reserved"),  # local-use NAT64 (RFC 8215)
        ("100::/64", "reserved"),  # discard only
        ("2001::/23", "reserved"),  # IETF protocol assignments, Teredo included
        ("2001:db8::/32", "reserved"),  # documentation
        ("3fff::/20", "reserved"),  # documentation (RFC 9637)
        ("5f00::/16", "reserved"),  # segment routing SIDs
    )
]
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # IPv4-translated (RFC 2765)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when it stands for one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or ip in _TRANSLATED:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return None


def refusal(ip: IPAddress, *, allow_private: bool = False) -> Refusal | None:
    """Why ``ip`` must not be contacted, or ``None`` when it may be."""
    reason = _classify(ip)
    if reason is not None and allow_private and reason in ALLOWABLE_WHEN_PRIVATE:
        return None
    return reason


def _classify(ip: IPAddress) -> Refusal | None:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%")[0])
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return _classify(embedded)
        for net6, reason in _V6:
            if ip in net6:
                return reason
        if ip not in _GLOBAL_UNICAST or not ip.is_global:
            return "reserved"  # includes the IPv4-compatible ::a.b.c.d (::/96)
        return None
    for net4, reason in _V4:
        if ip in net4:
            return reason
    # The tables above name the IANA special-purpose blocks, so the verdict does not move
    # with the Python version; is_global is a second opinion.
    if not ip.is_global:
        return "reserved"
    return None


# --- literals -------------------------------------------------------------------------------

_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*)$")


def _ipv4_part(text: str) -> int | None:
    if not _PART.match(text):
        return None
    if text[:2] in ("0x", "0X"):
        return int(text[2:] or "0", 16)
    if len(text) > 1 and text[0] == "0":
        return int(text, 8)
    return int(text)


def _loose_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """inet_aton / WHATWG IPv4 parsing: 1 to 4 parts, each decimal, octal (leading 0) or hex
    (0x); the last part fills the remaining bytes (``127.1`` is 127.0.0.1)."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts = parts[:-1]  # one trailing dot is allowed
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_ipv4_part(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    *head, last = numbers  # type: ignore[misc]
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for index, n in enumerate(head):
        value += n << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` (a URL's host, brackets allowed for IPv6) spells, in any form a
    resolver would read as an address; ``None`` for a name that needs DNS."""
    text = host.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.replace("%25", "%"))
        except ValueError:
            return None
    return _loose_ipv4(text)


def host_refusal(host: str, *, allow_private: bool = False) -> Refusal | None:
    """Judge a URL host without DNS: an IP literal by :func:`refusal`; ``localhost`` and names
    under ``.localhost`` (RFC 6761: they are loopback) as ``local_name``; other names pass
    here and are judged by the addresses they resolve to when connecting."""
    ip = parse_ip_literal(host)
    if ip is not None:
        return refusal(ip, allow_private=allow_private)
    name = host.strip().lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return None if allow_private else "local_name"
    return None


def url_refusal(url: str, *, allow_private: bool = False) -> Refusal | None:
    """For checks before anything is sent (publishing a flow, saving a webhook): the refusal
    of the URL's host when it is written out; ``None`` when it is allowed, missing or a
    template (``{{...}}``: judged when the rendered URL is connected to)."""
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    if not host or "{" in host or "}" in host:
        return None
    return host_refusal(host, allow_private=allow_private)


def allow_private_effective(allow_private: bool, public_url: str) -> bool:
    """``AAT_HTTP_ALLOW_PRIVATE`` only counts when the appliance is not served over https (a
    production deployment); the caller logs the refusal."""
    return allow_private and not public_url.lower().startswith("https:")
