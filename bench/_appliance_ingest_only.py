"""Diagnostic variant for ``bench/ingest.py --diagnose``: ``aat-appliance serve`` with its journal
processor switched off, everything else unchanged.

Deliveries are verified, journaled and acknowledged exactly as in the real appliance, but never
parsed or applied afterwards (the rows stay ``pending``). Comparing it with the real appliance
shows what the background processing costs the acknowledgement path on a machine where both
share the CPU (and the GIL, and the one writer thread). It is not a configuration anyone runs.
"""

from __future__ import annotations

import asyncio

from appliance.ingest.processor import JournalProcessor


async def _never(self: JournalProcessor) -> None:
    await asyncio.Event().wait()


JournalProcessor.run = _never  # type: ignore[method-assign]

if __name__ == "__main__":
    from appliance.cli import main

    main()
