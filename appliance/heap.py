"""The server process's garbage-collector policy.

:func:`freeze_startup_heap` is called once by each ``serve`` command, after the app is built and
before the server starts: the objects alive then (modules, classes, routes, templates, the app)
live as long as the process, so they are moved to the collector's permanent generation and no
full collection scans them again. Measured on the control plane's router at 1,000 events/s
(BENCHMARKS.md, "Control plane router"): a full collection paused the event loop for 74-84 ms of
CPU once every ~10 s, longer than the 50 ms ack target; after the freeze, 6-7 ms. Reference
counting still frees frozen objects that stop being used; only a reference cycle among them is
never collected. No collection runs first: it would cost ~0.1 s of every restart to free the
few dozen objects start-up leaves in cycles.

Not for tests or library code that build many apps in one process: what they freeze stays.

:func:`raise_young_threshold` is both ``serve`` commands' second step: young collections every
10,000 net container allocations instead of 700. At 1,000 events/s the control plane's router
ran ~520 young and ~47 middle collections per 20 s (0.7 s of CPU, each pausing the loop a few
ms, and the survivors they promoted fed the full collections); with 10,000, 3 young ones
(8-17 ms each, ~25 ms in all) and no older one in 20 s. The appliance answering bot replies
(bench/reply.py, 3,000 replies): 320 young, 29 middle and 2 full collections, 0.23 s of CPU
(~2 % of the run's), the longest pause 16 ms; with 10,000, 3 young ones, 13 ms in all.
"""

from __future__ import annotations

import gc

__all__ = ["SERVER_GEN0_THRESHOLD", "freeze_startup_heap", "raise_young_threshold"]

#: Allocations (net, of container objects) between young collections in a server; CPython's default is 700.
SERVER_GEN0_THRESHOLD = 10_000


def freeze_startup_heap() -> None:
    """Move every object tracked now to the permanent generation (see the module docstring)."""
    gc.freeze()


def raise_young_threshold(gen0: int = SERVER_GEN0_THRESHOLD) -> None:
    """Collect the youngest generation every ``gen0`` net allocations instead of every 700 (the
    older generations' ratios stay 10 and 10). Most of a request's objects are freed by reference
    counting before a collection sees them, so fewer, larger young collections do less work in
    total and promote fewer short-lived objects to the older generations."""
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0, gen1, gen2)
