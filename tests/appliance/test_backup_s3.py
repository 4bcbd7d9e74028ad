"""Off-site copies: a backup PUT to an S3-compatible bucket, signed with SigV4, checked by a
stand-in that computes the signature itself (tests/standins/s3.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from appliance.backup.s3 import S3Target, upload
from appliance.backup.service import run_backup
from appliance.backup.snapshot import BackupError, list_backups
from appliance.settings import Settings
from appliance.store.workspace import Workspace
from tests.standins.s3 import S3StandIn


@pytest.fixture
def bucket() -> Iterator[S3StandIn]:
    standin = S3StandIn(region="eu-central-1", access_key="AKIDBACKUP", secret_key="s3-secret-xyz").start()
    yield standin
    standin.stop()


def _with_s3(settings: Settings, bucket: S3StandIn, secret: str = "s3-secret-xyz") -> Settings:
    return settings.model_copy(update={
        "backup_s3_url": f"{bucket.base_url}/aat-backups/eu/tenant-1", "backup_s3_region": "eu-central-1",
        "backup_s3_access_key_id": "AKIDBACKUP", "backup_s3_secret_access_key": SecretStr(secret)})


def test_backup_run_uploads_the_file_with_a_valid_signature(settings: Settings, workspace: Workspace,
                                                            bucket: S3StandIn, tmp_path: Path) -> None:
    done = run_backup(_with_s3(settings, bucket), tmp_path / "b", keep=3)
    name = done.backup.path.name
    assert done.uploaded == f"{bucket.base_url}/aat-backups/eu/tenant-1/{name}"
    [request] = bucket.requests
    assert (request.method, request.path, request.status) == ("PUT", f"/aat-backups/eu/tenant-1/{name}", 200)
    body = done.backup.path.read_bytes()
    assert request.headers["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDBACKUP/")
    assert "/eu-central-1/s3/aws4_request" in request.headers["authorization"]
    assert request.headers["content-type"] == "application/x-tar"
    assert bucket.objects == {f"/aat-backups/eu/tenant-1/{name}": body}


def test_a_wrong_secret_is_refused_and_the_local_copy_stays(settings: Settings, workspace: Workspace,
                                                            bucket: S3StandIn, tmp_path: Path) -> None:
    with pytest.raises(BackupError, match=r"^the bucket refused the upload: HTTP 403 \(SignatureDoesNotMatch\)$"):
        run_backup(_with_s3(settings, bucket, secret="not-the-secret"), tmp_path / "b", keep=3)
    assert bucket.objects == {}
    assert len(list_backups(tmp_path / "b")) == 1


def test_half_an_s3_configuration_is_refused_before_any_work(settings: Settings, workspace: Workspace,
                                                             tmp_path: Path) -> None:
    half = settings.model_copy(update={"backup_s3_url": "https://s3.example.test/bucket"})
    with pytest.raises(BackupError, match="AAT_BACKUP_S3_ACCESS_KEY_ID or AAT_BACKUP_S3_SECRET_ACCESS_KEY is not"):
        run_backup(half, tmp_path / "b", keep=3)
    assert not (tmp_path / "b").exists()


def test_the_stand_in_rejects_a_body_that_does_not_match_its_hash(bucket: S3StandIn, tmp_path: Path) -> None:
    # The stand-in's own check, so the passing tests above mean something.
    path = tmp_path / "aat-backup-20260101T000000000Z.tar"
    path.write_bytes(b"payload")
    target = S3Target(f"{bucket.base_url}/b", "eu-central-1", "AKIDBACKUP", "s3-secret-xyz")
    upload(target, path)
    headers = dict(bucket.requests[0].headers)
    assert bucket.check("PUT", "/b/" + path.name, headers, b"payload") is None
    assert bucket.check("PUT", "/b/" + path.name, headers, b"tampered") == "XAmzContentSHA256Mismatch"
    headers["x-amz-content-sha256"] = hashlib.sha256(b"tampered").hexdigest()
    assert bucket.check("PUT", "/b/" + path.name, headers, b"tampered") == "SignatureDoesNotMatch"
    assert bucket.check("PUT", "/b/other.tar", dict(bucket.requests[0].headers), b"payload") == "SignatureDoesNotMatch"
