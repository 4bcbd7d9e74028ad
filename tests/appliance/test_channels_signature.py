"""X-Hub-Signature-256: HMAC-SHA256 of the exact raw body under the app secret."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from appliance.channels.signature import sign, verify
from tests.appliance.channel_helpers import FIXTURES

SECRET = b"app-secret"
OTHER = b"instagram-app-secret"
# Meta escapes non-ASCII before signing: this is what arrives for {"text":"äöå 🎉"}.
ESCAPED = b'{"object":"page","entry":[{"text":"\\u00e4\\u00f6\\u00e5 \\ud83c\\udf89"}]}'


def test_sign_is_the_prefixed_hex_hmac():
    body = b'{"object":"page"}'
    expected = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert sign(body, SECRET) == f"sha256={expected}"


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_every_fixture_verifies_on_its_raw_bytes(fixture):
    body = fixture.read_bytes()
    assert verify(body, sign(body, SECRET), [SECRET])


def test_wrong_secret_fails():
    body = b"{}"
    assert not verify(body, sign(body, b"wrong"), [SECRET])


def test_tampered_body_fails():
    assert not verify(b'{"a":2}', sign(b'{"a":1}', SECRET), [SECRET])


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        hmac.new(SECRET, b"{}", hashlib.sha256).hexdigest(),  # no "sha256=" prefix
        "sha1=" + hmac.new(SECRET, b"{}", hashlib.sha1).hexdigest(),
        "sha256=zz" + "0" * 62,  # not hex
        "sha256=abc",  # odd length
        "sha256=" + "00" * 16,  # hex, but too short
        "SHA256=" + hmac.new(SECRET, b"{}", hashlib.sha256).hexdigest(),
    ],
)
def test_malformed_or_missing_headers_fail(header):
    assert not verify(b"{}", header, [SECRET])


def test_non_ascii_is_verified_on_the_escaped_raw_bytes():
    header = sign(ESCAPED, SECRET)
    assert verify(ESCAPED, header, [SECRET])
    # Decoding and re-serialising with real characters changes the bytes: no match.
    unescaped = json.dumps(json.loads(ESCAPED), ensure_ascii=False,
                           separators=(",", ":")).encode()
    assert unescaped != ESCAPED
    assert not verify(unescaped, header, [SECRET])


def test_a_second_secret_is_accepted():
    body = b'{"object":"instagram"}'
    assert verify(body, sign(body, OTHER), [SECRET, OTHER])
    assert verify(body, sign(body, SECRET), [SECRET, OTHER])


def test_no_secrets_means_no_match():
    assert not verify(b"{}", sign(b"{}", SECRET), [])
