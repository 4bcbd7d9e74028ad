"""Backups of the workspace: snapshot, retention, verify, restore, off-site copies.

- ``snapshot``: ``create_backup`` (one encrypted tar, consistent while serving), ``prune``;
- ``verify``: ``verify_backup`` (unpack into a temp dir, check integrity) and ``restore_backup``;
- ``s3``: upload to an S3-compatible bucket with AWS SigV4;
- ``service``: one run as the CLI and the job do it; ``tasks``: the schedule
  (``AAT_BACKUP_DIR``, ``AAT_BACKUP_INTERVAL_HOURS``, ``AAT_BACKUP_KEEP``).
"""

from appliance.features import exports_of

__all__ = ["FEATURE"]

__getattr__ = exports_of("appliance.backup.feature", __all__)  # importing the package imports nothing
