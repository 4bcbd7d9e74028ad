"""Off-site copies: one ``PUT`` of a backup file to an S3-compatible bucket, signed with AWS
Signature Version 4 (``httpx_auth.AWS4Auth``; payload hash in ``x-amz-content-sha256``).

``AAT_BACKUP_S3_URL`` is path style, ``https://HOST/BUCKET[/PREFIX]`` (AWS, MinIO, Ceph, Scaleway,
OVH, Hetzner...); the object key is ``PREFIX/<backup file name>``. One PUT takes objects up to
5 GiB, and the file is read into memory to be hashed: fine for workspaces of a few GiB, the
appliance's range. Retention of the off-site copies is the bucket's (a lifecycle rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx

from appliance.backup.snapshot import BackupError
from appliance.settings import Settings

__all__ = ["S3Target", "upload"]


@dataclass(frozen=True, slots=True)
class S3Target:
    url: str
    region: str
    access_key_id: str
    secret_access_key: str

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Target | None:
        """The configured target, ``None`` when off-site copies are off."""
        if not settings.backup_s3_url:
            return None
        secret = settings.backup_s3_secret_access_key
        if not settings.backup_s3_access_key_id or secret is None or not secret.get_secret_value():
            raise BackupError("AAT_BACKUP_S3_URL is set but AAT_BACKUP_S3_ACCESS_KEY_ID or "
                              "AAT_BACKUP_S3_SECRET_ACCESS_KEY is not")
        return cls(settings.backup_s3_url.rstrip("/"), settings.backup_s3_region,
                   settings.backup_s3_access_key_id, secret.get_secret_value())


def upload(target: S3Target, path: Path, *, timeout: float = 300.0,
           transport: httpx.BaseTransport | None = None) -> str:
    """PUT ``path`` as an object; returns its URL. Raises :class:`BackupError` on refusal."""
    # Imported here, not at start: about 30 ms and 15 modules that only an upload needs.
    from httpx_auth import AWS4Auth

    url = f"{target.url}/{quote(path.name)}"
    auth = AWS4Auth(access_id=target.access_key_id, secret_key=target.secret_access_key,
                    region=target.region, service="s3")
    body = path.read_bytes()
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            response = client.put(url, content=body, auth=auth,
                                  headers={"Content-Type": "application/x-tar"})
    except httpx.HTTPError as exc:
        raise BackupError(f"the upload to {target.url} failed: {type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        code = _s3_code(response.text)
        raise BackupError(f"the bucket refused the upload: HTTP {response.status_code}"
                          + (f" ({code})" if code else ""))
    return url


def _s3_code(text: str) -> str:
    """``<Code>SignatureDoesNotMatch</Code>`` from an S3 error body."""
    start = text.find("<Code>")
    end = text.find("</Code>", start)
    return text[start + 6:end] if start >= 0 and end > start else ""
