"""Known vulnerabilities in our dependencies, by pip-audit (PyPI's advisory data), run by
scripts/test before the suite: fails (exit 1) on any known vulnerability.

Two audits: the installed environment (what the tests run on: runtime and dev dependencies,
the project itself skipped) and requirements/image.lock (exactly what the image ships).

A vulnerability with no fixed release yet can be accepted in IGNORED below, with the reason and
a date to look again; everything else is fixed by raising the pin (pyproject.toml, then
regenerate the lock). A dependency pip-audit could not look up is reported, not failed: the
audit needs PyPI's per-release JSON API, which some mirrors lack; ``AAT_AUDIT_STRICT=1`` makes
that an error too (CI where PyPI itself is reachable).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "image.lock"

# vulnerability id -> why it is accepted for now (and until when). Empty: nothing accepted.
IGNORED: dict[str, str] = {}

AUDITS = {
    "installed environment": ["--local", "--skip-editable"],
    "requirements/image.lock": ["-r", str(LOCK), "--require-hashes", "--disable-pip", "--no-deps"],
}


def audit(args: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        command = [sys.executable, "-m", "pip_audit", *args, "--format", "json", "--output", str(out),
                   "--progress-spinner", "off", *(f"--ignore-vuln={vuln}" for vuln in IGNORED)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        if not out.exists():
            raise RuntimeError(f"pip-audit failed ({result.returncode}): {result.stderr.strip()[-500:]}")
        return json.loads(out.read_text())


def main() -> int:
    strict = os.environ.get("AAT_AUDIT_STRICT") == "1"
    failed = False
    for what, args in AUDITS.items():
        try:
            report = audit(args)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"pip-audit ({what}): could not run: {exc}", file=sys.stderr)
            failed = failed or strict
            continue
        deps = [d for d in report.get("dependencies", []) if d["name"] != "aat-systems"]  # ours: not on PyPI
        vulnerable = [d for d in deps if d.get("vulns")]
        skipped = [d for d in deps if "skip_reason" in d]
        for dep in vulnerable:
            for vuln in dep["vulns"]:
                fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed release yet"
                print(f"VULNERABLE ({what}): {dep['name']} {dep['version']}: {vuln['id']} (fixed in: {fixes})",
                      file=sys.stderr)
        audited = len(deps) - len(skipped)
        print(f"pip-audit ({what}): {audited} packages audited, {sum(len(d['vulns']) for d in vulnerable)} known "
              f"vulnerabilities, {len(skipped)} could not be looked up", file=sys.stderr)
        if skipped and not audited:
            print(f"WARNING: pip-audit could look up none of the {len(skipped)} packages "
                  f"({skipped[0]['skip_reason']}): the index answering here has no advisory data; "
                  "nothing was audited", file=sys.stderr)
        failed = failed or bool(vulnerable) or (strict and bool(skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
