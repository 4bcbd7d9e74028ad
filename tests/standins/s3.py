"""A stand-in for an S3-compatible bucket: a real HTTP server on loopback that checks AWS
Signature Version 4 the way S3 does, computed here independently of the client's library.

``PUT /{bucket}/{key}`` stores the body when the ``Authorization`` header's signature matches
(canonical request over the signed headers, ``x-amz-content-sha256`` equal to the body's
SHA-256, credential scope ``DATE/REGION/s3/aws4_request``, ``x-amz-date`` within 15 minutes);
otherwise it answers 403 with S3's XML error (``SignatureDoesNotMatch``,
``XAmzContentSHA256Mismatch``, ``InvalidAccessKeyId``, ``RequestTimeTooSkewed``) and stores
nothing. Every request is recorded in :attr:`S3StandIn.requests`.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler

from tests.standins.loopback import LoopbackStandIn, StandInHandler

__all__ = ["S3StandIn", "S3Request"]


@dataclass(frozen=True)
class S3Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class S3StandIn(LoopbackStandIn):
    def __init__(self, *, region: str = "eu-central-1", access_key: str = "AKIDSTANDIN",
                 secret_key: str = "standin-secret-key") -> None:
        self.region, self.access_key, self.secret_key = region, access_key, secret_key
        self.objects: dict[str, bytes] = {}
        self.requests: list[S3Request] = []
        super().__init__()

    def check(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> str | None:
        """The S3 error code for this request, or ``None`` when its signature is valid."""
        auth = headers.get("authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return "AccessDenied"
        fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
        access, date, region, service, terminal = fields["Credential"].split("/")
        if access != self.access_key:
            return "InvalidAccessKeyId"
        if (region, service, terminal) != (self.region, "s3", "aws4_request"):
            return "AuthorizationHeaderMalformed"
        payload_hash = headers.get("x-amz-content-sha256", "")
        if payload_hash != hashlib.sha256(body).hexdigest():
            return "XAmzContentSHA256Mismatch"
        amz_date = headers.get("x-amz-date", "")
        when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if abs((datetime.now(UTC) - when).total_seconds()) > 900 or not amz_date.startswith(date):
            return "RequestTimeTooSkewed"
        signed = fields["SignedHeaders"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            return "AccessDenied"
        path, _, query = raw_path.partition("?")
        pairs = sorted(urllib.parse.parse_qsl(query, keep_blank_values=True))
        canonical_query = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                                   for k, v in pairs)
        canonical_headers = "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed)
        canonical = "\n".join([method, path, canonical_query, canonical_headers, ";".join(signed), payload_hash])
        scope = f"{date}/{region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key = _hmac(_hmac(_hmac(_hmac(f"AWS4{self.secret_key}".encode(), date), region), "s3"), "aws4_request")
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(expected, fields["Signature"]) else "SignatureDoesNotMatch"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(StandInHandler):
            def do_PUT(self) -> None:  # noqa: N802 - http.server API
                body = self.read_body()
                headers = self.lower_headers()
                error = standin.check("PUT", self.path, headers, body)
                status = 403 if error else 200
                standin.requests.append(S3Request("PUT", self.path, headers, body, status))
                if error is None:
                    standin.objects[urllib.parse.unquote(self.path.partition("?")[0])] = body
                    etag = f'"{hashlib.md5(body).hexdigest()}"'  # noqa: S324 - S3's ETag
                    self.send_body(status, b"", content_type=None, headers={"ETag": etag})
                else:
                    data = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{error}</Code>'
                            f"<Message>{error}</Message></Error>").encode()
                    self.send_body(status, data, content_type="application/xml")

        return Handler
