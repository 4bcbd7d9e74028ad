"""Keys: the master key, the workspace data key it wraps, and field encryption.

- The **master key** (32 bytes) comes from ``AAT_MASTER_KEY`` (base64) or ``AAT_MASTER_KEY_FILE``.
  With neither, a development key is generated at ``DATA_DIR/master.key`` (mode 0600) and the
  caller warns loudly: that key sits beside the data it protects.
- The **data key** (32 random bytes per workspace) keys SQLCipher. It is stored only wrapped by
  the master key with AES-256-GCM in ``DATA_DIR/keys.json``. Rotation (``rekey``) writes the
  new wrapped key to ``keys.json.next`` *before* re-encrypting, so a crash at any point leaves
  a key that opens the database (see :func:`pending_rotation`).
- **Field encryption**: channel and integration tokens are additionally AES-256-GCM encrypted
  with a key derived from the master key (HKDF-SHA256), bound to their row by associated data,
  so a decrypted database copy still does not reveal them.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from appliance.errors import AatError

__all__ = [
    "KeyMaterialError",
    "MasterKey",
    "load_master_key",
    "DataKeyFile",
    "FieldCipher",
]

_WRAP_AAD = b"aat-workspace-data-key/v1"
_FIELD_PREFIX = "v1:"


class KeyMaterialError(AatError):
    """A key is missing, malformed, or does not open what it should."""

    default_code = "key_error"


@dataclass(frozen=True, slots=True)
class MasterKey:
    key: bytes
    generated_dev_key: bool = False
    source: str = "env"

    def wrap(self, data_key: bytes) -> dict[str, str]:
        nonce = os.urandom(12)
        sealed = AESGCM(self.key).encrypt(nonce, data_key, _WRAP_AAD)
        return {"nonce": _b64(nonce), "wrapped": _b64(sealed)}

    def unwrap(self, record: dict[str, str]) -> bytes:
        try:
            return AESGCM(self.key).decrypt(_unb64(record["nonce"]), _unb64(record["wrapped"]), _WRAP_AAD)
        except (InvalidTag, KeyError, ValueError) as exc:
            raise KeyMaterialError(
                "the master key does not unwrap this workspace's data key: check "
                "AAT_MASTER_KEY / AAT_MASTER_KEY_FILE"
            ) from exc

    def field_cipher(self) -> FieldCipher:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"aat-field-encryption/v1"
        ).derive(self.key)
        return FieldCipher(derived)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def parse_master_key(text: str, *, source: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise KeyMaterialError(f"{source} is not valid base64") from exc
    if len(raw) != 32:
        raise KeyMaterialError(f"{source} must be base64 of exactly 32 bytes, got {len(raw)} bytes")
    return raw


def load_master_key(
    *, env_value: str | None, file_path: Path | None, data_dir: Path, allow_generate: bool = True
) -> MasterKey:
    """Find the master key; generate a development key file only when nothing is configured."""
    if env_value:
        return MasterKey(parse_master_key(env_value, source="AAT_MASTER_KEY"), source="env")
    if file_path is not None:
        try:
            text = file_path.read_text()
        except OSError as exc:
            raise KeyMaterialError(f"cannot read AAT_MASTER_KEY_FILE ({exc.strerror})") from exc
        return MasterKey(parse_master_key(text, source="AAT_MASTER_KEY_FILE"), source="file")
    dev_path = data_dir / "master.key"
    if dev_path.exists():
        key = parse_master_key(dev_path.read_text(), source=str(dev_path))
        return MasterKey(key, generated_dev_key=True, source="dev-file")
    if not allow_generate:
        raise KeyMaterialError("no master key: set AAT_MASTER_KEY or AAT_MASTER_KEY_FILE")
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(dev_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(_b64(key) + "\n")
    return MasterKey(key, generated_dev_key=True, source="dev-file")


class DataKeyFile:
    """``keys.json`` (the wrapped data key) and ``keys.json.next`` during a rotation."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "keys.json"
        self.next_path = data_dir / "keys.json.next"

    def exists(self) -> bool:
        return self.path.exists()

    def create(self, master: MasterKey) -> bytes:
        data_key = secrets.token_bytes(32)
        self._write(self.path, master, data_key)
        return data_key

    def load(self, master: MasterKey) -> bytes:
        return master.unwrap(self._read(self.path))

    def stage_next(self, master: MasterKey) -> bytes:
        """Write a new wrapped key beside the current one; :meth:`commit_next` makes it current."""
        data_key = secrets.token_bytes(32)
        self._write(self.next_path, master, data_key)
        return data_key

    def pending_rotation(self, master: MasterKey) -> bytes | None:
        if not self.next_path.exists():
            return None
        return master.unwrap(self._read(self.next_path))

    def commit_next(self) -> None:
        os.replace(self.next_path, self.path)
        _fsync_dir(self.path.parent)

    def discard_next(self) -> None:
        self.next_path.unlink(missing_ok=True)

    def _read(self, path: Path) -> dict[str, str]:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise KeyMaterialError(f"cannot read {path.name}: the workspace key file is damaged") from exc

    def _write(self, path: Path, master: MasterKey, data_key: bytes) -> None:
        record = {
            "version": 1,
            "algorithm": "AES-256-GCM",
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **master.wrap(data_key),
        }
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FieldCipher:
    """AES-256-GCM for single column values; ``context`` binds a value to its row."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return _FIELD_PREFIX + _b64(nonce + sealed)

    def decrypt(self, token: str, context: str) -> str:
        if not token.startswith(_FIELD_PREFIX):
            raise KeyMaterialError("encrypted field has an unknown format")
        raw = _unb64(token[len(_FIELD_PREFIX):])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag as exc:
            raise KeyMaterialError("encrypted field does not open with this master key") from exc
