"""Instructions a restart executes before it can serve, per tree: the figure to compare small
start-up changes with on a shared machine, where CPU-seconds move by +-0.3 s from one restart to
the next (BENCHMARKS.md, "Footprint"). Needs valgrind.

    python bench/_startup_instructions.py DATA_DIR [TREE ...]     (AAT_MASTER_KEY in the environment)

For each TREE (a checkout of this repository, e.g. a ``git worktree``; default: this one), in a
fresh interpreter under ``valgrind --tool=cachegrind --cache-sim=no`` with that tree first on the
path and ``PYTHONHASHSEED=0``: the imports ``serve`` needs, ``Settings``, ``open_workspace`` on
DATA_DIR (an existing, migrated one) and ``create_app``, with the collector off as in ``serve``.
Prints one JSON line: millions of instructions per tree. Runs of one tree agree within 0.1 %; a
run takes about 30 s. Compile the trees first (``python -m compileall -q TREE/appliance``), as an
install does, or the first run counts the compiling.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

CHILD = """
import gc
gc.disable()
import sys
from pathlib import Path
import appliance.cli
from appliance.app import create_app
from appliance.settings import Settings
from appliance.store.workspace import open_workspace
settings = Settings(data_dir=Path(sys.argv[1]), port=1, log_level="warning")
create_app(settings, workspace=open_workspace(settings))
"""


def instructions(tree: Path, data_dir: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED="0")
    proc = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         sys.executable, "-c", CHILD, str(data_dir)],
        cwd=tree, env=env, capture_output=True, text=True, check=False)
    match = re.search(r"I\s+refs:\s+([\d,]+)", proc.stderr)
    if proc.returncode != 0 or not match:
        raise SystemExit(f"{tree}: the start-up failed\n{proc.stderr[-3000:]}")
    return int(match.group(1).replace(",", "")) / 1e6


def main() -> None:
    data_dir = Path(sys.argv[1]).resolve()
    trees = [Path(t).resolve() for t in sys.argv[2:]] or [Path(__file__).resolve().parent.parent]
    print(json.dumps({str(tree): round(instructions(tree, data_dir), 1) for tree in trees}))


if __name__ == "__main__":
    main()
