"""Helpers of the chaos tests (tests/security/test_chaos_*.py): a small tmpfs mounted for as
long as a test needs it (root only), a disk filled to the last byte, and tests/e2e's appliance factory on a fresh template.

The tests run ``aat-appliance serve`` as a real subprocess through tests/e2e/conftest.py's
:class:`~tests.e2e.conftest.Appliance`; what they add is the hostile environment.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.conftest import Appliances, Template, base_env, run_cli

__all__ = ["appliances_in", "fill", "tmpfs"]

_CHUNK = b"\0" * 65536


@contextmanager
def tmpfs(path: Path, *, size_kib: int) -> Iterator[Path]:
    """Mount a tmpfs of ``size_kib`` KiB (mode 0700, like a data dir) on ``path``; always
    unmounted afterwards, passed or failed.

    Needs root (CAP_SYS_ADMIN). A tmpfs in a user namespace (``unshare --user
    --map-root-user --mount``) does not serve: the test process and the server it starts
    would reach it only through ``/proc/<pid>/root/...``, and SQLite resolves that magic
    link to ``/``, so the database would land outside it (tried; see the module docstring of
    tests/security/test_chaos_disk_full.py). Without root the mount fails loudly.
    """
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0700", "tmpfs", str(path)],
                             check=False, capture_output=True, text=True, timeout=30)
    if mounted.returncode != 0:
        raise RuntimeError(f"the disk-full chaos tests mount a tmpfs and need root: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        # Lazy: a process killed a moment ago may still hold a file open for a few ms.
        subprocess.run(["umount", "-l", str(path)], check=True, capture_output=True, timeout=30)


def fill(directory: Path) -> Path:
    """Write one file in ``directory`` until the file system has no byte left (ENOSPC)."""
    filler = directory / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        chunk = _CHUNK
        while chunk:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk = chunk[: len(chunk) // 2]  # down to the last byte
    finally:
        os.close(fd)
    return filler


@contextmanager
def appliances_in(root: Path) -> Iterator[Appliances]:
    """tests/e2e's appliance factory on a fresh migrated data directory with one API token
    (one per test module); every appliance it started is SIGKILLed at the end."""
    data_dir = root / "template" / "data"
    env = base_env()
    run_cli("migrate", "--data-dir", str(data_dir), cwd=root, env=env)
    out = run_cli("tokens", "create", "--name", "chaos", "--data-dir", str(data_dir), cwd=root, env=env)
    factory = Appliances(root / "appliances", Template(data_dir, out.strip().splitlines()[-1]))
    try:
        yield factory
    finally:
        factory.cleanup()
