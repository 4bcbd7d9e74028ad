"""AAT Systems appliance: one customer workspace in one process with one encrypted file."""

import gc
import os
import sys

__version__ = "0.1.0"


def _starts_server(argv: list[str]) -> bool:
    """Whether this process is ``aat-appliance serve`` (or ``python -m appliance.cli serve``)."""
    for i, arg in enumerate(argv[:-1]):
        entry = os.path.basename(arg) == "aat-appliance" or (arg == "appliance.cli" and argv[i - 1] == "-m")
        if entry and argv[i + 1] == "serve":
            return True
    return False


# Nearly every object the serve command's start-up makes (modules, classes, routes, the app) lives
# as long as the process; the cyclic collector still ran ~250 times over them, about 0.1 CPU-s of
# every restart (BENCHMARKS.md, "Footprint"), to free a few hundred objects. It is off from here
# until ``cli._full_app`` has built the app (in the front door's thread, appliance/web/front.py)
# and frozen that heap (appliance/heap.py), then on again.
if _starts_server(sys.orig_argv):
    gc.disable()

# ``import httpx`` also imports httpx's command-line client (``httpx._main``: rich, pygments and
# click, about 70 modules and 0.1 s of a restart) whenever those packages are installed, and
# Litestar depends on rich. The appliance never runs that client: mark it absent unless httpx is
# already loaded, so httpx takes its own fallback (``httpx.main`` then says the CLI is missing).
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[assignment]
