"""``aat-appliance destroy --yes``: crypto-shredding, the teardown of a workspace.

The database is readable only with the data key, and the data key exists on disk only wrapped
in ``keys.json``. Destroying overwrites ``keys.json`` (and a rotation's ``keys.json.next``, and
a development ``master.key``) with random bytes, flushes them to disk, and removes them; then it
removes the database (with its WAL), the task queue and ``media/``. From the first step on,
every copy of the database anywhere (a backup, a snapshot of the volume, a stolen disk) is
ciphertext nobody can open, which is what makes the teardown final, beyond what deleting files
on a journaling or copy-on-write filesystem can promise.

It needs no master key (a workspace whose key is lost can still be destroyed) and refuses to
run while ``aat-appliance serve`` holds the data directory. The control plane runs it when a
tenant's retention window ends (30 days after cancellation); a self-hoster runs it by hand. It
is idempotent: on a directory already destroyed it removes nothing and succeeds. Wrapped keys
kept elsewhere (a backup of ``keys.json`` together with the master key) are outside its reach:
the control plane's retention covers those.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["KEY_FILES", "DATA_FILES", "Destroyed", "destroy"]

KEY_FILES = ("keys.json", "keys.json.next", "keys.json.tmp", "keys.json.next.tmp", "master.key")
DATA_FILES = (
    "workspace.db", "workspace.db-wal", "workspace.db-shm", "workspace.db-journal", "workspace.db.import",
    "queue.db", "queue.db-wal", "queue.db-shm", "queue.db-journal",
)


@dataclass(slots=True)
class Destroyed:
    keys: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def nothing(self) -> bool:
        return not self.keys and not self.files


def _shred(path: Path) -> None:
    """Overwrite with random bytes, flush to disk, then remove."""
    size = max(path.stat().st_size, 64)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, os.urandom(size))
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()


def destroy(data_dir: Path) -> Destroyed:
    """Shred the keys, then remove the workspace's files (the caller holds the process lock)."""
    done = Destroyed()
    for name in KEY_FILES:
        path = data_dir / name
        if path.is_file():
            _shred(path)
            done.keys.append(name)
    if done.keys:
        _fsync_dir(data_dir)
    for name in DATA_FILES:
        path = data_dir / name
        if path.is_file():
            path.unlink()
            done.files.append(name)
    media = data_dir / "media"
    if media.is_dir():
        shutil.rmtree(media)
        done.files.append("media/")
    if done.files:
        _fsync_dir(data_dir)
    return done


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
