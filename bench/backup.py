"""Backup against the passphrase export, side by side on the same workspace, and verify/restore.

    .venv/bin/python bench/backup.py [--messages 200000] [--contacts 5000] [--rounds 3]

Builds a workspace with bench/export.py's builder (messages, contacts, 100,000 journal bodies),
then, ``--rounds`` times in alternation: ``create_backup`` (a copy keyed with the workspace's
own raw data key, tarred with keys.json and a manifest) and ``export_workspace`` (the same
snapshot re-keyed with a passphrase: PBKDF2 then re-encryption); then ``verify_backup`` and
``restore_backup``. Reports medians of wall time, sizes, and the ratio backup/export. Idle
(no server): what a backup costs by itself. Results: ``bench/results/backup-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _support import RESULTS_DIR, machine, median  # noqa: E402
from export import PASSPHRASE, _settings, build  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--contacts", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from appliance.backup.snapshot import create_backup
    from appliance.backup.verify import restore_backup, verify_backup
    from appliance.privacy.export import export_workspace

    work = Path(tempfile.mkdtemp(prefix="aat-bench-backup-"))
    try:
        settings = _settings(work / "data")
        built = build(settings.data_dir, args.messages, args.contacts)
        print(f"built: {built}", file=sys.stderr)
        backups, exports, sizes = [], [], {}
        for i in range(args.rounds):
            started = time.perf_counter()
            result = create_backup(settings, work / "backups")
            backups.append(time.perf_counter() - started)
            sizes["backup_mib"] = round(result.size / 2**20, 1)
            started = time.perf_counter()
            exported = export_workspace(settings, work / f"export-{i}.aatx", PASSPHRASE)
            exports.append(time.perf_counter() - started)
            sizes["export_mib"] = round(exported.size / 2**20, 1)
            print(f"round {i + 1}: backup {backups[-1]:.2f} s, export {exports[-1]:.2f} s", file=sys.stderr)
        started = time.perf_counter()
        report = verify_backup(settings, result.path)
        verify_s = time.perf_counter() - started
        assert report.ok, report.problems
        started = time.perf_counter()
        restore_backup(settings.model_copy(update={"data_dir": work / "restored"}), result.path)
        restore_s = time.perf_counter() - started
        out = {
            "workspace": built, "rounds": args.rounds, **sizes,
            "backup_s_median": round(median(backups), 2), "export_s_median": round(median(exports), 2),
            "backup_over_export": round(median(backups) / median(exports), 2),
            "verify_s": round(verify_s, 2), "restore_s": round(restore_s, 2),
            "backup_s": [round(x, 2) for x in backups], "export_s": [round(x, 2) for x in exports],
            "load_average": os.getloadavg(), "machine": machine(work),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"backup-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "machine"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
