"""One backup run as the CLI and the scheduled job do it: snapshot, retention, off-site copy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.backup import s3
from appliance.backup.snapshot import BackupResult, create_backup, prune
from appliance.settings import Settings

__all__ = ["RunResult", "run_backup"]


@dataclass(frozen=True, slots=True)
class RunResult:
    backup: BackupResult
    removed: list[Path]
    uploaded: str | None

    def summary(self) -> dict[str, Any]:
        """Names, counts and sizes only: it is logged."""
        return {"backup": self.backup.path.name, "bytes": self.backup.size, "tables": len(self.backup.tables),
                "removed": len(self.removed), "uploaded": self.uploaded is not None,
                "seconds": round(self.backup.seconds, 2)}


def run_backup(settings: Settings, directory: Path, *, keep: int, upload: bool = True) -> RunResult:
    """Write a backup into ``directory``, keep the ``keep`` newest, and upload it when
    ``AAT_BACKUP_S3_URL`` is set (and ``upload``). The local copy stays if the upload fails."""
    target = s3.S3Target.from_settings(settings) if upload else None  # refuse half a config first
    result = create_backup(settings, directory)
    removed = prune(directory, keep)
    uploaded = s3.upload(target, result.path, timeout=max(settings.http_timeout_seconds, 300.0)) if target else None
    return RunResult(result, removed, uploaded)
