"""Path traversal and archive tricks (issue 12, part 4) in what the appliance unpacks: a backup
(a tar: ``aat-appliance backup verify/restore``) and a workspace export (``aat-appliance
import``, also how the control plane imports a tenant). A crafted file is refused with a plain
reason before anything lands outside the scratch directory: ``../`` and absolute names,
symbolic and hard links, device and directory entries, sparse members (a 2 KiB file that would
unpack to any size of zeros: the tar bomb), media paths that leave ``media/``, and file modes that
would make a restored file set-uid or readable by others."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from appliance import audit
from appliance.backup.snapshot import BackupError
from appliance.backup.verify import restore_backup, verify_backup
from appliance.errors import AatError
from appliance.privacy import restore
from appliance.privacy.export import FILES
from appliance.settings import Settings
from appliance.store.workspace import Workspace
from tests.appliance.privacy_helpers import PASSPHRASE, export_to, open_export
from tests.conftest import MASTER_KEY

ACTOR = audit.Actor("cli", label="test")


def _octal(n: int, width: int) -> bytes:
    return format(n, "o").zfill(width - 1).encode() + b"\0"


def _sparse_member(name: str, real_size: int, data: bytes = b"x" * 512) -> bytes:
    """One old-GNU sparse header (``data`` stored, ``real_size`` declared, the rest a hole of
    zeros) and its data. Python's tarfile cannot write one; GNU tar can, and tarfile reads it."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.type = tarfile.GNUTYPE_SPARSE
    header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT)[:512])
    header[386:398] = _octal(real_size - len(data), 12)  # the one sparse entry: offset ...
    header[398:410] = _octal(len(data), 12)  # ... and length
    header[482] = 0  # no extended sparse headers
    header[483:495] = _octal(real_size, 12)  # the size it unpacks to
    header[148:156] = b" " * 8
    header[148:156] = format(sum(header), "o").zfill(6).encode() + b"\0 "
    return bytes(header) + data + b"\0" * (-len(data) % 512)


def _tar(tmp_path: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> Path:
    path = tmp_path / "aat-backup-20260101T000000Z.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


TRICKS = {
    "parent": (_entry("../escaped.txt"), b"out"),
    "nested parent": (_entry("media/../../escaped.txt"), b"out"),
    "absolute": (_entry("/tmp/aat-escaped.txt"), b"out"),
    "symlink": (_entry("media/passwd", tarfile.SYMTYPE, "/etc/passwd"), None),
    "hard link": (_entry("media/shadow", tarfile.LNKTYPE, "/etc/shadow"), None),
    "device": (_entry("media/null", tarfile.CHRTYPE), None),
    "fifo": (_entry("media/pipe", tarfile.FIFOTYPE), None),
    "directory": (_entry("media", tarfile.DIRTYPE), None),
}


@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_a_backup_with_a_crafted_entry_is_refused_and_writes_nothing_outside(
    settings: Settings, tmp_path: Path, trick: str
) -> None:
    path = _tar(tmp_path, TRICKS[trick], (_entry("manifest.json"), b'{"format": "aat-backup/1"}'))
    with pytest.raises(BackupError, match="holds an unexpected entry .*not an AAT backup"):
        verify_backup(settings, path)
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/aat-escaped.txt").exists()
    with pytest.raises(BackupError, match="unexpected entry"):
        restore_backup(settings.model_copy(update={"data_dir": tmp_path / "restored"}), path)
    assert not (tmp_path / "restored" / "workspace.db").exists()


def test_a_sparse_tar_bomb_is_refused_before_a_byte_is_unpacked(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "aat-backup-20260101T000000Z.tar"
    path.write_bytes(_sparse_member("manifest.json", 1 << 28) + b"\0" * 1024)  # 2 KiB that claims 256 MiB
    assert path.stat().st_size < 4096
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(BackupError, match="unexpected entry 'manifest.json'"):
        verify_backup(settings, path)
    assert shutil.disk_usage(tmp_path).free > free - (64 << 20)  # nothing big was written anywhere


def test_a_member_larger_than_the_archive_is_refused(settings: Settings, tmp_path: Path) -> None:
    """A header that claims more bytes than the file holds is refused (a truncated or forged tar)."""
    info = _entry("manifest.json")
    info.size = 1 << 30  # 1 GiB claimed, 1 KiB present
    path = tmp_path / "aat-backup-20260101T000000Z.tar"
    path.write_bytes(info.tobuf(format=tarfile.USTAR_FORMAT) + b"{}" * 512 + b"\0" * 1024)
    with pytest.raises(BackupError, match="unexpected entry 'manifest.json'|damaged or truncated tar"):
        verify_backup(settings, path)


def _export_with_file(workspace: Workspace, tmp_path: Path, name: str, mode: int = 0o600) -> Path:
    path = export_to(workspace.settings, tmp_path, "crafted.aatx")
    conn = open_export(path)
    conn.execute(f"INSERT INTO {FILES} (path, mode, data) VALUES (?, ?, ?)", [name, mode, b"planted"])
    conn.execute("UPDATE aat_export SET value = CAST(value AS INTEGER) + 1 WHERE key = 'files'")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("name", ["../keys.json", "a/../../escaped.txt", "/tmp/aat-escaped.txt", "."])
def test_an_export_naming_a_file_outside_media_is_refused(workspace: Workspace, tmp_path: Path, name: str) -> None:
    path = _export_with_file(workspace, tmp_path, name)
    target = Settings(data_dir=tmp_path / "imported", master_key=MASTER_KEY)
    with pytest.raises(AatError, match="outside media/") as refused:
        restore.import_workspace(target, path, PASSPHRASE, ACTOR)
    assert refused.value.code == "damaged_export"
    assert not (target.data_dir / "keys.json").exists()  # the import did not complete
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/aat-escaped.txt").exists()


def test_an_imported_file_is_never_set_uid_or_readable_by_others(workspace: Workspace, tmp_path: Path) -> None:
    path = _export_with_file(workspace, tmp_path, "2026/tool.sh", mode=0o6777)
    target = Settings(data_dir=tmp_path / "imported", master_key=MASTER_KEY)
    restore.import_workspace(target, path, PASSPHRASE, ACTOR)
    restored = target.data_dir / "media" / "2026" / "tool.sh"
    assert restored.read_bytes() == b"planted"
    assert os.stat(restored).st_mode & 0o7077 == 0
