"""AAT Systems appliance: one customer workspace in one process with one encrypted file."""

import sys

__version__ = "0.1.0"

# ``import httpx`` also imports httpx's command-line client (``httpx._main``: rich, pygments and
# click, about 70 modules and 0.1 s of a restart) whenever those packages are installed, and
# Litestar depends on rich. The appliance never runs that client: mark it absent unless httpx is
# already loaded, so httpx takes its own fallback (``httpx.main`` then says the CLI is missing).
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[assignment]
